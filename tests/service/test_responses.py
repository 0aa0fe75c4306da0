"""OpenAI's Responses API (`POST /v1/responses`) through `llmemo serve`, with the official SDK."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from llmemo.testing.server import UpstreamServer
from tests.service.conftest import BOB, ServiceServer

ROUTE = "/v1/responses"
TOOL = {"type": "function", "name": "lookup", "strict": False,
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}  # fmt: skip


def ask(question: Any = "What is the capital of France?", **params: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "input": question, **params}


def create(client: openai.OpenAI, **body: Any) -> tuple[Response, str]:
    raw = client.responses.with_raw_response.create(**body)
    return raw.parse(), raw.headers["x-llmemo-cache"]


def stream(client: openai.OpenAI, **body: Any) -> tuple[list[ResponseStreamEvent], str]:
    raw = client.responses.with_raw_response.create(**body, stream=True)
    return list(raw.parse()), raw.headers["x-llmemo-cache"]


def text_of(events: list[ResponseStreamEvent]) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


def calls(upstream: UpstreamServer) -> int:
    return upstream.stats().count(ROUTE)


def test_second_call_is_a_hit(oai: openai.OpenAI, upstream: UpstreamServer) -> None:
    first, status = create(oai, **ask())
    assert status == "miss" and isinstance(first, Response)
    second, status = create(oai, **ask(metadata={"trace": "2"}, user="someone"))
    assert status == "hit" and second == first
    assert calls(upstream) == 1
    _, status = create(oai, **ask(instructions="Answer in French."))
    assert status == "miss" and calls(upstream) == 2


@pytest.mark.asyncio
async def test_async_plain_and_stream(aoai: openai.AsyncOpenAI, upstream: UpstreamServer) -> None:
    first = await aoai.responses.with_raw_response.create(**ask())
    second = await aoai.responses.with_raw_response.create(**ask())
    assert (first.headers["x-llmemo-cache"], second.headers["x-llmemo-cache"]) == ("miss", "hit")
    assert second.parse() == first.parse()
    live = await aoai.responses.with_raw_response.create(**ask("Stream me"), stream=True)
    live_events = [event async for event in live.parse()]
    replay = await aoai.responses.with_raw_response.create(**ask("Stream me"), stream=True)
    replayed = [event async for event in replay.parse()]
    assert (live.headers["x-llmemo-cache"], replay.headers["x-llmemo-cache"]) == ("miss", "hit")
    assert text_of(replayed) == text_of(live_events) and text_of(live_events)
    async with aoai.responses.stream(**ask("Stream me")) as helper:
        final = await helper.get_final_response()
    assert final.output_text == text_of(live_events)
    assert calls(upstream) == 2


def test_stream_is_relayed_then_replayed(oai: openai.OpenAI, upstream: UpstreamServer) -> None:
    live, status = stream(oai, **ask())
    assert status == "miss" and len(live) == 8 + 9  # 9 words, one delta each, from the upstream
    replay, status = stream(oai, **ask())
    assert status == "hit" and text_of(replay) == text_of(live) and len(replay) == 8 + 1
    assert [e.type for e in replay][-1] == "response.completed"
    assert replay[-1].response.id == live[-1].response.id  # type: ignore[union-attr]
    with oai.responses.stream(**ask()) as helper:  # the SDK's own accumulator accepts a replay
        assert helper.get_final_response().output_text == text_of(live)
    plain, status = create(oai, **ask())  # the streamed entry answers a plain request
    assert status == "hit" and plain.output_text == text_of(live)
    assert calls(upstream) == 1


def test_plain_entry_answers_a_stream(oai: openai.OpenAI, upstream: UpstreamServer) -> None:
    plain, _ = create(oai, **ask())
    events, status = stream(oai, **ask())
    assert status == "hit" and text_of(events) == plain.output_text
    assert calls(upstream) == 1


def test_stream_wire_format(http: httpx.Client) -> None:
    body = ask()
    with http.stream("POST", "/v1/responses", json={**body, "stream": True}) as live:
        assert live.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(live.iter_bytes())
    assert b"include_usage" not in raw and b"data: [DONE]" not in raw
    replay = http.post("/v1/responses", json={**body, "stream": True})
    assert replay.headers["x-llmemo-cache"] == "hit"
    assert replay.text.startswith("event: response.created\ndata: {")
    assert replay.text.rstrip().split("\n")[-2] == "event: response.completed"


@pytest.mark.parametrize(
    "params",
    [{"previous_response_id": "resp_earlier"}, {"conversation": "conv_1"}, {"background": True}],
    ids=["previous_response_id", "conversation", "background"],
)
def test_server_side_state_bypasses_the_cache(
    oai: openai.OpenAI, upstream: UpstreamServer, params: dict[str, Any]
) -> None:
    create(oai, **ask())
    for _ in range(2):
        answer, status = create(oai, **ask(), **params)
        assert status == "bypass"
        events, status = stream(oai, **ask(), **params)
        assert status == "bypass" and text_of(events) == answer.output_text
    assert calls(upstream) == 5


@pytest.mark.parametrize(
    "params",
    [
        {"model": "fail-response"},
        {"max_output_tokens": 2},
        {"input": "Find it, use a tool", "tools": [TOOL]},
    ],
    ids=["failed", "incomplete", "function_call"],
)
def test_unfinished_answers_are_never_stored(
    oai: openai.OpenAI, upstream: UpstreamServer, params: dict[str, Any]
) -> None:
    body = {**ask(), **params}
    for _ in range(2):
        assert create(oai, **body)[1] == "miss"
        assert stream(oai, **body)[1] == "miss"
    assert calls(upstream) == 4


def test_upstream_errors_pass_through_and_are_not_cached(
    oai: openai.OpenAI, upstream: UpstreamServer
) -> None:
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as caught:
            oai.responses.create(**ask(model="fail-429"))
        assert caught.value.response.headers["x-llmemo-cache"] == "miss"
        with pytest.raises(openai.InternalServerError):
            oai.responses.create(**ask(model="fail-500"), stream=True)
    with pytest.raises(openai.APIError):
        list(oai.responses.create(**ask(model="fail-midstream"), stream=True))
    with pytest.raises(openai.APIError):
        list(oai.responses.create(**ask(model="fail-midstream"), stream=True))
    assert calls(upstream) == 6
    with pytest.raises(openai.BadRequestError, match="input"):
        oai.responses.create(model="gpt-4o-mini", input=[])  # refused by the upstream
    with pytest.raises(openai.BadRequestError, match="input"):
        oai.responses.create(model="gpt-4o-mini")  # refused by llmemo: nothing to key


def test_tenants_are_isolated(
    service: ServiceServer, oai: openai.OpenAI, upstream: UpstreamServer
) -> None:
    mine, _ = create(oai, **ask())
    with openai.OpenAI(api_key=BOB, base_url=service.base_url, max_retries=0) as bob:
        theirs, status = create(bob, **ask())
        assert status == "miss" and theirs.id != mine.id
        assert create(bob, **ask())[1] == "hit"
    assert calls(upstream) == 2
