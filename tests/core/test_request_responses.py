"""The Responses API request: what its key keeps, what it drops, and what bypasses the cache."""

from __future__ import annotations

from typing import Any

import pytest

from llmemo.core.request import from_openai, responses_bypass, to_request
from llmemo.errors import UnkeyableError

BASE: dict[str, Any] = {"model": "gpt-4o-mini", "input": "What is Redis?"}


def canonical(**params: Any) -> bytes:
    return from_openai({**BASE, **params}, "responses").canonical


@pytest.mark.parametrize(
    "params",
    [
        {"instructions": "Be brief."},
        {"temperature": 0.2},
        {"top_p": 0.5},
        {"max_output_tokens": 10},
        {"tools": [{"type": "function", "name": "f", "parameters": {}}]},
        {"tool_choice": "required"},
        {"text": {"format": {"type": "json_object"}}},
        {"reasoning": {"effort": "high"}},
        {"truncation": "auto"},
        {"include": ["reasoning.encrypted_content"]},
        {"parallel_tool_calls": False},
        {"max_tool_calls": 2},
        {"top_logprobs": 3},
        {"store": False},
        {"some_future_parameter": 1},
        {"input": [{"role": "user", "content": "What is Redis?"}]},
    ],
)
def test_output_affecting_parameters_are_kept(params: dict[str, Any]) -> None:
    assert canonical(**params) != canonical()


@pytest.mark.parametrize(
    "params",
    [
        {"stream": True},
        {"stream_options": {"include_obfuscation": False}},
        {"store": True},
        {"metadata": {"trace": "x"}},
        {"user": "u1"},
        {"safety_identifier": "s"},
        {"prompt_cache_key": "k"},
        {"service_tier": "flex"},
        {"background": False},
        {"timeout": 30},
        {"input": "  What is   Redis? "},
    ],
)
def test_neutral_parameters_are_dropped(params: dict[str, Any]) -> None:
    assert canonical(**params) == canonical()


def test_instructions_are_normalised_and_a_pinned_prompt_needs_no_input() -> None:
    assert canonical(instructions="Be  brief. ") == canonical(instructions="Be brief.")
    pinned = {"model": "gpt-4o-mini", "prompt": {"id": "pmpt_1", "version": "2"}}
    assert from_openai(pinned, "responses").semantic_text is None
    with pytest.raises(UnkeyableError, match="input"):
        from_openai({"model": "gpt-4o-mini"}, "responses")


def test_the_endpoint_is_told_from_the_body() -> None:
    assert to_request({**BASE, "instructions": "x"}).endpoint == "responses"
    assert to_request({"model": "m", "input": [{"role": "user", "content": "x"}]}).endpoint == (
        "responses"
    )


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"conversation": {"id": "conv_1"}}, "conversation"),
        ({"background": True}, "background"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt without a version"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "item_reference"),
    ],
)
def test_server_side_state_bypasses(params: dict[str, Any], reason: str) -> None:
    assert responses_bypass({**BASE, **params}) == reason


def test_plain_requests_do_not_bypass() -> None:
    pinned = {"prompt": {"id": "pmpt_1", "version": "3"}, "background": False, "store": False}
    assert responses_bypass(BASE) is None and responses_bypass({**BASE, **pinned}) is None
