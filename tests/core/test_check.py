"""Failing open is not silent: store errors and the circuit are logged; `check()` says what works."""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Iterator

import pytest
import redis

from devtools.redis_server import RedisServer, free_port
from llmemo import AsyncCache, Cache, CircuitBreaker
from llmemo.core.semantic import SemanticLayer
from tests.core.helpers import Upstream, chat


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "llmemo.cache" and r.levelno == logging.WARNING
    ]


@pytest.fixture
def dead_url() -> str:
    return f"redis://:hunter2@127.0.0.1:{free_port()}/0"


def test_store_errors_are_logged_at_most_once_a_minute(
    dead_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    cache = Cache.from_url(dead_url, breaker=CircuitBreaker(threshold=1000), version_ttl=0)
    cache.alarm.clock = lambda: now[0]
    caplog.set_level(logging.WARNING, logger="llmemo.cache")
    for _ in range(3):
        assert cache.compute(chat(), Upstream()).status == "miss"
    [first] = warnings_of(caplog)
    port = dead_url.rsplit(":", 1)[1]
    assert f"the store redis://:***@127.0.0.1:{port} failed" in first
    assert "ConnectionError" in first and "failing open" in first
    assert "hunter2" not in caplog.text
    now[0] = 61.0
    cache.compute(chat(), Upstream())
    second = warnings_of(caplog)[1]
    held = cache.stats().store_errors - 2  # every error but the two logged
    assert f"({held} more store errors since the last warning, not logged)" in second
    cache.close()


def test_the_circuit_opening_and_closing_is_logged(
    redis_url: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [0.0]
    breaker = CircuitBreaker(threshold=2, reset=5.0, clock=lambda: clock[0])
    cache = Cache.from_url(redis_url, breaker=breaker, version_ttl=0)
    caplog.set_level(logging.WARNING, logger="llmemo.cache")
    cache.compute(chat(), Upstream())
    assert warnings_of(caplog) == []
    redis_server.stop()
    for _ in range(4):
        cache.compute(chat(), Upstream())
    logged = warnings_of(caplog)
    assert len(logged) == 2, logged  # the first error, then the circuit opening (once)
    assert "circuit open" in logged[1] and "every 5 s" in logged[1]
    redis_server.start()
    clock[0] = 10.0  # past the reset: the next call probes the store, which answers
    cache.compute(chat(), Upstream())
    assert cache.breaker.state == "closed"
    assert "answers again: circuit closed" in warnings_of(caplog)[-1]
    assert len(warnings_of(caplog)) == 3
    cache.close()


@pytest.fixture
def policy(redis_url: str) -> Iterator[redis.Redis]:
    """The test server's client; its maxmemory-policy is put back after the test."""
    client = redis.Redis.from_url(redis_url)
    before = client.config_get("maxmemory-policy")["maxmemory-policy"]
    yield client
    client.config_set("maxmemory-policy", before)
    client.close()


def test_check_a_working_redis(redis_url: str, policy: redis.Redis) -> None:
    policy.config_set("maxmemory-policy", "allkeys-lru")
    with Cache.from_url(redis_url) as cache:
        report = cache.check()
    assert report.ok and report.reachable and report.error is None
    assert report.latency_ms is not None and report.latency_ms > 0
    assert report.server is not None and report.server.startswith("redis ")
    assert report.search is False and report.eviction == "allkeys-lru"
    assert report.warnings == () and report.semantic is None
    assert list(policy.scan_iter("llmemo:check:*")) == []  # the probe key is gone


def test_check_warns_about_a_policy_that_never_evicts(redis_url: str, policy: redis.Redis) -> None:
    policy.config_set("maxmemory-policy", "noeviction")
    with Cache.from_url(redis_url) as cache:
        report = cache.check()
    assert report.ok and report.eviction == "noeviction"
    [warning] = report.warnings
    assert "noeviction" in warning and "allkeys-lru" in warning


def test_check_sees_the_search_module(redis_stack_url: str) -> None:
    with Cache.from_url(redis_stack_url) as cache:
        assert cache.check().search is True


@pytest.mark.asyncio
async def test_async_check(redis_url: str, dead_url: str) -> None:
    async with AsyncCache.from_url(redis_url) as cache:
        report = await cache.check()
    assert report.ok and report.server is not None
    async with AsyncCache.from_url(dead_url) as dead:
        down = await dead.check()
    assert not down.ok and not down.reachable
    assert down.error is not None and "ConnectionError" in down.error
    assert "hunter2" not in repr(down)


def test_check_a_dead_store(dead_url: str) -> None:
    with Cache.from_url(dead_url) as cache:
        report = cache.check()
    assert not report.ok and not report.reachable
    assert report.store.startswith("redis://:***@") and "hunter2" not in repr(report)


def test_check_sqlite_and_the_embedder(tmp_path: object) -> None:
    with Cache.from_url(f"sqlite:///{tmp_path}/c.db", semantic=SemanticLayer("minilm")) as cache:
        report = cache.check()
    assert report.ok and report.server is None and report.search is None
    assert report.semantic_ok is True
    assert report.semantic is not None and "384 dims" in report.semantic


@pytest.mark.parametrize("kind", [Cache, AsyncCache])
def test_a_dropped_cache_is_freed_at_once(kind: type[Cache] | type[AsyncCache]) -> None:
    """No reference cycle through the breaker's or the alarm's callbacks: a cache (and its
    connections) is freed when dropped, not at some later GC pass."""
    gc.disable()
    try:
        cache = kind.from_url("memory://")
        ref = weakref.ref(cache)
        del cache
        assert ref() is None
    finally:
        gc.enable()
