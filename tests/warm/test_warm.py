"""llmemo.warm: parsing items and batches, and the Warmer against real stores (time injected)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from devtools.redis_server import RedisServer
from llmemo.core._async.cache import AsyncCache
from llmemo.core.policy import TtlPolicy
from llmemo.core.request import from_anthropic, from_openai
from llmemo.errors import ConfigError
from llmemo.stores.memory import AsyncMemoryStore
from llmemo.warm import (
    InvalidItem,
    Warmer,
    WarmError,
    WarmItem,
    parse_batch,
    parse_item,
    warm_shared,
)
from tests.core.helpers import answer


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Upstream:
    """A counting caller; `fail` makes it raise, `finish` sets the answer's finish reason."""

    def __init__(self, fail: bool = False, finish: str = "stop", delay: float = 0.0) -> None:
        self.calls = 0
        self.fail = fail
        self.finish = finish
        self.delay = delay
        self.running = 0
        self.peak = 0

    async def __call__(self, item: WarmItem) -> Mapping[str, Any]:
        self.calls += 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.fail:
                raise WarmError("the openai upstream answered 503: overloaded")
            return answer(model=item.model or "gpt-4o-mini", finish=self.finish)
        finally:
            self.running -= 1


def cache(clock: Clock | None = None, ttl: float = 100.0) -> AsyncCache:
    policy = TtlPolicy.build(ttl, jitter=0.0)
    return AsyncCache(AsyncMemoryStore(), ttl=policy, clock=clock or Clock())


# -- parsing ------------------------------------------------------------------------------------


def test_the_simple_form_is_a_chat_request() -> None:
    openai = parse_item({"query": "Hi", "model": "gpt-4o-mini", "system": "Be brief."})
    assert openai.provider == "openai" and openai.path == "/chat/completions"
    assert openai.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    claude = parse_item({"query": "Hi", "model": "claude-3-5-haiku-latest", "system": "Brief."})
    assert claude.provider == "anthropic" and claude.path == "/v1/messages"
    assert claude.body["system"] == "Brief." and claude.body["max_tokens"] == 1024


def test_a_full_body_keys_like_the_proxy() -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True}
    item = parse_item({**body, "namespace": "books", "ttl": "1h", "tags": ["faq"], "id": 7})
    assert "stream" not in item.body and "namespace" not in item.body
    assert (item.namespace, item.ttl, item.tags, item.id) == ("books", 3600.0, ("faq",), "7")
    assert item.request().canonical == from_openai(body, "chat").canonical
    anthropic = {"model": "my-model", "system": "s", "max_tokens": 5, "messages": body["messages"]}
    parsed = parse_item(anthropic)
    assert parsed.provider == "anthropic"
    assert parsed.request().canonical == from_anthropic(anthropic).canonical
    embedding = parse_item({"model": "text-embedding-3-small", "input": "hello"})
    assert embedding.path == "/embeddings"


def test_batches_and_their_defaults() -> None:
    batch = parse_batch(
        {
            "requests": [{"query": "a"}, {"query": "b", "ttl": 60}, {"query": ""}],
            "model": "gpt-4o-mini",
            "ttl": "1d",
            "refresh_before": 0.25,
        }
    )
    first, second, third = batch.items
    assert isinstance(first, WarmItem) and first.ttl == 86400.0
    assert isinstance(second, WarmItem) and second.ttl == 60.0
    assert isinstance(third, InvalidItem) and "query" in third.reason
    assert batch.refresh_before == 0.25
    assert len(parse_batch([{"query": "a", "model": "m"}]).items) == 1


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"requests": "x"}, "must be a list"),
        ({"requests": []}, "empty"),
        ({"requests": [{}], "colour": 1}, "unknown batch option"),
        ({"requests": [{}], "refresh_before": 1.5}, "refresh_before"),
        ("text", "not str"),
    ],
)
def test_bad_batches(body: Any, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_batch(body)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"query": "q"}, "needs a 'model'"),
        ({"query": "q", "model": "m", "provider": "mistral"}, "provider"),
        ({"query": "q", "model": "m", "ttl": 0}, "positive"),
        ({"query": "q", "model": "m", "tags": [1]}, "tags"),
        ({"query": "q", "model": "m", "refresh": "yes"}, "refresh"),
        ({"query": "q", "model": "m", "shared": 1}, "shared must be true or false"),
        ({"model": "m", "input": [{"role": "user", "content": "x"}]}, "cannot be warmed"),
        ({"model": "m"}, "cannot tell the endpoint"),
    ],
)
def test_bad_items(data: dict[str, Any], words: str) -> None:
    with pytest.raises(Exception, match=words):
        parse_item(data)


