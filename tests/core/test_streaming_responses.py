"""The Responses API stream shape: response -> events -> response, checked against the SDK's parser."""

from __future__ import annotations

from typing import Any

import pytest
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from llmemo.core.streaming import (
    IncompleteStreamError,
    StreamCollector,
    assemble_response,
    replay,
    response_events,
    sse,
)
from llmemo.testing.answers import pieces
from llmemo.testing.responses_api import openai_response

TOOL = {"type": "function", "name": "lookup", "strict": False,
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}  # fmt: skip
EVENT = TypeAdapter[Any](ResponseStreamEvent)


def made(**body: Any) -> dict[str, Any]:
    return openai_response({"model": "gpt-4o-mini", "input": "What is Redis?", **body}, "r1", 1)


RESPONSES = {
    "text": made(),
    "function_call": made(input="find it, use a tool", tools=[TOOL]),
    "incomplete": made(max_output_tokens=2),
    "failed": made(model="fail-response"),
}


@pytest.mark.parametrize("name", list(RESPONSES))
@pytest.mark.parametrize("split", [None, pieces])
def test_events_assemble_back_to_the_response(name: str, split: Any) -> None:
    response = RESPONSES[name]
    events = response_events(response, split) if split else response_events(response)
    assert assemble_response(events) == response
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    terminal = {"incomplete": "response.incomplete", "failed": "response.failed"}
    assert events[-1]["type"] == terminal.get(name, "response.completed")


@pytest.mark.parametrize("name", ["text", "function_call"])
def test_replayed_events_satisfy_the_sdk_accumulator(name: str) -> None:
    response = RESPONSES[name]
    state = ResponseStreamState[Any](input_tools=[TOOL], text_format=omit)  # type: ignore[list-item]
    for event in response_events(response):
        state.handle_event(EVENT.validate_python(event))
    final = state._completed_response
    assert final is not None
    assert final.output_text == Response.model_validate(response).output_text
    assert [item.type for item in final.output] == [item["type"] for item in response["output"]]


def test_assemble_takes_output_items_when_the_terminal_event_omits_them() -> None:
    events = response_events(RESPONSES["text"])
    events[-1] = {**events[-1], "response": {**events[-1]["response"], "output": []}}
    assert assemble_response(events)["output"] == RESPONSES["text"]["output"]
    with pytest.raises(IncompleteStreamError):
        assemble_response(events[:-1])


def test_collector_follows_a_response_stream() -> None:
    body = replay("response", RESPONSES["text"])
    assert body.startswith(b"event: response.created\ndata: ")
    collector = StreamCollector("response")
    frames = [frame for i in range(0, len(body), 7) for frame in collector.feed(body[i : i + 7])]
    assert b"".join(frame.raw for frame in frames) == body
    assert collector.response() == RESPONSES["text"]


def test_collector_refuses_a_cut_or_failed_response_stream() -> None:
    body = replay("response", RESPONSES["text"])
    cut = StreamCollector("response")
    cut.feed(body[: body.index(b"event: response.completed")])
    with pytest.raises(IncompleteStreamError, match="terminal"):
        cut.response()
    errored = StreamCollector("response")
    errored.feed(body[:200].rpartition(b"\n\n")[0] + b"\n\n")
    errored.feed(sse({"type": "error", "message": "boom", "sequence_number": 3}, "error"))
    with pytest.raises(IncompleteStreamError, match="error"):
        errored.response()
    failed = StreamCollector("response")
    failed.feed(replay("response", RESPONSES["failed"]))
    assert failed.response()["status"] == "failed"  # a finished stream: policy refuses to store it
