"""Hot answers (service/hot.py): a request hit again and again is answered from its finished bytes,
and only while they are exactly what the normal hit path would send."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from starlette.applications import Starlette

from devtools.redis_server import RedisServer
from llmemo.core._async.cache import AsyncCache
from llmemo.core.breaker import CircuitBreaker
from llmemo.core.request import from_openai
from llmemo.service import create_app, load_settings
from llmemo.service.hot import HotAnswers
from llmemo.service.metrics import Metrics
from llmemo.service.proxy import Proxy
from llmemo.stores import async_from_url
from llmemo.testing.server import UpstreamServer

CHAT = "/v1/chat/completions"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Is this hot?"}]}
ALICE = {"authorization": "Bearer sk-alice-hot"}
BOB = {"authorization": "Bearer sk-bob-hot"}

pytestmark = pytest.mark.asyncio


class Service:
    """The app in process, with a count of the requests that took the normal cache path."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.proxy: Proxy = app.state.service.proxy
        self.computed = 0
        compute = self.proxy.cache.compute

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.computed += 1
            return await compute(*args, **kwargs)

        self.proxy.cache.compute = counted  # type: ignore[method-assign]
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://llmemo"
        )

    async def ask(self, headers: dict[str, str] = ALICE, body: Any = BODY) -> httpx.Response:
        answer = await self.client.post(CHAT, json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        return answer


@pytest_asyncio.fixture
async def start(redis_url: str, upstream: UpstreamServer) -> AsyncIterator[Any]:
    async with contextlib.AsyncExitStack() as stack:

        async def make(**overrides: Any) -> Service:
            settings = load_settings(
                store=redis_url,
                openai_base_url=upstream.openai_base_url,
                anthropic_base_url=upstream.url,
                **overrides,
            )
            app = create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            service = Service(app)
            stack.push_async_callback(service.client.aclose)
            return service

        yield make


class Clocks:
    """The service cache's wall and monotonic clocks, moved by hand from now on (both start at
    the real time, so what the cache stamped before still reads right)."""

    def __init__(self, service: Service) -> None:
        self.wall, self.mono = time.time(), time.monotonic()
        cache = service.proxy.cache
        cache.clock = lambda: self.wall
        cache.monotonic = lambda: self.mono
        if cache.near is not None:
            cache.near.clock = cache.monotonic

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


async def hot_service(start: Any, **overrides: Any) -> Service:
    """A service whose BODY is hot: a miss, two normal hits (the second builds the hot answer)."""
    service = await start(**overrides)
    statuses = [(await service.ask()).headers["x-llmemo-cache"] for _ in range(3)]
    assert statuses == ["miss", "hit", "hit"]
    assert service.computed == 3 and len(service.proxy.hot) == 1
    return service


async def test_a_hot_answer_is_the_normal_hit_byte_for_byte(start: Any) -> None:
    service = await start()
    await service.ask()
    normal = await service.ask()
    await service.ask()  # builds it
    hot = await service.ask()
    assert service.computed == 3  # the fourth request took the hot answer
    assert hot.content == normal.content
    assert hot.headers["x-llmemo-cache"] == "hit"
    drop = ("age", "date")
    assert [(k, v) for k, v in hot.headers.items() if k not in drop] == [
        (k, v) for k, v in normal.headers.items() if k not in drop
    ]
    assert hot.headers["age"] == "0"


async def test_hot_hits_count_like_normal_hits(start: Any, upstream: UpstreamServer) -> None:
    service = await hot_service(start)
    for _ in range(5):
        await service.ask()
    assert service.computed == 3
    assert upstream.stats().count(CHAT) == 1
    cache = service.proxy.cache
    stats = await cache.stats()
    usage = (await service.ask()).json()["usage"]
    assert stats.hits == 7 and stats.misses == 1
    assert stats.tokens_saved == 7 * usage["total_tokens"]
    assert stats.dollars_saved > 0
    metrics = (await service.client.get("/metrics")).text
    hits = f'llmemo_requests_total{{cache="hit",model="gpt-4o-mini",route="{CHAT}"}} 8.0'
    assert hits in metrics
    tokens = f'llmemo_tokens_saved_total{{model="gpt-4o-mini",route="{CHAT}"}} '
    saved = float(metrics.split(tokens)[1].split()[0])
    assert saved == 8 * usage["total_tokens"]
    assert 'llmemo_hit_latency_seconds_count{route="/v1/chat/completions"} 8.0' in metrics


async def test_a_delete_or_invalidate_through_the_cache_is_seen_at_once(start: Any) -> None:
    service = await hot_service(start)
    cache = service.proxy.cache
    [key] = hot_keys(service)
    assert await cache.delete_key(key)
    assert (await service.ask()).headers["x-llmemo-cache"] == "miss"
    for _ in range(3):  # a normal hit rebuilds it (the request is known), then hot twice
        assert (await service.ask()).headers["x-llmemo-cache"] == "hit"
    assert service.computed == 5
    await cache.invalidate()
    assert (await service.ask()).headers["x-llmemo-cache"] == "miss"


def hot_keys(service: Service) -> list[str]:
    """The store keys of the service's built hot answers."""
    cache = service.proxy.cache
    hot = service.proxy.hot
    return [
        cache._key_of(h.answer.call, cache._last_version(h.answer.call.scope.namespace) or 0)
        for h in hot._hot.values()
        if h is not None
    ]


async def test_a_version_bump_in_this_process_is_seen_at_once(start: Any) -> None:
    service = await hot_service(start)
    await service.proxy.cache.bump_version()
    assert (await service.ask()).headers["x-llmemo-cache"] == "miss"


async def test_another_process_s_change_is_seen_within_the_near_ttl(
    start: Any, redis_url: str
) -> None:
    service = await hot_service(start, near_ttl="0.4s")
    clocks = Clocks(service)
    other = AsyncCache(async_from_url(redis_url), namespace="default")
    try:
        await other.bump_version()
        assert (await service.ask()).headers["x-llmemo-cache"] == "hit"  # both bounds still run
        clocks.advance(1.1)  # past the near cache's ttl and the version's (1 s)
        assert (await service.ask()).headers["x-llmemo-cache"] == "miss"
    finally:
        await other.close()


async def test_tenants_never_share_a_hot_answer(start: Any, upstream: UpstreamServer) -> None:
    service = await hot_service(start)
    assert (await service.ask(BOB)).headers["x-llmemo-cache"] == "miss"
    assert upstream.stats().count(CHAT) == 2


async def test_shared_mode_shares_it(start: Any, upstream: UpstreamServer) -> None:
    service = await hot_service(start, shared=True)
    assert (await service.ask(BOB)).headers["x-llmemo-cache"] == "hit"
    assert service.computed == 3 and upstream.stats().count(CHAT) == 1


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"cache-control": "no-cache"}, "miss"),  # a refresh goes upstream
        ({"cache-control": "no-cache, no-store"}, "bypass"),
        ({"x-llmemo-namespace": "other"}, "miss"),
        ({"x-llmemo-ttl": "5m"}, "hit"),  # the same entry, through the normal path
    ],
)
async def test_control_headers_take_the_normal_path(
    start: Any, headers: dict[str, str], status: str
) -> None:
    service = await hot_service(start)
    answer = await service.ask({**ALICE, **headers})
    assert answer.headers["x-llmemo-cache"] == status
    assert service.computed == 4