def test_an_item_is_warmed_where_the_service_reads_it() -> None:
    """Shared in a shared namespace; for the warm key's tenant only when asked (`shared: false`);
    refused when the service would never read the entry."""

    def shares(namespace: str) -> bool:
        return namespace == "faq"

    batch = parse_batch({"requests": [{"query": "q"}], "model": "m", "namespace": "faq"})
    [in_faq] = batch.items
    assert isinstance(in_faq, WarmItem) and in_faq.namespace == "faq"
    in_default = parse_item({"query": "q", "model": "m"})
    assert warm_shared(in_faq, "default", shares) is True
    assert warm_shared(in_default, "faq", shares) is True  # the default namespace is faq
    with pytest.raises(ConfigError, match="namespace 'default' is isolated per API key"):
        warm_shared(in_default, "default", shares)
    for_key = parse_item({"query": "q", "model": "m"}, {"shared": False})
    assert for_key.shared is False and warm_shared(for_key, "default", shares) is False
    with pytest.raises(ConfigError, match="namespace 'faq' is shared"):
        warm_shared(for_key, "faq", shares)
    with pytest.raises(ConfigError, match="'docs' is not shared"):
        warm_shared(parse_item({"query": "q", "model": "m", "shared": True}), "docs", shares)


# -- the Warmer ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_fresh_entries_are_skipped_and_refresh_before_expiry_renews_them() -> None:
    clock, upstream = Clock(), Upstream()
    c = cache(clock, ttl=100)
    items = list(enumerate(parse_batch({"requests": [{"query": "q"}], "model": "m"}).items))
    warmer = Warmer(c, upstream, refresh_before=0.2)
    first = await warmer.run(items)
    assert first.results[0].status == "stored" and upstream.calls == 1
    clock.now += 50  # 50 s left of 100: not due
    assert (await warmer.run(items)).results[0].status == "fresh"
    clock.now += 31  # 19 s left: within the last 20% of the TTL
    renewed = await warmer.run(items)
    assert renewed.results[0].status == "stored" and upstream.calls == 2
    hit = await c.lookup(items[0][1].request())
    assert hit is not None and hit.age == 0  # the new entry starts a full TTL
    assert (await Warmer(c, upstream).run(items)).results[0].status == "fresh"


@pytest.mark.asyncio
async def test_summary_counts_tokens_and_cost() -> None:
    upstream = Upstream()
    batch = parse_batch([{"query": str(i), "model": "gpt-4o-mini"} for i in range(5)])
    report = await Warmer(cache(), upstream).run(enumerate(batch.items))
    summary = report.summary.as_dict()
    assert summary["stored"] == 5 and summary["tokens"] == 5 * 15
    assert summary["cost_usd"] == pytest.approx(5 * (12 * 0.15 + 3 * 0.60) / 1e6)
    again = (
        await Warmer(cache(), upstream, refresh_before=None).run(enumerate(batch.items))
    ).summary
    assert again.stored == 5


@pytest.mark.asyncio
async def test_failures_are_results_not_exceptions() -> None:
    items = list(enumerate(parse_batch([{"query": "a", "model": "m"}, {"query": "b"}]).items))
    report = await Warmer(cache(), Upstream(fail=True)).run(items)
    assert [r.status for r in report.results] == ["failed", "failed"]
    assert "503" in (report.results[0].reason or "")
    truncated = await Warmer(cache(), Upstream(finish="length")).run(items[:1])
    assert truncated.results[0].status == "failed"
    assert truncated.results[0].reason == "not cacheable: truncated"
    assert truncated.summary.input_tokens == 12  # it still cost tokens


@pytest.mark.asyncio
async def test_concurrency_is_bounded_and_stop_lets_running_items_finish() -> None:
    upstream = Upstream(delay=0.02)
    items = list(enumerate(parse_batch([{"query": str(i), "model": "m"} for i in range(20)]).items))
    report = await Warmer(cache(), upstream, concurrency=3).run(items)
    assert upstream.peak == 3 and report.summary.stored == 20
    stop = asyncio.Event()
    seen: list[int] = []

    def done(result: Any) -> None:
        seen.append(result.index)
        if len(seen) == 4:
            stop.set()

    c, upstream = cache(), Upstream(delay=0.02)
    stopped = await Warmer(c, upstream, concurrency=2).run(items, done, stop)
    assert stopped.summary.total == upstream.calls == stopped.summary.stored  # nothing half-done
    assert 4 <= stopped.summary.total < 20


@pytest.mark.asyncio
async def test_a_store_that_is_down_fails_items_without_calling_upstream(
    redis_url: str, redis_server: RedisServer
) -> None:
    upstream = Upstream()
    async with AsyncCache.from_url(redis_url) as c:
        redis_server.stop()
        items = list(enumerate(parse_batch([{"query": "x", "model": "m"}]).items))
        report = await Warmer(c, upstream).run(items)
    assert report.results[0].status == "failed"
    assert "store unavailable" in (report.results[0].reason or "")
    assert upstream.calls == 0


@pytest.mark.asyncio
async def test_two_warmers_on_one_redis_call_upstream_once(redis_url: str) -> None:
    upstream = Upstream(delay=0.1)
    items = list(enumerate(parse_batch([{"query": "shared", "model": "m"}]).items))
    async with AsyncCache.from_url(redis_url) as a, AsyncCache.from_url(redis_url) as b:
        reports = await asyncio.gather(
            Warmer(a, upstream).run(items), Warmer(b, upstream).run(items)
        )
    assert sorted(r.results[0].status for r in reports) == ["fresh", "stored"]
    assert upstream.calls == 1
