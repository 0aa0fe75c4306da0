"""The official openai and anthropic SDKs (sync and async, stream and not) through `llmemo serve`."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from llmemo.testing.server import UpstreamServer

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
ASK = [{"role": "user", "content": "What is the capital of France?"}]


def ask_chat(client: openai.OpenAI, **extra: Any) -> tuple[Any, str]:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=ASK, **extra
    )
    return raw.parse(), raw.headers["x-llmemo-cache"]


def chat_text(stream: Any) -> tuple[str, list[Any]]:
    chunks = list(stream)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks


def test_openai_second_call_is_a_hit(oai: openai.OpenAI, upstream: UpstreamServer) -> None:
    first, status = ask_chat(oai)
    assert status == "miss"
    second, status = ask_chat(oai)
    assert status == "hit"
    assert second == first
    assert upstream.stats().count(CHAT) == 1


def test_openai_hit_carries_age(oai: openai.OpenAI) -> None:
    ask_chat(oai)
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=ASK)
    assert raw.headers["x-llmemo-cache"] == "hit"
    assert int(raw.headers["age"]) >= 0


@pytest.mark.asyncio
async def test_openai_async_second_call_is_a_hit(
    aoai: openai.AsyncOpenAI, upstream: UpstreamServer
) -> None:
    first = await aoai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=ASK)
    second = await aoai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=ASK)
    assert (first.headers["x-llmemo-cache"], second.headers["x-llmemo-cache"]) == ("miss", "hit")
    assert second.parse() == first.parse()
    assert upstream.stats().count(CHAT) == 1


def test_openai_stream_is_relayed_then_replayed(
    oai: openai.OpenAI, upstream: UpstreamServer
) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=ASK, stream=True
    )
    assert raw.headers["x-llmemo-cache"] == "miss"
    text, chunks = chat_text(raw.parse())
    assert text.startswith("Answer to: What is the capital of France?")
    assert all(c.choices for c in chunks)  # the usage chunk llmemo asked for stays hidden
    again = oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=ASK, stream=True
    )
    assert again.headers["x-llmemo-cache"] == "hit"
    replayed, _ = chat_text(again.parse())
    assert replayed == text
    assert upstream.stats().count(CHAT) == 1


@pytest.mark.asyncio
async def test_openai_async_stream_is_replayed(
    aoai: openai.AsyncOpenAI, upstream: UpstreamServer
) -> None:
    texts = []
    for _ in range(2):
        stream = await aoai.chat.completions.create(model="gpt-4o-mini", messages=ASK, stream=True)
        texts.append("".join([c.choices[0].delta.content or "" async for c in stream]))
    assert texts[0] == texts[1] and texts[0]
    assert upstream.stats().count(CHAT) == 1


def test_a_stream_entry_answers_a_plain_request_and_back(
    oai: openai.OpenAI, upstream: UpstreamServer
) -> None:
    text, _ = chat_text(oai.chat.completions.create(model="gpt-4o-mini", messages=ASK, stream=True))
    plain, status = ask_chat(oai)
    assert status == "hit"
    assert plain.choices[0].message.content == text
    assert plain.usage is not None and plain.usage.total_tokens > 0  # llmemo asked for usage
    other = [{"role": "user", "content": "Another question"}]
    first = oai.chat.completions.create(model="gpt-4o-mini", messages=other)
    streamed, _ = chat_text(
        oai.chat.completions.create(model="gpt-4o-mini", messages=other, stream=True)
    )
    assert streamed == first.choices[0].message.content
    assert upstream.stats().count(CHAT) == 2


def test_replay_sends_usage_only_when_asked(oai: openai.OpenAI) -> None:
    ask_chat(oai)
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o-mini", messages=ASK, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    plain = list(oai.chat.completions.create(model="gpt-4o-mini", messages=ASK, stream=True))
    assert all(c.choices and c.usage is None for c in plain)


def test_stream_helper_gets_the_final_completion_from_a_replay(oai: openai.OpenAI) -> None:
    first, _ = ask_chat(oai)
    with oai.chat.completions.stream(model="gpt-4o-mini", messages=ASK) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == first.choices[0].message.content
    assert final.id == first.id


def test_completions_and_embeddings_are_cached(
    oai: openai.OpenAI, upstream: UpstreamServer
) -> None:
    done = [
        oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi", max_tokens=20)
        for _ in range(2)
    ]
    assert done[0] == done[1]
    streamed = oai.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Say hi", max_tokens=20, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == done[0].choices[0].text
    vectors = [
        oai.embeddings.create(model="text-embedding-3-small", input="hello") for _ in range(2)
    ]
    assert vectors[0] == vectors[1]
    assert upstream.stats().count("/v1/completions") == 1
    assert upstream.stats().count("/v1/embeddings") == 1


def test_models_are_passed_through(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    assert "gpt-4o-mini" in [m.id for m in oai.models.list()]
    assert all(m.id.startswith("claude") for m in claude.models.list())


# -- Anthropic --------------------------------------------------------------------------------


def ask_claude(client: anthropic.Anthropic, **extra: Any) -> tuple[Any, str]:
    raw = client.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=100, messages=ASK, **extra
    )
    return raw.parse(), raw.headers["x-llmemo-cache"]


def test_anthropic_second_call_is_a_hit(
    claude: anthropic.Anthropic, upstream: UpstreamServer
) -> None:
    first, status = ask_claude(claude)
    second, again = ask_claude(claude)
    assert (status, again) == ("miss", "hit")
    assert second == first
    assert upstream.stats().count(MESSAGES) == 1


def test_repeated_calls_stay_equal_once_answered_hot(
    oai: openai.OpenAI, claude: anthropic.Anthropic, upstream: UpstreamServer
) -> None:
    """From the third identical call on, the service sends the hit's finished bytes
    (service/hot.py): the SDKs must still parse them to the very first object."""
    chats = [ask_chat(oai) for _ in range(6)]
    messages = [ask_claude(claude) for _ in range(6)]
    for answers, route in ((chats, CHAT), (messages, MESSAGES)):
        assert [status for _, status in answers] == ["miss"] + ["hit"] * 5
        assert all(answer == answers[0][0] for answer, _ in answers)
        assert upstream.stats().count(route) == 1


@pytest.mark.asyncio
async def test_anthropic_async_second_call_is_a_hit(
    aclaude: anthropic.AsyncAnthropic, upstream: UpstreamServer
) -> None:
    answers = [
        await aclaude.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=ASK)
        for _ in range(2)
    ]
    assert answers[0] == answers[1]
    assert upstream.stats().count(MESSAGES) == 1


def test_anthropic_stream_is_relayed_then_replayed(
    claude: anthropic.Anthropic, upstream: UpstreamServer
) -> None:
    finals = []
    for _ in range(2):
        with claude.messages.stream(
            model="claude-haiku-4-5", max_tokens=100, messages=ASK
        ) as stream:
            text = "".join(stream.text_stream)
            finals.append((text, stream.get_final_message()))
    assert finals[0][0] == finals[1][0] and finals[0][0].startswith("Answer to:")
    assert finals[0][1] == finals[1][1]
    assert upstream.stats().count(MESSAGES) == 1
    plain, status = ask_claude(claude)
    assert status == "hit"
    assert plain.model_dump(exclude_none=True) == finals[0][1].model_dump(exclude_none=True)


@pytest.mark.asyncio
async def test_anthropic_async_raw_stream_events(
    aclaude: anthropic.AsyncAnthropic, upstream: UpstreamServer
) -> None:
    first = await aclaude.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=ASK)
    stream = await aclaude.messages.create(
        model="claude-haiku-4-5", max_tokens=100, messages=ASK, stream=True
    )
    events = [event async for event in stream]
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    text = "".join(
        e.delta.text
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )
    assert text == first.content[0].text  # type: ignore[union-attr]
    assert upstream.stats().count(MESSAGES) == 1


# -- failures ---------------------------------------------------------------------------------


def test_a_stream_cut_upstream_is_not_stored(oai: openai.OpenAI, upstream: UpstreamServer) -> None:
    for _ in range(2):
        with pytest.raises(openai.APIError, match="stream broke"):
            list(oai.chat.completions.create(model="fail-midstream", messages=ASK, stream=True))
    assert upstream.stats().count(CHAT) == 2


def test_an_anthropic_stream_cut_upstream_is_not_stored(
    claude: anthropic.Anthropic, upstream: UpstreamServer
) -> None:
    for _ in range(2):
        with (
            pytest.raises(anthropic.APIError),
            claude.messages.stream(model="fail-midstream", max_tokens=100, messages=ASK) as stream,
        ):
            stream.until_done()
    assert upstream.stats().count(MESSAGES) == 2


@pytest.mark.parametrize(
    ("model", "error"),
    [
        ("fail-429", openai.RateLimitError),
        ("fail-500", openai.InternalServerError),
        ("fail-400", openai.BadRequestError),
        ("fail-401", openai.AuthenticationError),
    ],
)
def test_openai_upstream_errors_pass_through_and_are_not_cached(
    oai: openai.OpenAI, upstream: UpstreamServer, model: str, error: type[Exception]
) -> None:
    for _ in range(2):
        with pytest.raises(error) as caught:
            oai.chat.completions.create(model=model, messages=ASK)
        assert "Simulated" in str(caught.value)
        assert caught.value.response.headers["x-llmemo-cache"] == "miss"  # type: ignore[attr-defined]
    for _ in range(2):
        with pytest.raises(error):
            list(oai.chat.completions.create(model=model, messages=ASK, stream=True))
    assert upstream.stats().count(CHAT) == 4


def test_anthropic_upstream_errors_keep_their_shape(
    claude: anthropic.Anthropic, upstream: UpstreamServer
) -> None:
    for _ in range(2):
        with pytest.raises(anthropic.APIStatusError) as caught:
            claude.messages.create(model="fail-529", max_tokens=10, messages=ASK)
        assert caught.value.status_code == 529
        assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert upstream.stats().count(MESSAGES) == 2
