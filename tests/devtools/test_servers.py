"""The real-server launchers: Redis Stack with vector search, and a Redis Cluster that fails over."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from devtools.redis_cluster import (
    BUS_PORT_OFFSET,
    RedisClusterServer,
    free_cluster_port,
    parse_cluster_nodes,
    parse_info,
)
from devtools.redis_stack import PATHS_ENV, redis_stack_server, stack_paths
from llmemo.errors import ConfigError

# -- Redis Stack ---------------------------------------------------------------------------


def test_stack_loads_search_and_json(redis_stack_url: str) -> None:
    with redis.Redis.from_url(redis_stack_url, decode_responses=True) as client:
        modules = {m["name"] for m in client.module_list()}
        assert {"search", "ReJSON"} <= modules
        client.execute_command("JSON.SET", "doc", "$", '{"a": [1, 2]}')
        assert client.execute_command("JSON.GET", "doc", "$.a[1]") == "[2]"


def _vector(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


@pytest.mark.parametrize("metric", ["COSINE", "L2"])
def test_stack_hnsw_knn_query(redis_stack_url: str, metric: str) -> None:
    # Both cases create the same index: the fixture drops indexes between tests.
    with redis.Redis.from_url(redis_stack_url, protocol=3) as client:
        assert client.execute_command("FT._LIST") == []
        client.execute_command(
            "FT.CREATE", "idx", "ON", "HASH", "PREFIX", "1", "doc:",
            "SCHEMA", "v", "VECTOR", "HNSW", "6",
            "TYPE", "FLOAT32", "DIM", "2", "DISTANCE_METRIC", metric,
        )  # fmt: skip
        client.hset("doc:east", mapping={"v": _vector(1.0, 0.0)})
        client.hset("doc:north", mapping={"v": _vector(0.0, 1.0)})
        client.hset("doc:northeast", mapping={"v": _vector(0.7, 0.7)})
        reply = client.execute_command(
            "FT.SEARCH", "idx", "*=>[KNN 2 @v $q AS score]",
            "PARAMS", "2", "q", _vector(0.1, 1.0),
            "SORTBY", "score", "RETURN", "1", "score", "DIALECT", "2",
        )  # fmt: skip
    assert reply[b"total_results"] == 2
    assert [r[b"id"] for r in reply[b"results"]] == [b"doc:north", b"doc:northeast"]


def test_stack_server_restarts_on_same_port(redis_stack_url: str) -> None:
    server = redis_stack_server()
    with server:
        port = server.port
        server.stop()
        server.start()
        assert server.port == port
        with redis.Redis(port=port) as client:
            assert client.ping()


def test_stack_missing_install_names_the_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PATHS_ENV, str(tmp_path / "paths.json"))
    with pytest.raises(ConfigError, match="run scripts/install-redis-stack"):
        redis_stack_server()
    (tmp_path / "paths.json").write_text('{"server": "/nonexistent"}')
    with pytest.raises(ConfigError, match="run scripts/install-redis-stack"):
        stack_paths()


# -- Redis Cluster ------------------------------------------------------------------------


def test_free_cluster_port_has_a_free_bus_port() -> None:
    port = free_cluster_port()
    assert port + BUS_PORT_OFFSET <= 65535
    for p in (port, port + BUS_PORT_OFFSET):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", p))


def test_parse_cluster_nodes() -> None:
    text = (
        "a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 [5461->-b2]\n"
        "b2 127.0.0.1:7001@17001,host master,fail? - 0 0 2 connected 5461 5462-10922\n"
        "c3 127.0.0.1:7003@17003 slave a1 0 0 1 connected\n"
    )
    a, b, c = parse_cluster_nodes(text)
    assert (a.port, a.is_primary, a.slots, a.failing) == (7000, True, ("0-5460",), False)
    assert (b.port, b.slots, b.failing) == (7001, ("5461", "5462-10922"), True)
    assert (c.primary_id, c.is_primary) == ("a1", False)
    assert parse_info("# Replication\r\nrole:slave\r\nmaster_link_status:up\r\n") == {
        "role": "slave",
        "master_link_status": "up",
    }


def test_cluster_is_ok_and_serves_keys(
    redis_cluster: RedisClusterServer, redis_cluster_nodes: list[ClusterNode]
) -> None:
    primaries = redis_cluster.primaries()
    assert len(primaries) == 3
    assert all(len(redis_cluster.replicas_of(p)) == 1 for p in primaries)
    assert redis_cluster.url == "redis+cluster://" + ",".join(
        f"127.0.0.1:{p}" for p in redis_cluster.ports
    )
    with RedisCluster(startup_nodes=redis_cluster_nodes) as client:
        keys = [f"key:{i}" for i in range(30)]
        for key in keys:
            client.set(key, key.encode())
        assert [client.get(key) for key in keys] == [key.encode() for key in keys]
        assert len({client.get_node_from_key(key).port for key in keys}) == 3


def _key_on(client: RedisCluster, port: int) -> str:
    return next(k for i in range(10_000) if client.get_node_from_key(k := f"k{i}").port == port)


@pytest.mark.slow
def test_killed_primary_is_replaced_by_its_replica(
    redis_cluster: RedisClusterServer, redis_cluster_nodes: list[ClusterNode]
) -> None:
    primary = redis_cluster.primaries()[0]
    (replica,) = redis_cluster.replicas_of(primary)
    with RedisCluster(startup_nodes=redis_cluster_nodes) as client:
        key = _key_on(client, primary)
    with redis.Redis(port=primary) as direct:
        direct.set(key, b"kept")
        assert direct.wait(1, 5000) == 1  # the replica has it before the primary dies

    redis_cluster.kill(primary)
    deadline = time.monotonic() + 20
    while replica not in redis_cluster.primaries():
        assert time.monotonic() < deadline, "the replica was not promoted"
        time.sleep(0.1)
    redis_cluster.wait_ok(timeout=20)

    assert primary not in redis_cluster.primaries()
    with RedisCluster(startup_nodes=redis_cluster_nodes) as client:
        assert client.get_node_from_key(key).port == replica
        assert client.get(key) == b"kept"

    redis_cluster.restart(primary)  # it comes back as the replica of its successor
    redis_cluster.wait_ok(timeout=20)
    assert redis_cluster.replicas_of(replica) == [primary]


def test_manual_failover_swaps_roles(
    redis_cluster: RedisClusterServer, redis_cluster_nodes: list[ClusterNode]
) -> None:
    primary = redis_cluster.primaries()[0]
    (replica,) = redis_cluster.replicas_of(primary)
    redis_cluster.failover(replica)
    redis_cluster.wait_ok(timeout=20)
    assert replica in redis_cluster.primaries()
    assert redis_cluster.replicas_of(replica) == [primary]


def test_cluster_closes_cleanly() -> None:
    cluster = RedisClusterServer(node_timeout_ms=500)
    with cluster:
        dirs = [server.dir for server in cluster.nodes.values()]
        processes = [server.process for server in cluster.nodes.values()]
        assert all(d.exists() for d in dirs)
    assert not any(d.exists() for d in dirs)
    assert all(p is not None and p.poll() is not None for p in processes)
