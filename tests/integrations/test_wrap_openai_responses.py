"""llmemo.wrap() around the official OpenAI SDK's Responses API, against the local upstream."""

from __future__ import annotations

import uuid
from typing import Any

import openai
import pytest
from openai.types.responses import Response, ResponseCompletedEvent, ResponseStreamEvent

import llmemo
from llmemo import AsyncCache, Cache
from llmemo.integrations.streams import AsyncCacheStream, CacheStream
from llmemo.testing.server import UpstreamServer

ROUTE = "/v1/responses"
TOOL = {"type": "function", "name": "lookup", "strict": False,
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}  # fmt: skip


def ask(question: Any = "What is the capital of France?", **params: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "input": question, **params}


def calls(upstream: UpstreamServer) -> int:
    return upstream.stats().count(ROUTE)


def text_of(events: list[ResponseStreamEvent]) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


# -- non-stream -----------------------------------------------------------------------------------


def test_second_call_is_a_hit_with_the_sdk_type(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    first = client.responses.create(**ask())
    second = client.responses.create(**ask())
    assert type(first) is type(second) is Response
    assert second == first  # the same id: the upstream makes a fresh one per call
    assert calls(upstream) == 1
    direct = oai.responses.create(**ask())
    assert direct.id != first.id and direct.output_text == first.output_text
    assert cache.stats().hits == 1 and cache.stats().tokens_saved == first.usage.total_tokens  # type: ignore[union-attr]


def test_hits_on_redis(oai: openai.OpenAI, upstream: UpstreamServer, redis_url: str) -> None:
    with Cache.from_url(redis_url, namespace=f"responses-{uuid.uuid4().hex}") as cache:
        client = llmemo.wrap(oai, cache)
        first = client.responses.create(**ask(instructions="Be brief."))
        assert client.responses.create(**ask(instructions="Be brief.")) == first
    assert calls(upstream) == 1


def test_what_shares_an_entry_and_what_does_not(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    first = client.responses.create(**ask(), user="u1", metadata={"trace": "1"})
    same = [
        ask("What is the  capital of France? ", user="u2", metadata={"trace": "2"}),
        ask(store=True, service_tier="auto", safety_identifier="s", prompt_cache_key="k"),
        ask([{"role": "user", "content": "What is the capital of France?"}]),
    ]
    assert all(client.responses.create(**body) == first for body in same[:2])
    assert calls(upstream) == 1
    other = [
        ask(instructions="Answer in French."),
        ask(temperature=0.2),
        ask(store=False),  # its id cannot be retrieved or continued later
        ask(text={"format": {"type": "json_object"}}),
        ask(reasoning={"effort": "low"}),
        ask(include=["message.output_text.logprobs"]),
        ask(truncation="auto"),
        same[2],
    ]
    for body in other:
        assert client.responses.create(**body).id != first.id
    assert calls(upstream) == 1 + len(other)


@pytest.mark.parametrize(
    "params",
    [
        {"previous_response_id": "resp_earlier"},
        {"conversation": "conv_123"},
        {"background": True},
        {"prompt": {"id": "pmpt_1"}},
    ],
    ids=["previous_response_id", "conversation", "background", "unpinned_prompt"],
)
def test_requests_on_server_side_state_bypass_the_cache(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer, params: dict[str, Any]
) -> None:
    client = llmemo.wrap(oai, cache)
    client.responses.create(**ask())  # an entry for the same input, which must not answer
    first = client.responses.create(**ask(), **params)
    second = client.responses.create(**ask(), **params)
    assert first.id != second.id and calls(upstream) == 3
    stream = client.responses.create(**ask(), **params, stream=True)
    assert not stream.cached and text_of(list(stream)) == first.output_text
    assert calls(upstream) == 4
    assert cache.stats().bypasses == 3 and cache.stats().hits == 0


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"model": "fail-response"}, "error"),
        ({"max_output_tokens": 2}, "truncated"),
        ({"input": "Find it, use a tool", "tools": [TOOL]}, "tool_calls"),
        ({"input": "empty answer please"}, "empty"),
    ],
    ids=["failed", "incomplete", "function_call", "empty"],
)
def test_unfinished_answers_are_never_stored(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer, params: dict[str, Any], reason: str
) -> None:
    client = llmemo.wrap(oai, cache)
    body = {**ask(), **params}
    first = client.responses.create(**body)
    assert client.responses.create(**body).id != first.id
    streamed = list(client.responses.create(**body, stream=True))
    assert streamed[-1].type != "response.completed" or reason in ("tool_calls", "empty")
    assert client.responses.create(**body).id != first.id
    assert calls(upstream) == 4
    assert cache.stats().skip_reasons.get(reason, 0) >= 2 and cache.stats().stores == 0


