"""Session fixtures for Redis Stack (vector search) and a real Redis Cluster.

Registered by `pytest_plugins` in tests/conftest.py. The stack comes from
`scripts/install-redis-stack` (run by `scripts/test`); a missing install fails with that hint.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from devtools.redis_cluster import RedisClusterServer
from devtools.redis_server import RedisServer
from devtools.redis_stack import redis_stack_server

if TYPE_CHECKING:
    from redis.cluster import ClusterNode


def _ensure_running(server: RedisServer) -> None:
    if server.process is None or server.process.poll() is not None:
        server.start()


@pytest.fixture(scope="session")
def redis_stack() -> Iterator[RedisServer]:
    """One Redis Stack server (RediSearch + RedisJSON) for the whole session."""
    with redis_stack_server() as server:
        yield server


@pytest.fixture
def redis_stack_url(redis_stack: RedisServer) -> Iterator[str]:
    """The stack's URL, emptied before each test: no keys, no search indexes."""
    import redis

    _ensure_running(redis_stack)
    with redis.Redis.from_url(redis_stack.url) as client:
        for index in client.execute_command("FT._LIST"):
            client.execute_command("FT.DROPINDEX", index)
        client.flushall()
    yield redis_stack.url
    _ensure_running(redis_stack)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServer]:
    """A cluster of 3 primaries + 3 replicas; a killed primary is replaced in about 2 s."""
    with RedisClusterServer(primaries=3, replicas=1, node_timeout_ms=1000) as cluster:
        yield cluster


@pytest.fixture
def redis_cluster_ready(redis_cluster: RedisClusterServer) -> RedisClusterServer:
    """The session cluster with every node running, state ok, and no keys."""
    for port in redis_cluster.ports:
        redis_cluster.restart(port)
    redis_cluster.wait_ok(timeout=30)
    redis_cluster.flushall()
    return redis_cluster


@pytest.fixture
def redis_cluster_nodes(redis_cluster_ready: RedisClusterServer) -> list[ClusterNode]:
    """Startup nodes (every node) of the emptied, healthy session cluster."""
    return redis_cluster_ready.startup_nodes


@pytest.fixture
def redis_cluster_url(redis_cluster_ready: RedisClusterServer) -> str:
    """`redis+cluster://127.0.0.1:p1,...` of the emptied, healthy session cluster."""
    return redis_cluster_ready.url