async def test_a_stream_request_is_not_answered_hot(start: Any) -> None:
    service = await hot_service(start)
    answer = await service.ask(body={**BODY, "stream": True})
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.text.rstrip().endswith("data: [DONE]")
    assert service.computed == 4


async def test_age_is_counted_at_each_use(start: Any) -> None:
    service = await hot_service(start, near_ttl="5s")
    Clocks(service).advance(1.05)
    await service.ask()  # the normal path: the namespace's version is read again (after 1 s)
    answer = await service.ask()
    assert service.computed == 4  # hot again: the near cache keeps the entry 5 s
    assert int(answer.headers["age"]) >= 1


async def test_an_entry_past_its_soft_ttl_is_stale_not_hot(start: Any) -> None:
    service = await hot_service(start, ttl="1s", stale_grace="30s", near_ttl="10s")
    Clocks(service).advance(1.2)  # past the soft TTL (1 s +-10 %); the near cache still keeps it
    assert (await service.ask()).headers["x-llmemo-cache"] == "stale"
    assert service.computed == 4


async def test_a_hot_answer_ends_at_its_entry_s_soft_ttl(redis_url: str) -> None:
    """Unit level, on a fake clock: the namespace's version and the near cache both still say
    yes, the soft TTL alone says no."""
    now = [1_000.0]
    cache = AsyncCache(
        async_from_url(redis_url),
        near=600,
        version_ttl=600,
        ttl=10,
        stale_grace=30,
        clock=lambda: now[0],
    )
    try:
        hot = HotAnswers(cache, Metrics())
        request = from_openai(BODY, "chat")
        key = (CHAT, b"the body", None, "")

        async def call() -> dict[str, Any]:
            message = {"role": "assistant", "content": "Yes."}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return {"model": "gpt-4o-mini", "choices": [choice], "usage": {"total_tokens": 3}}

        assert (await cache.compute(request, call)).status == "miss"
        for _ in range(2):
            result = await cache.compute(request, call)
            hot.learn(key, request, None, result, orjson.dumps(result.response))
        assert await hot.get(key) is not None
        now[0] += 8.9  # the soft TTL is 10 s +-10 %: still fresh
        assert await hot.get(key) is not None
        now[0] += 2.2  # 11.1 s: past it, whatever the jitter
        assert await hot.get(key) is None
        assert (await cache.compute(request, call)).status == "stale"
    finally:
        await cache.close()


