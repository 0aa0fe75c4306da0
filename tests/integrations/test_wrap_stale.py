"""wrap() and stale-while-revalidate: a stale grace from wrap(), a keyword or the service's headers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import openai
import pytest

import llmemo
from llmemo import AsyncCache, Cache, TtlPolicy
from llmemo.stores.memory import AsyncMemoryStore, MemoryStore
from llmemo.testing.server import UpstreamServer
from tests.integrations.conftest import Clock

CHAT = "/v1/chat/completions"


def ask(text: str = "What is the capital of France?") -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


def refreshed(cache: Cache, body: dict[str, Any], old_id: str) -> str:
    """The id of the entry once the background refresh replaced `old_id` (waits for it)."""
    deadline = time.monotonic() + 10
    while True:
        hit = cache.lookup(body)
        if hit is not None and hit.response["id"] != old_id:
            return str(hit.response["id"])
        assert time.monotonic() < deadline, "the background refresh never landed"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("defaults", "per_call"),
    [
        ({"stale_grace": "10m"}, {}),
        ({}, {"cache_stale_grace": 600}),
        ({}, {"extra_headers": {"X-LLMemo-Stale-Grace": "10m"}}),
        ({}, {"extra_headers": {"Cache-Control": "stale-while-revalidate=600"}}),
    ],
    ids=["wrap-default", "keyword", "x-llmemo-stale-grace", "cache-control"],
)
def test_an_expired_entry_is_served_stale_while_one_call_refreshes_it(
    oai: openai.OpenAI,
    store: MemoryStore,
    clock: Clock,
    upstream: UpstreamServer,
    defaults: dict[str, Any],
    per_call: dict[str, Any],
) -> None:
    cache = Cache(store, clock=clock, ttl=TtlPolicy.build("1h", jitter=0))
    client = llmemo.wrap(oai, cache, **defaults)
    first = client.chat.completions.create(**ask(), **per_call)
    assert llmemo.last_status() == "miss"
    clock.now += 3601  # past the TTL, within the grace
    stale = client.chat.completions.create(**ask(), **per_call)
    assert llmemo.last_status() == "stale"
    assert stale == first  # the stored answer, not the refresh's
    new_id = refreshed(cache, ask(), first.id)
    assert upstream.stats().count(CHAT) == 2  # one background refresh
    again = client.chat.completions.create(**ask(), **per_call)
    assert llmemo.last_status() == "hit" and again.id == new_id
    clock.now += 3600 + 601  # past the TTL and the grace: a plain miss
    client.chat.completions.create(**ask(), **per_call)
    assert llmemo.last_status() == "miss"
    assert cache.stats().stale_hits == 1


def test_without_a_grace_an_expired_entry_is_a_miss(
    oai: openai.OpenAI, store: MemoryStore, clock: Clock, upstream: UpstreamServer
) -> None:
    cache = Cache(store, clock=clock, ttl=TtlPolicy.build("1h", jitter=0))
    client = llmemo.wrap(oai, cache)
    client.chat.completions.create(**ask())
    clock.now += 3601
    client.chat.completions.create(**ask())
    assert llmemo.last_status() == "miss"
    assert upstream.stats().count(CHAT) == 2


@pytest.mark.asyncio
async def test_async_client_serves_stale_and_refreshes(
    aoai: openai.AsyncOpenAI, store: MemoryStore, clock: Clock, upstream: UpstreamServer
) -> None:
    cache = AsyncCache(AsyncMemoryStore(store), clock=clock, ttl=TtlPolicy.build("1h", jitter=0))
    client = llmemo.wrap(aoai, cache)
    headers = {"extra_headers": {"cache-control": "stale-while-revalidate=600"}}
    first = await client.chat.completions.create(**ask(), **headers)
    clock.now += 3601
    stale = await client.chat.completions.create(**ask(), **headers)
    assert llmemo.last_status() == "stale" and stale == first
    for _ in range(500):
        hit = await cache.lookup(ask())
        if hit is not None and hit.response["id"] != first.id:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the background refresh never landed")
    assert upstream.stats().count(CHAT) == 2


def test_a_negative_grace_fails_before_the_provider_is_called(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    with pytest.raises(llmemo.ConfigError, match="negative"):
        client.chat.completions.create(**ask(), extra_headers={"X-LLMemo-Stale-Grace": "-5"})
    with pytest.raises(llmemo.ConfigError, match="negative"):
        client.chat.completions.create(**ask(), cache_stale_grace=-1)
    assert upstream.stats().count(CHAT) == 0
