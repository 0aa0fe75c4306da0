"""Session fixtures: real servers on free loopback ports (started here, never assumed running):
Debian's `redis-server` and the local fake OpenAI/Anthropic upstream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from devtools.redis_server import RedisServer

if TYPE_CHECKING:  # imported in the fixture: the upstream needs the `server` extra (uvicorn)
    from llmemo.testing.server import UpstreamServer

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


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[UpstreamServer]:
    """One local upstream (`llmemo.testing`) for the whole session."""
    from llmemo.testing.server import UpstreamServer

    with UpstreamServer() as server:
        yield server


@pytest.fixture
def upstream(upstream_server: UpstreamServer) -> UpstreamServer:
    """The session upstream with its call log emptied before each test."""
    upstream_server.reset()
    return upstream_server