async def test_with_the_near_cache_off_the_store_s_value_is_checked_each_time(
    start: Any, redis_url: str
) -> None:
    service = await hot_service(start, near_ttl="0")
    await service.ask()
    assert service.computed == 3  # hot: the value read from Redis is the one it was built from
    other = AsyncCache(async_from_url(redis_url))
    try:
        [key] = hot_keys(service)
        assert await other.delete_key(key)  # another process: seen at once, no near cache
    finally:
        await other.close()
    assert (await service.ask()).headers["x-llmemo-cache"] == "miss"
    assert [(await service.ask()).headers["x-llmemo-cache"] for _ in range(3)] == ["hit"] * 3
    assert service.computed == 5  # the new entry is hot after one normal hit


async def test_store_down_a_hot_request_fails_open_and_counts_its_errors_once(
    start: Any, redis_server: RedisServer, upstream: UpstreamServer
) -> None:
    service = await hot_service(start, near_ttl="0")
    cache = service.proxy.cache
    cache.breaker = CircuitBreaker(threshold=1000)  # stays closed: every request tries the store
    other = {**BODY, "messages": [{"role": "user", "content": "Not hot."}]}
    await service.ask(body=other)
    redis_server.stop()
    try:
        counted = []
        for body in (BODY, other):  # hot, then a request the normal path alone handles
            before = cache.local_stats().store_errors
            assert (await service.ask(body=body)).headers["x-llmemo-cache"] == "miss"
            counted.append(cache.local_stats().store_errors - before)
        assert counted[0] == counted[1] > 0
    finally:
        redis_server.start()
    assert upstream.stats().count(CHAT) == 4


async def test_memory_is_bounded(redis_url: str) -> None:
    cache = AsyncCache(async_from_url(redis_url), near=1)
    try:
        hot = HotAnswers(cache, Metrics(), max_bytes=4096)
        for n in range(100):
            hot._remember((CHAT, b"x" * 100 + str(n).encode(), None), None)
            assert hot._bytes <= 4096
        assert 0 < len(hot._hot) <= 40
    finally:
        await cache.close()


async def test_a_full_table_keeps_its_answers_and_drops_the_marks(redis_url: str) -> None:
    cache = AsyncCache(async_from_url(redis_url), near=1)
    try:
        request = from_openai(BODY, "chat")
        message = {"role": "assistant", "content": "x" * 900}
        answer = {"id": "kept", "object": "chat.completion", "model": "gpt-4o-mini"}
        answer["choices"] = [{"index": 0, "message": message, "finish_reason": "stop"}]
        assert await cache.store(request, answer)
        hot = HotAnswers(cache, Metrics(), max_bytes=8192)
        key = (CHAT, b"kept", None, "")
        result = await cache.compute(request, _no_call)
        body = orjson.dumps(result.response)
        hot.learn(key, request, None, result, body)  # a first hit: marked
        hot.learn(key, request, None, result, body)  # a second: built
        assert len(hot) == 1
        for n in range(200):  # many other requests hit once: their marks fill the table
            hot._remember((CHAT, b"y" * 100 + str(n).encode(), None, ""), None)
            assert hot._bytes <= 8192
        assert len(hot) == 1 and await hot.get(key) is not None  # the built answer stayed
    finally:
        await cache.close()


async def _no_call() -> dict[str, Any]:
    raise AssertionError("a hit does not call the upstream")


async def test_building_a_hot_answer_reads_the_store_no_more_than_the_hit(
    start: Any, redis_url: str
) -> None:
    # The second hit keeps the value and body it already has: one GET for it, no second read.
    import redis

    admin = redis.Redis.from_url(redis_url)
    service = await start(near_ttl="0")
    await service.ask()  # a miss
    await service.ask()  # a first hit: marked
    admin.config_resetstat()
    await service.ask()  # a second hit: its hot answer built
    assert len(service.proxy.hot) == 1
    gets = admin.info("commandstats").get("cmdstat_get", {}).get("calls", 0)
    assert gets == 1
    first = (await service.ask()).content  # hot: read once more to be checked current
    assert first == (await service.ask()).content
    admin.close()
