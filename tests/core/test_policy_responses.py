"""Which Responses API objects may be stored (`policy.skip_reason`)."""

from __future__ import annotations

from typing import Any

import pytest

from llmemo.core.policy import skip_reason
from llmemo.testing.responses_api import openai_response

TOOL = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}


def made(**body: Any) -> dict[str, Any]:
    return openai_response({"model": "gpt-4o-mini", "input": "What is Redis?", **body}, "r", 1)


def test_a_completed_text_answer_is_stored() -> None:
    response = made()
    assert response["error"] is None and skip_reason(response) is None


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (made(max_output_tokens=1), "truncated"),
        (made(model="fail-response"), "error"),
        ({**made(), "status": "cancelled"}, "error"),
        ({**made(), "status": "queued", "output": []}, "uncacheable"),
        ({**made(), "status": "in_progress"}, "uncacheable"),
        (made(input="use a tool", tools=[TOOL]), "tool_calls"),
        (made(input="empty answer"), "empty"),
        ({**made(), "output": []}, "empty"),
        ({**made(), "output": "nonsense"}, "error"),
    ],
)
def test_unfinished_answers_are_skipped(response: dict[str, Any], reason: str) -> None:
    assert skip_reason(response) == reason


def test_text_with_a_pending_call_is_an_agent_step() -> None:
    text, call = made()["output"][0], made(input="use a tool", tools=[TOOL])["output"][0]
    assert skip_reason({**made(), "output": [text, call]}) == "tool_calls"
    hosted = {"type": "web_search_call", "id": "ws_1", "status": "completed"}
    assert skip_reason({**made(), "output": [hosted, text]}) is None
