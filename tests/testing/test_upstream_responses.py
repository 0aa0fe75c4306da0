"""The local upstream's Responses API (`POST /v1/responses`), through the official OpenAI SDK."""

from __future__ import annotations

import json
import re

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseCompletedEvent, ResponseFunctionToolCall

from llmemo.testing.server import UpstreamServer
from tests.testing.conftest import API_KEY

ROUTE = "/v1/responses"
ANSWER = re.compile(r"Answer to: What is Redis\? \[[0-9a-f]{8}\]")
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "strict": False,
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}
EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    *["response.output_text.delta"] * 6,
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def test_response_object(oai: openai.OpenAI, upstream: UpstreamServer) -> None:
    response = oai.responses.create(model="gpt-4o-mini", input="What is Redis?")
    assert isinstance(response, Response)
    assert response.object == "response" and response.status == "completed"
    assert response.id.startswith("resp_") and response.model == "gpt-4o-mini"
    assert ANSWER.fullmatch(response.output_text)
    [message] = response.output
    assert message.type == "message" and message.role == "assistant"
    assert response.usage is not None
    assert response.usage.input_tokens == 3 and response.usage.output_tokens == 6
    assert response.usage.total_tokens == 9
    again = oai.responses.create(model="gpt-4o-mini", input="What is Redis?")
    assert again.id != response.id and again.output_text == response.output_text
    items = [{"role": "user", "content": [{"type": "input_text", "text": "What is Redis?"}]}]
    assert ANSWER.fullmatch(oai.responses.create(model="gpt-4o-mini", input=items).output_text)
    assert upstream.stats().count(ROUTE, "gpt-4o-mini") == 3


def test_stream_event_sequence(oai: openai.OpenAI) -> None:
    plain = oai.responses.create(model="gpt-4o-mini", input="What is Redis?")
    events = list(oai.responses.create(model="gpt-4o-mini", input="What is Redis?", stream=True))
    assert [event.type for event in events] == EVENTS
    assert [event.sequence_number for event in events] == list(range(len(EVENTS)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == plain.output_text
    assert events[0].type == "response.created" and events[0].response.status == "in_progress"
    last = events[-1]
    assert isinstance(last, ResponseCompletedEvent)
    assert last.response.output_text == plain.output_text and last.response.usage == plain.usage


def test_stream_helper(oai: openai.OpenAI, upstream: UpstreamServer) -> None:
    with oai.responses.stream(model="gpt-4o-mini", input="What is Redis?") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert ANSWER.fullmatch(text) and final.output_text == text


@pytest.mark.asyncio
async def test_stream_helper_async(upstream: UpstreamServer) -> None:
    async with openai.AsyncOpenAI(
        base_url=upstream.openai_base_url, api_key=API_KEY, max_retries=0
    ) as client:
        events = await client.responses.create(model="gpt-4o-mini", input="What is Redis?",
                                               stream=True)  # fmt: skip
        assert [event.type async for event in events] == EVENTS
        async with client.responses.stream(model="gpt-4o-mini", input="What is Redis?") as stream:
            final = await stream.get_final_response()
    assert ANSWER.fullmatch(final.output_text)


def test_function_call_only_answer(oai: openai.OpenAI) -> None:
    ask = {"model": "gpt-4o-mini", "input": "Weather in Paris? use a tool", "tools": [WEATHER]}
    [call] = oai.responses.create(**ask).output
    assert isinstance(call, ResponseFunctionToolCall) and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Weather in Paris? use a tool", "days": 1}
    with oai.responses.stream(**ask) as stream:
        final = stream.get_final_response()
    [streamed] = final.output
    assert isinstance(streamed, ResponseFunctionToolCall)
    assert streamed.arguments == call.arguments
    result = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    history = [
        {"role": "user", "content": ask["input"]},
        call.model_dump(exclude_none=True),
        result,
    ]
    answered = oai.responses.create(**{**ask, "input": history})
    assert answered.output[0].type == "message" and answered.output_text


def test_max_output_tokens_is_incomplete(oai: openai.OpenAI) -> None:
    full = oai.responses.create(model="gpt-4o-mini", input="What is Redis?")
    cut = oai.responses.create(model="gpt-4o-mini", input="What is Redis?", max_output_tokens=2)
    assert cut.status == "incomplete" and cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens"
    assert cut.output_text == "Answer to:" and full.output_text.startswith(cut.output_text)
    events = list(
        oai.responses.create(
            model="gpt-4o-mini", input="What is Redis?", max_output_tokens=2, stream=True
        )
    )
    assert events[-1].type == "response.incomplete"


def test_failed_response(oai: openai.OpenAI) -> None:
    failed = oai.responses.create(model="fail-response", input="What is Redis?")
    assert failed.status == "failed" and failed.error is not None and failed.output == []
    events = list(oai.responses.create(model="fail-response", input="x", stream=True))
    assert [e.type for e in events] == ["response.created", "response.in_progress",
                                        "response.failed"]  # fmt: skip


def test_failures_and_counter(oai: openai.OpenAI, upstream: UpstreamServer) -> None:
    with pytest.raises(openai.RateLimitError):
        oai.responses.create(model="fail-429", input="x")
    with pytest.raises(openai.InternalServerError):
        oai.responses.create(model="fail-500", input="x")
    with pytest.raises(openai.APIConnectionError):
        list(oai.responses.create(model="fail-midstream", input="one two three", stream=True))
    with pytest.raises(openai.BadRequestError, match="input"):
        oai.responses.create(model="gpt-4o-mini", input=[])
    missing = httpx.post(f"{upstream.openai_base_url}/responses", json={"input": "x"})
    assert missing.status_code == 400 and "model" in missing.json()["error"]["message"]
    stats = upstream.stats()
    assert stats.count(ROUTE, "fail-429") == 1 and stats.count(ROUTE) == 5
    assert stats.saw(API_KEY, "authorization")
