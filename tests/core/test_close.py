"""Closing a cache leaves no connection open: open and close it many times, with a background
refresh in flight or with its circuit open, and the process's open sockets (and the clients Redis
sees) come back to where they were."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import threading
from typing import Any

import pytest
import redis

from llmemo.core._async.cache import AsyncCache
from llmemo.core._sync.cache import Cache
from llmemo.core.breaker import CircuitBreaker
from llmemo.core.request import from_openai
from llmemo.stores import async_from_url, from_url

ROUNDS = 8
REQUEST = from_openai(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Still open?"}]}, "chat"
)
_rounds = iter(range(1_000_000))


def fresh_request() -> Any:
    """A request no earlier round stored (each round starts a new fake clock)."""
    content = f"Still open? ({next(_rounds)})"
    return from_openai(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}, "chat"
    )


ANSWER = {
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "No."}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


def open_sockets() -> int:
    """Sockets this process holds, after the garbage collector ran (a leaked connection is only
    found, and its ResourceWarning raised, when it is collected)."""
    gc.collect()
    fds = os.listdir("/proc/self/fd")
    count = 0
    for fd in fds:
        with contextlib.suppress(OSError):  # closed between listdir and readlink
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def clients(url: str) -> int:
    """Connections the Redis server has, not counting the one asking."""
    with redis.Redis.from_url(url) as admin:
        return len(admin.client_list()) - 1


def stale_cache_options(now: list[float]) -> dict[str, Any]:
    return {"ttl": 10, "stale_grace": 60, "clock": lambda: now[0]}


@pytest.mark.asyncio
async def test_async_close_waits_for_a_background_refresh(redis_url: str) -> None:
    async def round_trip() -> None:
        now = [1_000.0]
        cache = AsyncCache(async_from_url(redis_url), **stale_cache_options(now))
        refreshed = asyncio.Event()

        async def slow() -> dict[str, Any]:
            await asyncio.sleep(0.05)  # still running when close() is called
            refreshed.set()
            return ANSWER

        request = fresh_request()
        assert (await cache.compute(request, slow)).status == "miss"
        now[0] += 11.1  # past the soft TTL (10 s +-10 %): stale, a refresh starts
        assert (await cache.compute(request, slow)).status == "stale"
        await cache.close()
        assert refreshed.is_set()  # close() waited for it, then closed the store
        await asyncio.sleep(0.1)  # a refresh that outlived close() would reconnect here

    await round_trip()  # warm-up: imports, the event loop's own sockets
    sockets, connected = open_sockets(), clients(redis_url)
    for _ in range(ROUNDS):
        await round_trip()
    assert open_sockets() <= sockets
    assert clients(redis_url) <= connected


@pytest.mark.asyncio
async def test_async_close_cancels_a_refresh_that_outlasts_its_timeout(redis_url: str) -> None:
    now = [1_000.0]
    cache = AsyncCache(async_from_url(redis_url), **stale_cache_options(now))
    cancelled = asyncio.Event()

    async def stuck() -> dict[str, Any]:
        try:
            await asyncio.sleep(5)  # far longer than close() waits; bounded if it never cancels
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return ANSWER

    request = fresh_request()
    await cache.store(request, ANSWER)
    now[0] += 11.1
    assert (await cache.compute(request, stuck)).status == "stale"
    await asyncio.sleep(0)  # the refresh task starts and waits
    await cache.close(timeout=0.05)
    assert cancelled.is_set()


def test_sync_close_waits_for_a_background_refresh(redis_url: str) -> None:
    def round_trip() -> None:
        now = [1_000.0]
        cache = Cache(from_url(redis_url), **stale_cache_options(now))
        release = threading.Event()
        refreshed = threading.Event()

        def slow() -> dict[str, Any]:
            release.wait(5)
            refreshed.set()
            return ANSWER

        request = fresh_request()
        cache.store(request, ANSWER)
        now[0] += 11.1
        assert cache.compute(request, slow).status == "stale"
        threading.Timer(0.05, release.set).start()
        cache.close()
        assert refreshed.is_set()

    round_trip()
    sockets, connected = open_sockets(), clients(redis_url)
    for _ in range(ROUNDS):
        round_trip()
    assert open_sockets() <= sockets
    assert clients(redis_url) <= connected


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_close_with_the_circuit_open_still_closes_the_store(
    redis_url: str, kind: str
) -> None:
    """An open circuit skips the store for requests, not for close(): its pooled connections
    would stay open."""

    async def round_trip() -> None:
        breaker = CircuitBreaker(threshold=1, reset=3600)
        if kind == "async":
            acache = AsyncCache(async_from_url(redis_url), breaker=breaker)
            await asyncio.gather(*(acache.lookup(REQUEST) for _ in range(4)))
            breaker.failure()
            assert breaker.state == "open"
            await acache.close()
        else:
            cache = Cache(from_url(redis_url), breaker=breaker)
            cache.lookup(REQUEST)
            breaker.failure()
            cache.close()

    await round_trip()
    sockets, connected = open_sockets(), clients(redis_url)
    for _ in range(ROUNDS):
        await round_trip()
    assert open_sockets() <= sockets
    assert clients(redis_url) <= connected
