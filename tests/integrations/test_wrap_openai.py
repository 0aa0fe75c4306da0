"""llmemo.wrap() around the official OpenAI SDK, against the local upstream."""

from __future__ import annotations

import socket
from pathlib import Path

import openai
import pytest
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import llmemo
from llmemo import AsyncCache, Cache, ConfigError, TtlPolicy
from llmemo.integrations.streams import AsyncCacheStream, CacheStream
from llmemo.stores.memory import MemoryStore
from llmemo.testing.server import UpstreamServer
from tests.integrations.conftest import Clock

CHAT = "/v1/chat/completions"


def ask(text: str = "What is the capital of France?", **params: object) -> dict[str, object]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **params}


def calls(upstream: UpstreamServer, route: str = CHAT) -> int:
    return upstream.stats().count(route)


def text_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# -- non-stream -----------------------------------------------------------------------------------


def test_second_call_is_a_hit_with_the_same_sdk_type(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    first = client.chat.completions.create(**ask())
    second = client.chat.completions.create(**ask())
    assert type(first) is type(second) is ChatCompletion
    assert second == first  # same id too: the upstream makes a fresh id per call
    assert calls(upstream) == 1
    direct = oai.chat.completions.create(**ask())
    assert direct.id != first.id and direct.choices[0].message == first.choices[0].message


@pytest.mark.parametrize("url", ["sqlite", "redis"])
def test_hits_on_the_real_stores(
    oai: openai.OpenAI, upstream: UpstreamServer, url: str, tmp_path: Path, redis_url: str
) -> None:
    store_url = f"sqlite:///{tmp_path}/llmemo.db" if url == "sqlite" else redis_url
    with Cache.from_url(store_url) as cache:
        client = llmemo.wrap(oai, cache)
        first = client.chat.completions.create(**ask())
        assert client.chat.completions.create(**ask()) == first
    assert calls(upstream) == 1


def test_equivalent_requests_share_an_entry(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    first = client.chat.completions.create(**ask(), user="billing-id-1")
    again = client.chat.completions.create(
        **ask("What is the  capital of France? "), user="billing-id-2", timeout=30
    )
    assert again == first
    other = client.chat.completions.create(**ask(), temperature=0.5)
    assert other.id != first.id
    assert calls(upstream) == 2


def test_legacy_completions_and_embeddings(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "max_tokens": 20}
    first = client.completions.create(**body)
    assert type(first) is Completion and client.completions.create(**body) == first
    emb = {"model": "text-embedding-3-small", "input": ["a cat", "a dog"]}
    vectors = client.embeddings.create(**emb)
    again = client.embeddings.create(**emb)
    assert type(again) is CreateEmbeddingResponse and again == vectors
    assert len(again.data) == 2 and len(again.data[0].embedding) == 384
    assert calls(upstream, "/v1/completions") == 1
    assert calls(upstream, "/v1/embeddings") == 1


def test_a_generator_of_messages_is_read_once_and_still_sent(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    messages = (m for m in [{"role": "user", "content": "Hello from a generator"}])
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert "Hello from a generator" in (answer.choices[0].message.content or "")
    assert client.chat.completions.create(**ask("Hello from a generator")) == answer
    assert calls(upstream) == 1


async def _async_round(client: openai.AsyncOpenAI) -> tuple[ChatCompletion, ChatCompletion]:
    first = await client.chat.completions.create(**ask())
    second = await client.chat.completions.create(**ask())
    return first, second


@pytest.mark.asyncio
async def test_async_client(
    aoai: openai.AsyncOpenAI, acache: AsyncCache, upstream: UpstreamServer
) -> None:
    first, second = await _async_round(llmemo.wrap(aoai, acache))
    assert type(second) is ChatCompletion and second == first
    assert calls(upstream) == 1


@pytest.mark.asyncio
async def test_async_burst_is_single_flight(upstream: UpstreamServer, acache: AsyncCache) -> None:
    import asyncio

    async with openai.AsyncOpenAI(
        base_url=upstream.openai_base_url, api_key="test", max_retries=0
    ) as raw:
        client = llmemo.wrap(raw, acache)
        body = ask(model="slow-200")
        answers = await asyncio.gather(*(client.chat.completions.create(**body) for _ in range(10)))
    assert all(a == answers[0] for a in answers)
    assert calls(upstream) == 1


def test_threads_burst_is_single_flight(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client = llmemo.wrap(oai, cache)
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda _: client.chat.completions.create(**ask(model="slow-200")),
                range(8),
            )
        )
    assert all(type(a) is ChatCompletion and a == answers[0] for a in answers)
    assert calls(upstream) == 1


# -- errors -----------------------------------------------------------------------------------


def test_sdk_errors_propagate_unchanged_and_are_not_cached(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(**ask(model="fail-429"))
        assert caught.value.status_code == 429
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert calls(upstream) == 3
    assert cache.stats().stores == 0


def test_truncated_and_tool_call_answers_are_not_stored(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    for _ in range(2):
        cut = client.chat.completions.create(**ask("Tell me a long story", max_tokens=2))
        assert cut.choices[0].finish_reason == "length"
    assert calls(upstream) == 2
    assert cache.stats().skip_reasons == {"truncated": 2}


# -- streams ----------------------------------------------------------------------------------


def test_stream_is_passed_through_stored_and_replayed(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    body = ask("Stream me a sentence", stream_options={"include_usage": True})
    with client.chat.completions.create(**body, stream=True) as live:
        assert isinstance(live, CacheStream) and not live.cached
        assert live.response.status_code == 200
        live_chunks = list(live)
    assert all(type(c) is ChatCompletionChunk for c in live_chunks)
    replay = client.chat.completions.create(**body, stream=True)
    assert isinstance(replay, CacheStream) and replay.cached and replay.response is None
    chunks = list(replay)
    assert all(type(c) is ChatCompletionChunk for c in chunks)
    assert text_of(chunks) == text_of(live_chunks)
    assert chunks[0].id == live_chunks[0].id
    assert chunks[-1].usage == live_chunks[-1].usage and chunks[-1].usage is not None
    whole = client.chat.completions.create(**body)
    assert type(whole) is ChatCompletion and whole.choices[0].message.content == text_of(chunks)
    assert calls(upstream) == 1


def test_non_stream_entry_answers_a_stream_call(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    whole = client.chat.completions.create(**ask())
    with client.chat.completions.create(**ask(), stream=True) as stream:
        chunks = list(stream)
    assert text_of(chunks) == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert calls(upstream) == 1


def test_stream_left_early_is_not_stored(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    body = ask("A stream nobody finishes")
    with client.chat.completions.create(**body, stream=True) as stream:
        next(stream)
    assert not client.chat.completions.create(**body, stream=True).cached
    assert calls(upstream) == 2


def test_broken_stream_raises_the_sdk_error_and_is_not_stored(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    for _ in range(2):
        stream = client.chat.completions.create(**ask(model="fail-midstream"), stream=True)
        with pytest.raises(openai.APIError):
            list(stream)
    assert calls(upstream) == 2
    assert cache.stats().stores == 0


def test_legacy_completion_stream(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "Count to three", "stream": True}
    live = "".join(c.choices[0].text for c in client.completions.create(**body) if c.choices)
    replay = list(client.completions.create(**body))
    assert all(type(c) is Completion for c in replay)
    assert "".join(c.choices[0].text for c in replay if c.choices) == live
    assert calls(upstream, "/v1/completions") == 1


@pytest.mark.asyncio
async def test_async_stream(
    aoai: openai.AsyncOpenAI, acache: AsyncCache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(aoai, acache)
    body = ask("Stream me asynchronously")
    async with await client.chat.completions.create(**body, stream=True) as live:
        assert isinstance(live, AsyncCacheStream) and not live.cached
        live_chunks = [c async for c in live]
    replay = await client.chat.completions.create(**body, stream=True)
    assert replay.cached
    chunks = [c async for c in replay]
    assert all(type(c) is ChatCompletionChunk for c in chunks)
    assert text_of(chunks) == text_of(live_chunks)
    assert calls(upstream) == 1


# -- per-call options -------------------------------------------------------------------------


def test_refresh_and_no_store_keywords_and_headers(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    first = client.chat.completions.create(**ask())
    fresh = client.chat.completions.create(**ask(), cache_refresh=True)
    assert fresh.id != first.id
    assert client.chat.completions.create(**ask()) == fresh
    by_header = client.chat.completions.create(**ask(), extra_headers={"Cache-Control": "no-cache"})
    assert by_header.id != fresh.id
    kept = client.chat.completions.create(**ask("Not kept"), cache_no_store=True)
    also = client.chat.completions.create(
        **ask("Not kept"), extra_headers={"cache-control": "no-store"}
    )
    assert also.id != kept.id
    assert calls(upstream) == 5


def test_cacheable_false_bypasses(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    client.chat.completions.create(**ask(), cacheable=False)
    client.chat.completions.create(**ask(), cacheable=False)
    assert calls(upstream) == 2
    assert cache.stats().bypasses == 2
    off = llmemo.wrap(oai, cache, cacheable=False)
    off.chat.completions.create(**ask())
    assert calls(upstream) == 3


def test_ttl_keyword_header_and_wrap_default(
    oai: openai.OpenAI, store: MemoryStore, clock: Clock, upstream: UpstreamServer
) -> None:
    cache = Cache(store, clock=clock, ttl=TtlPolicy.build("1d", jitter=0))
    client = llmemo.wrap(oai, cache, ttl=300)
    client.chat.completions.create(**ask("default"))
    client.chat.completions.create(**ask("keyword"), cache_ttl=60)
    client.chat.completions.create(**ask("header"), extra_headers={"X-LLMemo-TTL": "2m"})
    clock.now += 90
    for text, hit in (("default", True), ("keyword", False), ("header", True)):
        assert (cache.lookup(ask(text)) is not None) is hit, text
    clock.now += 60
    assert cache.lookup(ask("header")) is None
    assert cache.lookup(ask("default")) is not None
    with pytest.raises(ConfigError):
        client.chat.completions.create(**ask(), cache_ttl="soon")
    assert calls(upstream) == 3


def test_namespace_and_tags(oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer) -> None:
    client = llmemo.wrap(oai, cache, tags=["app"])
    client.chat.completions.create(**ask(), cache_namespace="team-a", cache_tags=["faq"])
    client.chat.completions.create(
        **ask("Other"), extra_headers={"X-LLMemo-Namespace": "team-b", "X-LLMemo-Tags": "faq,x"}
    )
    assert cache.lookup(ask()) is None
    hit = cache.lookup(ask(), namespace="team-a")
    assert hit is not None and hit.tags == ("app", "faq")
    assert cache.invalidate(namespace="team-b", tag="x") == 1
    assert cache.lookup(ask("Other"), namespace="team-b") is None
    with pytest.raises(ConfigError):
        client.chat.completions.create(**ask(), cache_namespace="no spaces")
    assert calls(upstream) == 2


# -- the proxy --------------------------------------------------------------------------------


def test_other_methods_pass_through(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    assert isinstance(client, openai.OpenAI)
    assert client.api_key == oai.api_key and client.base_url == oai.base_url
    assert any(m.id == "gpt-4o-mini" for m in client.models.list())
    raw = client.chat.completions.with_raw_response.create(**ask())
    assert raw.http_response.status_code == 200
    raw = client.chat.completions.with_raw_response.create(**ask())
    assert calls(upstream) == 2  # the raw-response variant is not cached
    faster = client.with_options(timeout=5)
    first = faster.chat.completions.create(**ask())
    assert isinstance(faster, openai.OpenAI) and faster.timeout == 5
    assert client.chat.completions.create(**ask()) == first
    assert calls(upstream) == 3


def test_wrong_cache_or_client_is_a_clear_error(
    oai: openai.OpenAI, aoai: openai.AsyncOpenAI, cache: Cache, acache: AsyncCache
) -> None:
    with pytest.raises(ConfigError, match="AsyncCache"):
        llmemo.wrap(aoai, cache)
    with pytest.raises(ConfigError, match="sync client"):
        llmemo.wrap(oai, acache)
    with pytest.raises(ConfigError, match=r"openai\.OpenAI"):
        llmemo.wrap(object(), cache)
    with pytest.raises(ConfigError, match="already wrapped"):
        llmemo.wrap(llmemo.wrap(oai, cache), cache)
    with pytest.raises(ConfigError, match="unknown cache option"):
        llmemo.wrap(oai, cache, time_to_live=3)


def test_store_down_fails_open(oai: openai.OpenAI, upstream: UpstreamServer) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with Cache.from_url(f"redis://127.0.0.1:{port}/0") as cache:
        client = llmemo.wrap(oai, cache)
        for _ in range(2):
            answer = client.chat.completions.create(**ask())
            assert type(answer) is ChatCompletion
        chunks = list(client.chat.completions.create(**ask(), stream=True))
        assert text_of(chunks) == answer.choices[0].message.content
        assert cache.stats().store_errors >= 1
    assert calls(upstream) == 3
