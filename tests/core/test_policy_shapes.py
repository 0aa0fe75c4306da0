"""Only finished answers of the endpoint's own shape are stored (`policy.skip_reason` with the
request's endpoint): unknown shapes, and answers or streams without a final reason, are skipped."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmemo import Cache
from llmemo.core.policy import skip_reason
from llmemo.core.streaming import Shape, StreamCollector
from llmemo.testing.anthropic_api import anthropic_events, anthropic_message
from llmemo.testing.failures import odd_shape, unfinish
from llmemo.testing.openai_api import (
    openai_chat,
    openai_chat_chunks,
    openai_completion,
    openai_embeddings,
)
from llmemo.testing.responses_api import openai_response
from tests.core.helpers import Upstream, chat

ASK = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is Redis?"}]}
CLAUDE = {**ASK, "model": "claude-haiku-4-5", "max_tokens": 100}
EMBED = {"model": "text-embedding-3-small", "input": "What is Redis?"}
RESPONSE = {"model": "gpt-4o-mini", "input": "What is Redis?"}


def answers() -> dict[str, dict[str, Any]]:
    """A well-formed answer of each endpoint, as the test upstream makes it."""
    return {
        "chat": openai_chat(ASK, "c", 1),
        "completions": openai_completion({"model": "m", "prompt": "p"}, ["p"], "c", 1),
        "embeddings": openai_embeddings(EMBED, ["What is Redis?"], 8),
        "responses": openai_response(RESPONSE, "r", 1),
        "messages": anthropic_message(CLAUDE, "m"),
    }


@pytest.mark.parametrize("endpoint", ["chat", "completions", "embeddings", "responses", "messages"])
def test_each_endpoint_stores_its_own_finished_shape_only(endpoint: str) -> None:
    made = answers()
    assert skip_reason(made[endpoint], endpoint=endpoint) is None
    assert skip_reason(odd_shape("x"), endpoint=endpoint) == "unexpected_shape"
    for other, response in made.items():
        if other not in (endpoint, {"chat": "completions", "completions": "chat"}.get(endpoint)):
            assert skip_reason(response, endpoint=endpoint) == "unexpected_shape", other


@pytest.mark.parametrize("endpoint", ["chat", "completions", "responses", "messages"])
def test_an_answer_without_a_final_reason_is_incomplete(endpoint: str) -> None:
    response = answers()[endpoint]
    unfinish(response)
    assert skip_reason(response, endpoint=endpoint) == "incomplete"
    assert skip_reason(response) == "incomplete"  # whatever asked for it


@pytest.mark.parametrize(
    "data",
    [[{"object": "embedding", "index": 0}], [{"embedding": None}], "nope", [1, 2]],
)
def test_embeddings_need_their_vectors(data: Any) -> None:
    response = {**answers()["embeddings"], "data": data}
    assert skip_reason(response, endpoint="embeddings") == "unexpected_shape"


def test_other_requests_keep_any_json_object() -> None:
    assert skip_reason(odd_shape("x")) is None
    assert skip_reason(odd_shape("x"), endpoint="function") is None
    assert skip_reason(odd_shape("x"), endpoint="prompt") is None


def collect(shape: Shape, frames: list[bytes]) -> dict[str, Any]:
    collector = StreamCollector(shape)
    for frame in frames:
        collector.feed(frame)
    return collector.response()


def test_a_chat_stream_that_ends_without_a_finish_reason_is_incomplete() -> None:
    completion = openai_chat(ASK, "c", 1)
    unfinish(completion)
    chunks = [
        b"data: " + json.dumps(c).encode() + b"\n\n" for c in openai_chat_chunks(completion, False)
    ]
    response = collect("chat", [*chunks, b"data: [DONE]\n\n"])  # [DONE] came: the stream is whole
    assert skip_reason(response, endpoint="chat") == "incomplete"


def test_an_anthropic_stream_that_stops_without_a_stop_reason_is_incomplete() -> None:
    message = anthropic_message(CLAUDE, "m")
    unfinish(message)
    frames = [
        f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
        for name, data in anthropic_events(message)
    ]
    assert frames[-1].startswith(b"event: message_stop")
    response = collect("message", frames)
    assert skip_reason(response, endpoint="messages") == "incomplete"


def test_the_cache_does_not_store_odd_answers(redis_url: str) -> None:
    cache = Cache.from_url(redis_url)
    unfinished = openai_chat(ASK, "c", 1)
    unfinish(unfinished)
    for response, reason in ((odd_shape("x"), "unexpected_shape"), (unfinished, "incomplete")):
        upstream = Upstream(response)
        first, second = cache.compute(chat(), upstream), cache.compute(chat(), upstream)
        assert first.skipped == second.skipped == reason
        assert not first.stored and upstream.calls == 2
    assert cache.memoize()(lambda: odd_shape("x"))() == odd_shape("x")  # a function's JSON is kept
    cache.flush()
    assert cache.stats().skip_reasons == {"unexpected_shape": 2, "incomplete": 2}
    cache.close()