def test_upstream_errors_pass_through_and_are_not_stored(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    for _ in range(2):
        with pytest.raises(openai.RateLimitError):
            client.responses.create(**ask(model="fail-429"))
        with pytest.raises(openai.InternalServerError):
            client.responses.create(**ask(model="fail-503"), stream=True)
    assert calls(upstream) == 4 and cache.stats().stores == 0


# -- streams --------------------------------------------------------------------------------------


def test_stream_is_stored_and_replayed(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    live = client.responses.create(**ask(), stream=True)
    assert isinstance(live, CacheStream) and not live.cached
    with live:
        events = list(live)
    assert events[-1].type == "response.completed"
    replay = client.responses.create(**ask(), stream=True)
    assert replay.cached and replay.response is None
    again = list(replay)
    assert text_of(again) == text_of(events)
    assert [e.sequence_number for e in again] == list(range(len(again)))
    last = again[-1]
    assert isinstance(last, ResponseCompletedEvent) and isinstance(
        events[-1], ResponseCompletedEvent
    )
    assert last.response.id == events[-1].response.id
    assert last.response.output_text == events[-1].response.output_text
    plain = client.responses.create(**ask())  # the stream's entry answers a plain call too
    assert plain.id == events[-1].response.id
    assert calls(upstream) == 1


def test_plain_entry_answers_a_stream(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    plain = client.responses.create(**ask())
    events = list(client.responses.create(**ask(), stream=True))
    assert text_of(events) == plain.output_text
    assert [e.type for e in events][:2] == ["response.created", "response.in_progress"]
    assert events[-1].response == plain  # type: ignore[union-attr]
    assert calls(upstream) == 1


def test_cut_or_closed_streams_are_not_stored(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    with pytest.raises(openai.APIConnectionError):
        list(client.responses.create(**ask(model="fail-midstream"), stream=True))
    stream = client.responses.create(**ask(), stream=True)
    next(stream)
    stream.close()
    list(client.responses.create(**ask(), stream=True))  # a miss: then stored
    assert client.responses.create(**ask(), stream=True).cached
    assert calls(upstream) == 3


def test_stream_helper_passes_through(
    oai: openai.OpenAI, cache: Cache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(oai, cache)
    for _ in range(2):
        with client.responses.stream(**ask()) as stream:
            assert stream.get_final_response().output_text.startswith("Answer to:")
    assert calls(upstream) == 2


# -- async ------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_async_client(
    aoai: openai.AsyncOpenAI, acache: AsyncCache, upstream: UpstreamServer
) -> None:
    client = llmemo.wrap(aoai, acache)
    first = await client.responses.create(**ask())
    assert await client.responses.create(**ask()) == first
    live = await client.responses.create(**ask("Stream me"), stream=True)
    assert isinstance(live, AsyncCacheStream) and not live.cached
    events = [event async for event in live]
    replay = await client.responses.create(**ask("Stream me"), stream=True)
    assert replay.cached
    assert text_of([event async for event in replay]) == text_of(events)
    assert (await client.responses.create(**ask("Stream me"))).output_text == text_of(events)
    await client.responses.create(**ask(), previous_response_id=first.id)
    with pytest.raises(openai.RateLimitError):
        await client.responses.create(**ask(model="fail-429"))
    assert calls(upstream) == 4
    stats = await acache.stats()
    assert stats.hits == 3 and stats.bypasses == 1
