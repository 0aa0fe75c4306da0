"""Session fixtures: real servers on free loopback ports (started here, never assumed running)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmemo.testing.redis_server import RedisServer

pytest_plugins = ["tests.servers"]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One Debian `redis-server` for the whole session."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The session server's URL, emptied before each test (restarted if a test stopped it)."""
    import redis

    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    yield redis_server.url
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
