"""What only the cluster stores do: URLs, slot splitting, the node gate, CONFIG-less servers."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio.retry

from devtools.redis_cluster import RedisClusterServer, command
from llmemo import stores as base
from llmemo.errors import ConfigError, StoreError
from llmemo.stores import AsyncRedisClusterStore, RedisClusterStore
from llmemo.stores.cluster_gate import NodeDownError, NodeGate
from llmemo.stores.cluster_url import cluster_options

# -- URLs ---------------------------------------------------------------------------------------


def test_url_names_every_startup_node() -> None:
    kwargs, nodes = cluster_options("redis+cluster://h1:7000,h2:7001,[::1]:7002,h4", {})
    assert nodes == [("h1", 7000), ("h2", 7001), ("::1", 7002), ("h4", 6379)]
    assert "ssl" not in kwargs
    assert kwargs["socket_timeout"] == 0.5  # the single-node store's short timeouts


def test_one_retry_after_a_refresh_by_default() -> None:
    store = RedisClusterStore.from_url("redis+cluster://h1:7000")
    assert store._kwargs["retry"].get_retries() == 1
    astore = AsyncRedisClusterStore.from_url("redis+cluster://h1:7000")
    assert isinstance(astore.client.retry, redis.asyncio.retry.Retry)
    assert astore.client.retry.get_retries() == 1


def test_url_credentials_tls_and_query_options() -> None:
    kwargs, nodes = cluster_options(
        "rediss+cluster://app:p%40ss@h1:7000,h2:7000/?socket_timeout=2&ssl_cert_reqs=none",
        {"socket_timeout": 9, "socket_connect_timeout": 3},
    )
    assert nodes == [("h1", 7000), ("h2", 7000)]
    assert (kwargs["username"], kwargs["password"]) == ("app", "p@ss")
    assert kwargs["ssl"] is True
    assert kwargs["ssl_cert_reqs"] == "none"
    assert kwargs["socket_timeout"] == 2.0  # the URL wins, as in redis-py
    assert kwargs["socket_connect_timeout"] == 3


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h1:7000", "not a Redis Cluster URL"),
        ("redis+cluster://", "not a Redis Cluster URL"),
        ("redis+cluster://h1:7000,h2:port", "bad node 'h2:port'"),
        ("redis+cluster://h1:7000,,h2:7000", "bad node ''"),
        ("redis+cluster://h1:7000/2", "only database 0"),
        ("redis+cluster://h1:7000/?decode_responses=true", "decode_responses"),
        ("redis+cluster://h1:7000/?socket_timeout=soon", "bad Redis"),
    ],
)
def test_bad_urls_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RedisClusterStore.from_url(url)
    with pytest.raises(ConfigError, match=message):
        AsyncRedisClusterStore.from_url(url)


def test_password_never_shown() -> None:
    url = "redis+cluster://app:hunter2-secret@127.0.0.1:1,127.0.0.1:2"
    store = RedisClusterStore.from_url(url)
    assert store.url == "redis+cluster://app:***@127.0.0.1:1,127.0.0.1:2"
    with pytest.raises(StoreError) as caught:
        store.get("k")  # nothing listens on ports 1 and 2
    assert "hunter2" not in str(caught.value)
    assert "app:***@" in str(caught.value)
    store.close()
    with pytest.raises(ConfigError) as bad:
        RedisClusterStore.from_url(url + "/?socket_timeout=x")
    assert "hunter2" not in str(bad.value)


def test_from_url_picks_the_cluster_stores_by_scheme() -> None:
    url = "redis+cluster://127.0.0.1:1"
    assert isinstance(base.from_url(url), RedisClusterStore)
    assert isinstance(base.async_from_url(url), AsyncRedisClusterStore)
    assert isinstance(base.from_url("rediss+cluster://127.0.0.1:1"), RedisClusterStore)


def test_a_down_cluster_is_a_store_error_not_a_crash_at_start() -> None:
    store = RedisClusterStore.from_url("redis+cluster://127.0.0.1:1")  # connects on first use
    started = time.monotonic()
    for _ in range(3):
        with pytest.raises(StoreError, match="cannot be connected"):
            store.get("k")
    assert time.monotonic() - started < 3


# -- on the real cluster ------------------------------------------------------------------------


def _primary_clients(cluster: RedisClusterServer) -> list[redis.Redis]:
    return [redis.Redis(port=port) for port in cluster.primaries()]


def test_multi_key_operations_span_every_primary(redis_cluster_ready: RedisClusterServer) -> None:
    store = RedisClusterStore.from_url(redis_cluster_ready.url)
    keys = [f"llm:ns:1:x:{{{i:03d}}}" for i in range(90)]
    for key in keys:
        store.set(key, b"head-" + key.encode(), None)
    primaries = _primary_clients(redis_cluster_ready)
    assert all(client.dbsize() > 0 for client in primaries)  # the keys are spread
    scanned = [key for batch in store.scan("llm:ns:1:x:*", count=10) for key in batch]
    assert sorted(scanned) == sorted(keys)
    heads = store.heads([*keys, "missing"], 6)
    assert heads == [b"head-l"] * 90 + [None]
    assert store.delete([*keys, "missing", keys[0]]) == 90
    assert all(client.dbsize() == 0 for client in primaries)
    for client in primaries:
        client.close()
    store.close()


@pytest.mark.asyncio
async def test_async_multi_key_operations_span_every_primary(
    redis_cluster_ready: RedisClusterServer,
) -> None:
    store = AsyncRedisClusterStore.from_url(redis_cluster_ready.url)
    keys = [f"k:{{{i}}}" for i in range(60)]
    for key in keys:
        await store.set(key, b"v", None)
    assert {k async for batch in store.scan("k:*", 7) for k in batch} == set(keys)
    assert await store.heads(keys, 1) == [b"v"] * 60
    assert await store.delete(keys) == 60
    await store.close()


@pytest.fixture
def restricted_user(redis_cluster_ready: RedisClusterServer) -> Iterator[str]:
    """A user that may not run @dangerous commands (CONFIG, FLUSHALL, KEYS, INFO...), as on
    managed clusters; its URL."""
    clients = [redis.Redis(port=port) for port in redis_cluster_ready.ports]
    for client in clients:  # ACLs are per node: a managed service sets them on each
        client.acl_setuser(
            "app", enabled=True, passwords=["+s3cret-pw"], keys=["*"], channels=["*"],
            commands=["+@all", "-@dangerous"],
        )  # fmt: skip
    yield redis_cluster_ready.url.replace("://", "://app:s3cret-pw@")
    for client in clients:
        client.acl_deluser("app")
        client.close()


def test_no_dangerous_command_is_needed(
    restricted_user: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="llmemo.stores")
    store = RedisClusterStore.from_url(restricted_user)
    store.set("a", b"1", 10)
    assert store.add("l:{a}", b"t", 10)
    assert store.expire_if_equal("l:{a}", b"t", 10)
    assert store.delete_if_equal("l:{a}", b"t")
    assert store.incr("stats", {"hits": 2}) == {"hits": 2}
    assert store.counters("stats") == {"hits": 2}
    assert [k for batch in store.scan("*") for k in batch] != []
    assert store.heads(["a", "b"], 1) == [b"1", None]
    assert store.delete(["a", "stats"]) == 2
    store.ping()
    store.close()
    assert "cannot read maxmemory-policy" in caplog.text  # CONFIG refused: skipped quietly
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_wrong_password_is_a_store_error_without_the_password(
    restricted_user: str,
) -> None:
    store = RedisClusterStore.from_url(restricted_user.replace("s3cret-pw", "wrong-pw"))
    with pytest.raises(StoreError) as caught:
        store.get("a")
    assert "wrong-pw" not in str(caught.value)


def test_non_evicting_policy_is_warned_once(
    redis_cluster_ready: RedisClusterServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A node order of its own: the warning is once per cluster URL in a process.
    url = "redis+cluster://" + ",".join(
        f"127.0.0.1:{p}" for p in reversed(redis_cluster_ready.ports)
    )
    for port in redis_cluster_ready.primaries():
        command(port, "CONFIG", "SET", "maxmemory-policy", "noeviction")
    caplog.set_level(logging.WARNING, logger="llmemo.stores")
    for _ in range(2):
        store = RedisClusterStore.from_url(url)
        store.get("k")
        store.close()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "maxmemory-policy noeviction" in warnings[0]


@pytest.mark.asyncio
async def test_async_store_reads_the_policy_on_its_first_call(
    redis_cluster_ready: RedisClusterServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Another node order of its own (the warning is once per cluster URL in a process).
    ports = redis_cluster_ready.ports
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports[1:] + ports[:1])
    for port in redis_cluster_ready.primaries():
        command(port, "CONFIG", "SET", "maxmemory-policy", "noeviction")
    caplog.set_level(logging.WARNING, logger="llmemo.stores")
    for warned in (0, 1):
        store = AsyncRedisClusterStore.from_url(url)  # no connection, so nothing read yet
        assert len(caplog.records) == warned
        await store.ping()  # any first call, as the sync store
        await store.close()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "maxmemory-policy noeviction" in warnings[0]


# -- the node gate -------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_gate_holds_a_failed_node_then_lets_one_probe_through() -> None:
    clock = Clock()
    gate = NodeGate(cooldown=0.5, clock=clock)
    assert gate.allow("a") and gate.allow(None)
    gate.failed("a")
    assert not gate.allow("a")
    assert gate.allow("b")  # other nodes are not held up
    clock.now += 0.6
    assert gate.allow("a")  # the probe
    assert not gate.allow("a")  # only one at a time
    gate.failed("a")
    assert not gate.allow("a")
    clock.now += 0.6
    assert gate.allow("a")
    gate.ok("a")
    assert gate.allow("a") and gate.allow("a")


def _pid(cluster: RedisClusterServer, port: int) -> int:
    process: Any = cluster.nodes[port].process
    return int(process.pid)


def test_a_hung_primary_costs_one_timeout_not_one_per_call(
    redis_cluster_ready: RedisClusterServer,
) -> None:
    """SIGSTOP a primary (it accepts connections but never answers): its keys fail fast after
    the first timeout, the other primaries' keys keep working, and the promoted replica serves."""
    cluster = redis_cluster_ready
    store = RedisClusterStore.from_url(cluster.url)
    keys = [f"k{{{i}}}" for i in range(30)]
    for key in keys:
        store.set(key, b"v", None)
    client = store.client
    victim = client.get_node_from_key(keys[0]).port  # type: ignore[no-untyped-call]
    mine = [k for k in keys if client.get_node_from_key(k).port == victim]  # type: ignore[no-untyped-call]
    others = [k for k in keys if k not in mine]
    os.kill(_pid(cluster, victim), signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(StoreError):
            store.get(mine[0])  # pays the socket timeout (twice: one retry)
        first = time.monotonic() - started
        started = time.monotonic()
        for key in mine[1:]:
            with pytest.raises(NodeDownError):
                store.get(key)
        fast = time.monotonic() - started
        assert all(store.get(key) == b"v" for key in others)
        assert first >= 0.5
        assert fast < 0.05
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the replica takes over; a probe finds it
            try:
                if store.get(mine[0]) == b"v":
                    break
            except StoreError:
                time.sleep(0.05)
        assert all(store.get(key) == b"v" for key in mine)
    finally:
        os.kill(_pid(cluster, victim), signal.SIGCONT)
        store.close()
