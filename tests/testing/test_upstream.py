"""The fake upstream, driven by the official openai and anthropic SDKs (and httpx for the rest)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import anthropic
import httpx
import httpx2
import openai
import pytest

from devtools.redis_server import free_port
from llmemo.testing.server import UpstreamServer
from llmemo.testing.upstream import compose, credential_hash, embed, pieces
from tests.testing.conftest import API_KEY

ASK = [{"role": "user", "content": "What is Redis?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
ANSWER = re.compile(r"Answer to: What is Redis\? \[[0-9a-f]{8}\]")


@pytest.fixture
def claude(upstream: UpstreamServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=upstream.url, api_key=API_KEY, max_retries=0) as client:
        yield client


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (norm(a) * norm(b))


# -- pure parts ---------------------------------------------------------------------------------


def test_pieces_join_back_exactly() -> None:
    text = "  Answer to:\n two  spaces, trailing "
    assert "".join(pieces(text)) == text
    assert pieces("a b") == ["a", " b"]


def test_truncation_is_a_prefix_of_the_full_answer() -> None:
    full = compose("ab" * 32, "one two three four")
    cut = compose("ab" * 32, "one two three four", max_tokens=3)
    assert full.finish == "stop"
    assert (cut.text, cut.finish, cut.tokens) == ("Answer to: one", "length", 3)
    assert full.text.startswith(cut.text)


# -- OpenAI chat --------------------------------------------------------------------------------


def test_chat_answer_is_realistic(oai: openai.OpenAI) -> None:
    before = int(time.time())
    reply = oai.chat.completions.create(model="gpt-4o-mini", messages=ASK)
    choice = reply.choices[0]
    assert ANSWER.fullmatch(choice.message.content or "")
    assert (choice.finish_reason, choice.message.role, reply.model) == (
        "stop",
        "assistant",
        "gpt-4o-mini",
    )
    assert reply.id.startswith("chatcmpl-") and reply.object == "chat.completion"
    assert before <= reply.created <= int(time.time())
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (
        3,
        6,
        9,
    )
    assert reply._request_id and reply._request_id.startswith("req_")


def test_same_request_same_content_fresh_id(oai: openai.OpenAI) -> None:
    def ask(**extra: object) -> openai.types.chat.ChatCompletion:
        return oai.chat.completions.create(model="gpt-4o-mini", messages=ASK, **extra)

    first, second = ask(), ask(user="someone-else")
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.id != second.id
    system = [{"role": "system", "content": "Be terse."}, *ASK]
    other_context = oai.chat.completions.create(model="gpt-4o-mini", messages=system)
    other_temperature = ask(temperature=0.3)
    other_model = oai.chat.completions.create(model="gpt-4o", messages=ASK)
    contents = {
        r.choices[0].message.content for r in (first, other_context, other_temperature, other_model)
    }
    assert len(contents) == 4


def test_chat_stream_matches_the_plain_answer(oai: openai.OpenAI) -> None:
    plain = oai.chat.completions.create(model="gpt-4o-mini", messages=ASK)
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=ASK,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert len(chunks) > 3
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage == plain.usage
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1 and chunks[0].object == "chat.completion.chunk"


def test_chat_stream_without_include_usage_has_no_usage_chunk(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(model="gpt-4o-mini", messages=ASK, stream=True))
    assert all(c.choices and c.usage is None for c in chunks)


def test_stream_helper_accumulates_final_completion(oai: openai.OpenAI) -> None:
    with oai.chat.completions.stream(model="gpt-4o-mini", messages=ASK) as stream:
        final = stream.get_final_completion()
    assert ANSWER.fullmatch(final.choices[0].message.content or "")


def test_max_tokens_truncates_with_length(oai: openai.OpenAI) -> None:
    full = oai.chat.completions.create(model="gpt-4o-mini", messages=ASK)
    cut = oai.chat.completions.create(model="gpt-4o-mini", messages=ASK, max_tokens=3)
    assert (cut.choices[0].message.content, cut.choices[0].finish_reason) == (
        "Answer to: What",
        "length",
    )
    assert cut.usage is not None and cut.usage.completion_tokens == 3
    assert (full.choices[0].message.content or "").startswith("Answer to: What ")
    streamed = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=ASK,
        max_completion_tokens=3,
        stream=True,
    )
    chunks = [c.choices[0] for c in streamed]
    assert "".join(c.delta.content or "" for c in chunks) == "Answer to: What"
    assert chunks[-1].finish_reason == "length"


def test_stop_sequence_cuts_the_answer(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model="gpt-4o-mini", messages=ASK, stop=[" Redis"])
    assert (reply.choices[0].message.content, reply.choices[0].finish_reason) == (
        "Answer to: What is",
        "stop",
    )


def test_n_choices_differ(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model="gpt-4o-mini", messages=ASK, n=2)
    single = oai.chat.completions.create(model="gpt-4o-mini", messages=ASK)
    assert [c.index for c in reply.choices] == [0, 1]
    assert reply.choices[0].message.content == single.choices[0].message.content
    assert reply.choices[1].message.content != single.choices[0].message.content


def test_empty_answer(oai: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Give me an empty answer"}]
    reply = oai.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert (reply.choices[0].message.content, reply.choices[0].finish_reason) == ("", "stop")
    assert reply.usage is not None and reply.usage.completion_tokens == 0
    chunks = list(oai.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ""
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_tool_call_only_answer(oai: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Weather in Paris? use a tool"}]
    reply = oai.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER])
    choice = reply.choices[0]
    assert (choice.message.content, choice.finish_reason) == (None, "tool_calls")
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_") and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {
        "city": "Weather in Paris? use a tool",
        "days": 1,
    }

    with oai.chat.completions.stream(
        model="gpt-4o-mini", messages=messages, tools=[WEATHER]
    ) as stream:
        final = stream.get_final_completion()
    streamed = final.choices[0].message.tool_calls
    assert streamed is not None and streamed[0].function.arguments == call.function.arguments
    assert final.choices[0].finish_reason == "tool_calls"


def test_tools_without_the_phrase_or_after_a_result_answer_in_text(oai: openai.OpenAI) -> None:
    plain = oai.chat.completions.create(model="gpt-4o-mini", messages=ASK, tools=[WEATHER])
    assert plain.choices[0].finish_reason == "stop" and plain.choices[0].message.tool_calls is None
    after = [
        {"role": "user", "content": "Weather in Paris? use a tool"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]  # fmt: skip
    final = oai.chat.completions.create(model="gpt-4o-mini", messages=after, tools=[WEATHER])
    assert final.choices[0].finish_reason == "stop"
    assert (final.choices[0].message.content or "").startswith("Answer to: Weather in Paris?")
    forced = oai.chat.completions.create(
        model="gpt-4o-mini", messages=ASK, tools=[WEATHER], tool_choice="required"
    )
    assert forced.choices[0].finish_reason == "tool_calls"


# -- OpenAI completions, embeddings, models ------------------------------------------------------


def test_completions_plain_and_stream(oai: openai.OpenAI) -> None:
    reply = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say this is a test")
    text = reply.choices[0].text
    assert re.fullmatch(r"Answer to: Say this is a test \[[0-9a-f]{8}\]", text)
    assert reply.choices[0].finish_reason == "stop" and reply.object == "text_completion"
    long = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="word " * 40)
    assert long.choices[0].finish_reason == "length"  # the API's default max_tokens is 16
    assert long.usage is not None and long.usage.completion_tokens == 16
    chunks = list(
        oai.completions.create(
            model="gpt-3.5-turbo-instruct", prompt="Say this is a test", stream=True
        )
    )
    assert "".join(c.choices[0].text for c in chunks) == text
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_completions_one_choice_per_prompt(oai: openai.OpenAI) -> None:
    reply = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt=["alpha", "beta"])
    assert [c.text.split()[2] for c in reply.choices] == ["alpha", "beta"]
    assert [c.index for c in reply.choices] == [0, 1]


def test_embeddings_sdk_default_base64(oai: openai.OpenAI, upstream: UpstreamServer) -> None:
    texts = [
        "What is the capital of France?",
        "what's the capital of france",
        "How do I bake bread?",
    ]
    reply = oai.embeddings.create(model="text-embedding-3-small", input=texts)
    vectors = [d.embedding for d in reply.data]
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(abs(norm(v) - 1) < 1e-5 for v in vectors)
    assert cosine(vectors[0], vectors[1]) > 0.6 > 0.2 > abs(cosine(vectors[0], vectors[2]))
    again = oai.embeddings.create(model="text-embedding-3-small", input=texts[0]).data[0].embedding
    assert again == vectors[0]
    floats = oai.embeddings.create(
        model="text-embedding-3-small", input=texts[0], encoding_format="float"
    )
    assert floats.data[0].embedding == pytest.approx(vectors[0], abs=1e-6)
    assert reply.usage.prompt_tokens == sum(len(t.split()) for t in texts)
    raw = httpx.post(f"{upstream.openai_base_url}/embeddings", json={
        "model": "text-embedding-3-small", "input": "x", "encoding_format": "base64"})  # fmt: skip
    assert isinstance(raw.json()["data"][0]["embedding"], str)


def test_embedding_dimensions_and_model(oai: openai.OpenAI) -> None:
    small = oai.embeddings.create(model="text-embedding-3-small", input="hello", dimensions=64)
    assert len(small.data[0].embedding) == 64 and abs(norm(small.data[0].embedding) - 1) < 1e-5
    assert embed("hello", "m1", 8) != embed("hello", "m2", 8)
    assert embed("hello", "m1", 8) == embed("hello", "m1", 8)


def test_models_list(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    ids = [m.id for m in oai.models.list()]
    assert "gpt-4o-mini" in ids and "text-embedding-3-small" in ids
    assert all(m.startswith("claude") for m in [m.id for m in claude.models.list()])


def test_one_model_and_an_unknown_one(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    assert oai.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    assert claude.models.retrieve("claude-haiku-4-5").id == "claude-haiku-4-5"
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("no-such-model")
    with pytest.raises(anthropic.NotFoundError):
        claude.models.retrieve("no-such-model")


def test_unknown_paths_and_methods_answer_in_the_providers_shape(upstream: UpstreamServer) -> None:
    unknown = httpx.get(upstream.url + "/v1/nothing")
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "invalid_request_error"
    wrong = httpx.get(upstream.url + "/v1/messages", headers={"anthropic-version": "2023-06-01"})
    assert wrong.status_code == 405 and wrong.json()["type"] == "error"


# -- Anthropic ----------------------------------------------------------------------------------


def test_message_answer(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="claude-haiku-4-5", max_tokens=100, messages=ASK, system="Be terse."
    )
    assert (
        message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    )
    assert len(message.content) == 1 and message.content[0].type == "text"
    assert ANSWER.fullmatch(message.content[0].text)
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 6)
    assert message._request_id and message._request_id.startswith("req_")


def test_message_stream_final_message_equals_plain(claude: anthropic.Anthropic) -> None:
    plain = claude.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=ASK)
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=100, messages=ASK) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(deltas) == 6 and "".join(deltas) == plain.content[0].text
    assert final.model_dump(exclude={"id"}) == plain.model_dump(exclude={"id"})


def test_message_stream_event_sequence(upstream: UpstreamServer) -> None:
    body = {"model": "claude-haiku-4-5", "max_tokens": 2, "stream": True, "messages": ASK}
    with httpx.stream("POST", f"{upstream.url}/v1/messages", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    names = [line.removeprefix("event: ") for line in lines[::2]]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta", "message_stop"]  # fmt: skip
    datas = [json.loads(line.removeprefix("data: ")) for line in lines[1::2]]
    assert [d["type"] for d in datas] == names
    assert datas[-2]["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert datas[-2]["usage"] == {"output_tokens": 2}


def test_message_truncation_and_stop_sequences(claude: anthropic.Anthropic) -> None:
    cut = claude.messages.create(model="claude-haiku-4-5", max_tokens=2, messages=ASK)
    assert (cut.content[0].text, cut.stop_reason) == ("Answer to:", "max_tokens")
    stop = claude.messages.create(
        model="claude-haiku-4-5", max_tokens=99, messages=ASK, stop_sequences=["Redis"]
    )
    assert (stop.content[0].text, stop.stop_reason, stop.stop_sequence) == (
        "Answer to: What is ",
        "stop_sequence",
        "Redis",
    )


def test_message_empty_answer(claude: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": "empty answer"}]
    message = claude.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=messages)
    assert (message.content, message.stop_reason, message.usage.output_tokens) == (
        [],
        "end_turn",
        0,
    )
    with claude.messages.stream(
        model="claude-haiku-4-5", max_tokens=50, messages=messages
    ) as stream:
        assert stream.get_final_message().content == []


def test_message_tool_use(claude: anthropic.Anthropic) -> None:
    tool = {
        "name": "get_weather",
        "description": "Weather",
        "input_schema": WEATHER["function"]["parameters"],
    }
    messages = [{"role": "user", "content": [{"type": "text", "text": "Paris? use a tool"}]}]
    plain = claude.messages.create(
        model="claude-haiku-4-5", max_tokens=50, messages=messages, tools=[tool]
    )
    assert plain.stop_reason == "tool_use" and [b.type for b in plain.content] == ["tool_use"]
    block = plain.content[0]
    assert block.name == "get_weather" and block.input == {"city": "Paris? use a tool", "days": 1}
    assert block.id.startswith("toolu_")
    with claude.messages.stream(
        model="claude-haiku-4-5", max_tokens=50, messages=messages, tools=[tool]
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].input == block.input and final.stop_reason == "tool_use"
    result = [*messages, {"role": "assistant", "content": [block.model_dump()]},
              {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "sunny"}]}]  # fmt: skip
    after = claude.messages.create(
        model="claude-haiku-4-5", max_tokens=50, messages=result, tools=[tool]
    )
    assert after.stop_reason == "end_turn" and after.content[0].text.startswith("Answer to: sunny")


def test_anthropic_validation_error(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[])
    assert caught.value.body["error"]["type"] == "invalid_request_error"


# -- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (400, openai.BadRequestError, "invalid_request_error"),
        (401, openai.AuthenticationError, "invalid_request_error"),
        (404, openai.NotFoundError, "invalid_request_error"),
        (429, openai.RateLimitError, "requests"),
        (500, openai.InternalServerError, "server_error"),
        (503, openai.InternalServerError, "server_error"),
    ],
)
def test_openai_failures(
    oai: openai.OpenAI, status: int, error: type[openai.APIStatusError], kind: str
) -> None:
    with pytest.raises(error) as caught:
        oai.chat.completions.create(model=f"fail-{status}", messages=ASK)
    assert caught.value.status_code == status
    body = caught.value.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}
    assert body["type"] == kind and str(status) in body["message"]
    with pytest.raises(error):
        oai.embeddings.create(model=f"fail-{status}", input="x")


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (503, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_anthropic_failures(
    claude: anthropic.Anthropic, status: int, error: type[anthropic.APIStatusError], kind: str
) -> None:
    with pytest.raises(error) as caught:
        claude.messages.create(model=f"fail-{status}", max_tokens=10, messages=ASK)
    assert caught.value.status_code == status
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == kind
    with (
        pytest.raises(error),
        claude.messages.stream(model=f"fail-{status}", max_tokens=10, messages=ASK) as stream,
    ):
        stream.get_final_message()


def test_sdk_retries_reach_the_upstream(upstream: UpstreamServer) -> None:
    with (
        openai.OpenAI(base_url=upstream.openai_base_url, api_key=API_KEY, max_retries=2) as client,
        pytest.raises(openai.RateLimitError),
    ):
        client.chat.completions.create(model="fail-429", messages=ASK)
    assert upstream.stats().count("/v1/chat/completions", "fail-429") == 3


def test_midstream_drop(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    received = []
    with pytest.raises(openai.APIConnectionError):  # noqa: PT012
        for chunk in oai.chat.completions.create(model="fail-midstream", messages=ASK, stream=True):
            received.append(chunk)
    assert received and all(c.choices[0].finish_reason is None for c in received)
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="fail-midstream", messages=ASK)
    texts: list[str] = []
    with (
        pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)),
        claude.messages.stream(model="fail-midstream", max_tokens=50, messages=ASK) as stream,
    ):
        texts.extend(stream.text_stream)
    assert texts and "".join(texts) in "Answer to: What is Redis?"


def test_slow_model_and_sdk_timeout(upstream: UpstreamServer) -> None:
    with openai.OpenAI(
        base_url=upstream.openai_base_url, api_key=API_KEY, max_retries=0, timeout=0.05
    ) as client:
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="slow-500", messages=ASK)
        started = time.perf_counter()
        reply = client.with_options(timeout=5).chat.completions.create(
            model="slow-150", messages=ASK
        )
    assert time.perf_counter() - started >= 0.15
    assert reply.model == "slow-150" and reply.choices[0].finish_reason == "stop"


def test_global_latency_and_auth() -> None:
    with UpstreamServer(latency=0.1, require_auth=True, embedding_dim=16) as server:
        started = time.perf_counter()
        bare = httpx.post(
            f"{server.openai_base_url}/chat/completions", json={"model": "gpt-4o", "messages": ASK}
        )
        assert time.perf_counter() - started >= 0.1
        assert bare.status_code == 401 and bare.json()["error"]["code"] == "invalid_api_key"
        anth = httpx.post(
            f"{server.url}/v1/messages", json={"model": "c", "max_tokens": 5, "messages": ASK}
        )
        assert anth.status_code == 401 and anth.json()["error"]["type"] == "authentication_error"
        ok = httpx.post(f"{server.url}/v1/messages", headers={"x-api-key": "k2"},
                        json={"model": "c", "max_tokens": 5, "messages": ASK})  # fmt: skip
        assert ok.status_code == 200 and ok.headers["request-id"].startswith("req_")
        with openai.OpenAI(base_url=server.openai_base_url, api_key="k1", max_retries=0) as client:
            assert len(client.embeddings.create(model="e", input="x").data[0].embedding) == 16
        stats = server.stats()
        assert (
            stats.saw("k1", "authorization")
            and stats.saw("k2", "x-api-key")
            and not stats.saw("k3")
        )


# -- accounting and Ollama ----------------------------------------------------------------------


def test_stats_count_by_route_and_model(
    oai: openai.OpenAI, claude: anthropic.Anthropic, upstream: UpstreamServer
) -> None:
    oai.chat.completions.create(model="gpt-4o-mini", messages=ASK)
    oai.chat.completions.create(model="gpt-4o-mini", messages=ASK, stream=True).close()
    oai.chat.completions.create(model="gpt-4o", messages=ASK)
    claude.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=ASK)
    stats = upstream.stats()
    assert stats.count("/v1/chat/completions", "gpt-4o-mini") == 2
    assert stats.count("/v1/chat/completions") == 3 and stats.count(model="claude-haiku-4-5") == 1
    assert stats.total == 4 and stats.saw(API_KEY)
    served = httpx.get(f"{upstream.url}/_stats").json()
    assert served == stats.as_json()
    assert API_KEY not in json.dumps(served) and credential_hash(API_KEY) in json.dumps(served)
    assert httpx.post(f"{upstream.url}/_reset").status_code == 204
    assert upstream.stats().total == 0 and httpx.get(f"{upstream.url}/_stats").json()["total"] == 0


def test_ollama_embed(upstream: UpstreamServer) -> None:
    one = httpx.post(
        f"{upstream.url}/api/embed", json={"model": "nomic-embed-text", "input": "hello world"}
    ).json()
    many = httpx.post(
        f"{upstream.url}/api/embed",
        json={"model": "nomic-embed-text", "input": ["hello world", "bye"]},
    ).json()
    assert (
        one["model"] == "nomic-embed-text"
        and len(one["embeddings"]) == 1
        and len(many["embeddings"]) == 2
    )
    assert one["embeddings"][0] == many["embeddings"][0] and len(one["embeddings"][0]) == 384
    failed = httpx.post(f"{upstream.url}/api/embed", json={"model": "fail-500", "input": "x"})
    assert failed.status_code == 500 and set(failed.json()) == {"error"}
    missing = httpx.post(f"{upstream.url}/api/embed", json={"model": "m"})
    assert missing.status_code == 400
    assert upstream.stats().count("/api/embed") == 4


@pytest.mark.asyncio
async def test_async_client_stream(upstream: UpstreamServer) -> None:
    async with openai.AsyncOpenAI(
        base_url=upstream.openai_base_url, api_key=API_KEY, max_retries=0
    ) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=ASK, stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert ANSWER.fullmatch(text)


# -- command line -------------------------------------------------------------------------------


def test_runs_standalone() -> None:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "llmemo.testing.upstream",
        "--port",
        str(port),
        "--latency",
        "0.01",
    ]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as process:
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    models = httpx.get(f"http://127.0.0.1:{port}/v1/models")
                    break
                except httpx.ConnectError:
                    assert process.poll() is None and time.monotonic() < deadline
                    time.sleep(0.05)
            assert models.status_code == 200 and models.json()["object"] == "list"
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_bad_option_is_one_line() -> None:
    command = [sys.executable, "-m", "llmemo.testing.upstream", "--latency", "-1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "python -m llmemo.testing.upstream: error: latency and chunk_delay must be >= 0 seconds"
    ]
