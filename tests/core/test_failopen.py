"""Fail-open on a real Redis: stop the server mid-test, calls still answer; restart, hits resume."""

from __future__ import annotations

import time

import pytest

from devtools.redis_server import RedisServer
from llmemo import AsyncCache, Cache, CircuitBreaker
from tests.core.helpers import Clock, Upstream, answer, chat


def test_sync_cache_fails_open_and_recovers(redis_url: str, redis_server: RedisServer) -> None:
    mono = Clock()
    breaker = CircuitBreaker(threshold=2, reset=0.3, clock=mono)
    cache = Cache.from_url(redis_url, breaker=breaker, version_ttl=0)
    upstream = Upstream()
    assert cache.compute(chat(), upstream).status == "miss"
    assert cache.compute(chat(), upstream).status == "hit"

    redis_server.stop()
    started = time.monotonic()
    results = [cache.compute(chat(), upstream) for _ in range(20)]
    elapsed = time.monotonic() - started
    assert all(r.response == answer() for r in results)
    assert all(r.status == "miss" for r in results)
    assert cache.breaker.state in ("open", "half-open")
    # Only the first calls paid a connection failure; the open circuit skips the store after that.
    assert elapsed < 20 * 0.5
    assert cache.stats().store_errors >= 2  # local counters: the store is down

    redis_server.start()
    mono.advance(0.35)  # the breaker's reset: the next call is the probe
    assert cache.compute(chat(), upstream).status == "miss"  # the restarted server is empty
    assert cache.compute(chat(), upstream).status == "hit"
    assert cache.breaker.state == "closed"
    cache.close()


@pytest.mark.asyncio
async def test_async_cache_fails_open_and_recovers(
    redis_url: str, redis_server: RedisServer
) -> None:
    mono = Clock()
    breaker = CircuitBreaker(threshold=2, reset=0.3, clock=mono)
    cache = AsyncCache.from_url(redis_url, breaker=breaker, version_ttl=0)
    upstream = Upstream()
    await cache.compute(chat(), upstream.acall)
    assert (await cache.lookup(chat())) is not None
    redis_server.stop()
    for _ in range(5):
        result = await cache.compute(chat(), upstream.acall)
        assert result.response == answer()
    assert (await cache.lookup(chat())) is None
    redis_server.start()
    mono.advance(0.35)  # the breaker's reset: the next call is the probe
    await cache.compute(chat(), upstream.acall)
    assert (await cache.compute(chat(), upstream.acall)).status == "hit"
    await cache.close()


def test_store_errors_never_reach_the_caller_on_any_api(
    redis_url: str, redis_server: RedisServer
) -> None:
    cache = Cache.from_url(redis_url, breaker=CircuitBreaker(threshold=1000))
    redis_server.stop()
    assert cache.lookup(chat()) is None
    assert cache.store(chat(), answer()) is False
    assert cache.get_or_compute(chat(), Upstream()) == answer()
    assert cache.stats().source == "local"
    cache.close()
