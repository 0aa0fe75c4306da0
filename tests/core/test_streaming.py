"""Streams: SSE decoding, stream -> response, response -> stream, checked against the SDKs' own parsers."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from hypothesis import given
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from llmemo.core.streaming import (
    DONE,
    IncompleteStreamError,
    SSEDecoder,
    StreamCollector,
    assemble_chat,
    assemble_completion,
    assemble_message,
    chat_chunks,
    completion_chunks,
    is_usage_chunk,
    message_events,
    parse_frame,
    replay,
    sse,
)
from llmemo.testing import upstream

TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {
            "type": "object",
            "properties": {"q": {"type": "string"}, "n": {"type": "integer"}},
        },
    },
}


def chat(text: str = "What is the capital of France?", **params: Any) -> dict[str, Any]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **params}
    return upstream.openai_chat(body, "chatcmpl-abc", 1_700_000_000)


def message(text: str = "Name a colour.", **params: Any) -> dict[str, Any]:
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
        **params,
    }
    return upstream.anthropic_message(body, "msg_abc")


def frames_of(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(sse(c) for c in chunks) + sse(DONE)


# -- SSE --------------------------------------------------------------------------------------


def test_decoder_joins_events_split_anywhere() -> None:
    body = (
        b'event: a\ndata: {"x": 1}\n\n: comment\n\ndata: line1\ndata: line2\r\n\r\ndata: [DONE]\n\n'
    )
    for cut in range(len(body) + 1):
        decoder = SSEDecoder()
        frames = decoder.feed(body[:cut]) + decoder.feed(body[cut:])
        assert [(f.event, f.data) for f in frames] == [
            ("a", '{"x": 1}'),
            (None, "line1\nline2"),
            (None, DONE),
        ]
        assert frames[0].json == {"x": 1}
        assert b"".join(f.raw for f in frames) == body.replace(b": comment\n\n", b"")
        assert decoder.pending == b""


def test_decoder_keeps_a_partial_event_pending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a": 1}\n\ndata: {"b"') == [parse_frame(b'data: {"a": 1}\n\n')]
    assert decoder.pending == b'data: {"b"'


def test_sse_encodes_named_and_unnamed_events() -> None:
    assert sse({"a": 1}) == b'data: {"a":1}\n\n'
    assert sse({"type": "ping"}, "ping") == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert sse(DONE) == b"data: [DONE]\n\n"


# -- OpenAI chat ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion",
    [
        chat(),
        chat("empty answer"),
        chat("Please use a tool now", tools=[TOOL]),
        chat("Two answers", n=2),
        chat("A long question that is cut short", max_tokens=3),
    ],
    ids=["text", "empty", "tool", "n2", "length"],
)
@pytest.mark.parametrize("include_usage", [True, False])
def test_assemble_chat_rebuilds_the_upstream_completion(
    completion: dict[str, Any], include_usage: bool
) -> None:
    chunks = upstream.openai_chat_chunks(completion, include_usage)
    assembled = assemble_chat(chunks)
    expected = (
        completion if include_usage else {k: v for k, v in completion.items() if k != "usage"}
    )
    assert assembled == expected
    ChatCompletion.model_validate(assembled)


@pytest.mark.parametrize(
    "completion",
    [chat(), chat("Please use a tool now", tools=[TOOL]), chat("Two answers", n=2)],
    ids=["text", "tool", "n2"],
)
def test_chat_chunks_round_trip_and_match_the_sdk_accumulator(completion: dict[str, Any]) -> None:
    chunks = chat_chunks(completion, include_usage=True)
    assert assemble_chat(chunks) == completion
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in chunks:
        list(state.handle_chunk(ChatCompletionChunk.model_validate(chunk)))
    final = state.get_final_completion()
    assert final.id == completion["id"]
    assert final.usage is not None
    assert final.usage.model_dump(exclude_none=True) == completion["usage"]
    for got, want in zip(final.choices, completion["choices"], strict=True):
        assert got.finish_reason == want["finish_reason"]
        assert got.message.content == want["message"]["content"]
        calls = got.message.tool_calls or []
        assert [c.model_dump(exclude_none=True, exclude={"index"}) for c in calls] == (
            want["message"].get("tool_calls") or []
        )


def test_chat_chunks_follow_the_wire_format() -> None:
    completion = chat()
    chunks = chat_chunks(completion, include_usage=True)
    assert all(c["object"] == "chat.completion.chunk" and "usage" in c for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert is_usage_chunk(chunks[-1]) and not is_usage_chunk(chunks[-2])
    assert all("usage" not in c for c in chat_chunks(completion))
    assert not any(is_usage_chunk(c) for c in chat_chunks(completion))


def test_assemble_chat_merges_split_tool_call_arguments_and_logprobs() -> None:
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def chunk(
        delta: dict[str, Any], finish: str | None = None, logprobs: Any = None
    ) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": logprobs}
        return {**head, "choices": [choice]}

    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    chunks = [
        chunk({"role": "assistant", "content": None, "tool_calls": [call]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": '}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk({"reasoning_content": "hm"}, logprobs={"content": [{"token": "x"}]}),
        chunk({"reasoning_content": "m"}, logprobs={"content": [{"token": "y"}]}),
        chunk({}, "tool_calls"),
    ]
    choice = assemble_chat(chunks)["choices"][0]
    assert choice["message"]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    ]
    assert choice["message"]["content"] is None
    assert choice["message"]["reasoning_content"] == "hmm"
    assert choice["logprobs"] == {"content": [{"token": "x"}, {"token": "y"}]}
    assert choice["finish_reason"] == "tool_calls"


@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=20))
def test_assemble_chat_joins_any_split_of_the_text(pieces: list[str]) -> None:
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    chunks = [{**head, "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    chunks.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    assert assemble_chat(chunks)["choices"][0]["message"]["content"] == "".join(pieces)


# -- OpenAI legacy completions ----------------------------------------------------------------


def completion(prompt: str = "Say hi", **params: Any) -> dict[str, Any]:
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": prompt, **params}
    return upstream.openai_completion(body, [prompt], "cmpl-abc", 1_700_000_000)


@pytest.mark.parametrize("include_usage", [True, False])
def test_completion_streams_round_trip(include_usage: bool) -> None:
    done = completion(n=2, max_tokens=50)
    expected = done if include_usage else {k: v for k, v in done.items() if k != "usage"}
    assert assemble_completion(upstream.openai_completion_chunks(done, include_usage)) == expected
    assert assemble_completion(completion_chunks(done, include_usage)) == expected
    Completion.model_validate(assemble_completion(completion_chunks(done, include_usage)))


# -- Anthropic --------------------------------------------------------------------------------

WEATHER = {
    "name": "weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.mark.parametrize(
    "msg",
    [
        message(),
        message("empty answer"),
        message("Please use a tool", tools=[WEATHER]),
        message("A question that is too long for the limit", max_tokens=2),
    ],
    ids=["text", "empty", "tool", "max_tokens"],
)
def test_assemble_message_rebuilds_the_upstream_message(msg: dict[str, Any]) -> None:
    events = [data for _, data in upstream.anthropic_events(msg)]
    assert assemble_message(events) == msg
    assert assemble_message(message_events(msg)) == msg


@pytest.mark.parametrize(
    "msg",
    [
        message(),
        message("Please use a tool", tools=[WEATHER]),
        {
            **message(),
            "content": [
                {"type": "thinking", "thinking": "Let me think.", "signature": "sig=="},
                {"type": "redacted_thinking", "data": "opaque"},
                {
                    "type": "text",
                    "text": "Blue.",
                    "citations": [{"type": "char_location", "cited_text": "b"}],
                },
            ],
        },
    ],
    ids=["text", "tool", "thinking"],
)
def test_message_events_match_the_sdk_accumulator(msg: dict[str, Any]) -> None:
    snapshot = None
    buffers: dict[int, bytes] = {}
    for event in message_events(msg):
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=buffers)  # type: ignore[arg-type]
    assert snapshot is not None
    got = snapshot.model_dump(exclude_none=True)
    want = orjson.loads(orjson.dumps(msg))
    assert got["content"] == [
        {k: v for k, v in b.items() if v is not None} for b in want["content"]
    ]
    assert got["usage"]["output_tokens"] == msg["usage"]["output_tokens"]
    assert got["usage"]["input_tokens"] == msg["usage"]["input_tokens"]
    assert snapshot.stop_reason == msg["stop_reason"]
    assert assemble_message(message_events(msg)) == msg


def test_message_events_are_in_the_documented_order() -> None:
    kinds = [e["type"] for e in message_events(message())]
    assert kinds == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_assemble_message_needs_message_start() -> None:
    with pytest.raises(IncompleteStreamError):
        assemble_message([{"type": "message_stop"}])


# -- the collector and replay -----------------------------------------------------------------


def test_collector_assembles_a_clean_openai_stream() -> None:
    done = chat()
    body = frames_of(upstream.openai_chat_chunks(done, True))
    collector = StreamCollector("chat")
    seen = []
    for start in range(0, len(body), 7):
        seen += collector.feed(body[start : start + 7])
    assert b"".join(f.raw for f in seen) == body
    assert collector.finished and collector.response() == done


def test_collector_refuses_a_cut_stream() -> None:
    body = frames_of(upstream.openai_chat_chunks(chat(), False))
    collector = StreamCollector("chat")
    collector.feed(body[: len(body) // 2])
    with pytest.raises(IncompleteStreamError, match="terminal"):
        collector.response()


@pytest.mark.parametrize(
    ("shape", "error"),
    [
        ("chat", sse({"error": {"message": "boom", "type": "server_error"}})),
        ("message", sse({"type": "error", "error": {"type": "overloaded_error"}}, "error")),
    ],
)
def test_collector_refuses_a_stream_with_an_error_event(shape: Any, error: bytes) -> None:
    msg = message()
    events = [sse(data, name) for name, data in upstream.anthropic_events(msg)]
    body = b"".join(events[:2]) + error + b"".join(events[2:])
    if shape == "chat":
        chunks = upstream.openai_chat_chunks(chat(), False)
        body = sse(chunks[0]) + error + frames_of(chunks[1:])
    collector = StreamCollector(shape)
    collector.feed(body)
    with pytest.raises(IncompleteStreamError, match="error"):
        collector.response()


def test_collector_assembles_an_anthropic_stream() -> None:
    msg = message()
    collector = StreamCollector("message")
    collector.feed(b"".join(sse(data, name) for name, data in upstream.anthropic_events(msg)))
    assert collector.response() == msg


@pytest.mark.parametrize(
    ("shape", "response"),
    [("chat", chat()), ("completion", completion()), ("message", message())],
)
def test_replay_is_a_complete_stream_of_the_response(shape: Any, response: dict[str, Any]) -> None:
    body = replay(shape, response, include_usage=True)
    collector = StreamCollector(shape)
    collector.feed(body)
    assert collector.finished
    assert collector.response() == response
    if shape != "message":
        assert body.endswith(b"data: [DONE]\n\n")
    else:
        assert body.startswith(b"event: message_start\n") and body.endswith(
            b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
        )
