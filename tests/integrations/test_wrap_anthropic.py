"""llmemo.wrap() around the official Anthropic SDK, against the local upstream."""

from __future__ import annotations

import anthropic
import pydantic
import pytest
from anthropic.lib.streaming import AsyncMessageStream, MessageStream
from anthropic.types import Message, RawContentBlockDeltaEvent, RawMessageStartEvent

import llmemo
from llmemo import AsyncCache, Cache, ConfigError
from llmemo.core.request import from_anthropic
from llmemo.integrations.streams import AsyncCacheStream, CacheStream
from llmemo.testing.server import UpstreamServer

MESSAGES = "/v1/messages"


def ask(text: str = "Name three primary colours.", **params: object) -> dict[str, object]:
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 200,
        "messages": [{"role": "user", "content": text}],
        **params,
    }


def calls(upstream: UpstreamServer) -> int:
    return upstream.stats().count(MESSAGES)


def text_of(events: list[object]) -> str:
    return "".join(
        e.delta.text
        for e in events
        if isinstance(e, RawContentBlockDeltaEvent) and e.delta.type == "text_delta"
    )


def test_second_call_is_a_hit_with_the_same_sdk_type(
    claude: anthropic.Anthropic, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(claude, cache)
    assert isinstance(client, anthropic.Anthropic)
    first = client.messages.create(**ask())
    second = client.messages.create(**ask())
    assert type(first) is type(second) is Message
    assert second == first
    assert calls(upstream) == 1
    system = client.messages.create(**ask(), system="Answer in French.")
    assert system.id != first.id
    assert calls(upstream) == 2


@pytest.mark.asyncio
async def test_async_client(
    aclaude: anthropic.AsyncAnthropic, acache: AsyncCache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(aclaude, acache)
    first = await client.messages.create(**ask())
    second = await client.messages.create(**ask())
    assert type(second) is Message and second == first
    assert calls(upstream) == 1


def test_errors_propagate_unchanged_and_are_not_cached(
    claude: anthropic.Anthropic, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(claude, cache)
    for _ in range(2):
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(**ask(model="fail-429"))
        with pytest.raises(anthropic.InternalServerError):
            client.messages.create(**ask(model="fail-500"))
    assert calls(upstream) == 4
    assert cache.stats().stores == 0


def test_stream_is_passed_through_stored_and_replayed(
    claude: anthropic.Anthropic, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(claude, cache)
    with client.messages.create(**ask(), stream=True) as live:
        assert isinstance(live, CacheStream) and not live.cached
        live_events = list(live)
    replay = client.messages.create(**ask(), stream=True)
    assert replay.cached
    events = list(replay)
    assert isinstance(events[0], RawMessageStartEvent)
    assert events[0].message.id == live_events[0].message.id
    assert [e.type for e in events][-2:] == ["message_delta", "message_stop"]
    assert text_of(events) == text_of(live_events)
    whole = client.messages.create(**ask())
    assert type(whole) is Message and whole.content[0].text == text_of(events)
    assert whole.usage.output_tokens > 0
    assert calls(upstream) == 1


def test_broken_stream_is_not_stored(
    claude: anthropic.Anthropic, cache: Cache, upstream: UpstreamServer
) -> None:
    # What the SDK itself raises for a cut stream (its HTTP library's error, not an APIError).
    with pytest.raises(Exception, match="closed connection") as direct:
        list(claude.messages.create(**ask(model="fail-midstream"), stream=True))
    client = llmemo.wrap(claude, cache)
    for _ in range(2):
        with pytest.raises(type(direct.value)):
            list(client.messages.create(**ask(model="fail-midstream"), stream=True))
    assert calls(upstream) == 3
    assert cache.stats().stores == 0


@pytest.mark.asyncio
async def test_async_stream(
    aclaude: anthropic.AsyncAnthropic, acache: AsyncCache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(aclaude, acache)
    async with await client.messages.create(**ask(), stream=True) as live:
        assert isinstance(live, AsyncCacheStream)
        live_events = [e async for e in live]
    replay = await client.messages.create(**ask(), stream=True)
    assert replay.cached
    events = [e async for e in replay]
    assert text_of(events) == text_of(live_events)
    assert calls(upstream) == 1


def test_tool_use_answers_are_not_stored(
    claude: anthropic.Anthropic, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(claude, cache)
    tool = {
        "name": "get_weather",
        "description": "Weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    for _ in range(2):
        answer = client.messages.create(**ask("Paris weather, use a tool"), tools=[tool])
        assert answer.stop_reason == "tool_use"
    assert calls(upstream) == 2


def test_per_call_options(
    claude: anthropic.Anthropic, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(claude, cache, namespace="claude")
    first = client.messages.create(**ask())
    assert cache.lookup(from_anthropic(ask()), namespace="claude") is not None
    assert client.messages.create(**ask(), cache_refresh=True).id != first.id
    client.messages.create(**ask(), cacheable=False)
    client.messages.create(**ask("x"), extra_headers={"Cache-Control": "no-store"})
    assert cache.lookup(from_anthropic(ask("x")), namespace="claude") is None
    assert calls(upstream) == 4


def test_pass_through_and_errors(
    claude: anthropic.Anthropic, cache: Cache, acache: AsyncCache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(claude, cache)
    assert client.api_key == claude.api_key
    assert any(m.id == "claude-haiku-4-5" for m in client.models.list())
    with pytest.raises(ConfigError, match="AsyncCache"):
        llmemo.wrap(anthropic.AsyncAnthropic(api_key="x"), cache)
    with pytest.raises(ConfigError, match="sync client"):
        llmemo.wrap(claude, acache)


def test_the_stream_helper_is_cached_and_keeps_its_sdk_surface(
    claude: anthropic.Anthropic, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(claude, cache)
    finals, texts = [], []
    for _ in range(2):
        with client.messages.stream(**ask(), cache_tags=["helper"]) as stream:
            assert isinstance(stream, MessageStream)
            texts.append("".join(stream.text_stream))
            finals.append(stream.get_final_message())
    assert calls(upstream) == 1  # the second helper call was a replay
    assert texts[0] == texts[1] and texts[0].startswith("Answer to:")
    assert isinstance(finals[1], Message) and finals[1] == finals[0]  # the SDK's ParsedMessage
    assert finals[1].content[0].text == texts[0]
    whole = client.messages.create(**ask(), cache_tags=["helper"])  # the same entry
    assert (whole.id, whole.content[0].text, whole.usage) == (
        finals[0].id,
        texts[0],
        finals[0].usage,
    )
    assert calls(upstream) == 1
    with client.messages.stream(**ask("Something else?")) as stream:
        events = [event.type for event in stream]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "text" in events  # the helper's own accumulated events
    assert calls(upstream) == 2


def test_the_stream_helper_passes_structured_output_through(
    claude: anthropic.Anthropic, cache: Cache, upstream: UpstreamServer
) -> None:
    """`output_format=` goes to the SDK's own helper, uncached (the local upstream's plain-text
    answer then fails the SDK's own JSON parse, as it does without llmemo)."""

    class Answer(pydantic.BaseModel):
        answer: str

    client = llmemo.wrap(claude, cache)
    for _ in range(2):
        with (
            pytest.raises(pydantic.ValidationError, match="Invalid JSON"),
            client.messages.stream(**ask(), output_format=Answer) as stream,
        ):
            stream.get_final_message()
    assert calls(upstream) == 2
    assert cache.stats().lookups == 0


@pytest.mark.asyncio
async def test_the_async_stream_helper(
    aclaude: anthropic.AsyncAnthropic, acache: AsyncCache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(aclaude, acache)
    finals = []
    for _ in range(2):
        async with client.messages.stream(**ask()) as stream:
            assert isinstance(stream, AsyncMessageStream)
            text = "".join([t async for t in stream.text_stream])
            finals.append(await stream.get_final_message())
    assert calls(upstream) == 1
    assert finals[1] == finals[0] and finals[1].content[0].text == text
