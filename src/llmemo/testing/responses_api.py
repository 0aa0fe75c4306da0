"""The test upstream's OpenAI Responses API: a `response` object and its event stream.

Input is a string or a list of items; the last user message is the prompt. A function tool is
called as in chat (tools given and the text says "use a tool", or `tool_choice` forces one), unless
the last item is a tool's output. `max_output_tokens` cuts the answer short (status `incomplete`)
and the model `fail-response` answers a `failed` response (HTTP 200, as a stream would end).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from llmemo.core.streaming import response_events
from llmemo.testing.answers import (
    JSON,
    compose,
    content_text,
    count_tokens,
    pick_tool,
    pieces,
    request_key,
)

FAILING_MODEL = "fail-response"


def _items(body: JSON) -> list[JSON]:
    value = body.get("input")
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _prompt(items: list[JSON]) -> str:
    return next(
        (content_text(i.get("content")) for i in reversed(items) if i.get("role") == "user"), ""
    )


def _tool(body: JSON, items: list[JSON], text: str) -> tuple[str, object] | None:
    if not items or items[-1].get("role") != "user":  # e.g. a function_call_output: answer it
        return None
    tools = [(t["name"], t.get("parameters")) for t in body.get("tools") or ()
             if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("name"), str)]  # fmt: skip
    choice = body.get("tool_choice") or "auto"
    if isinstance(choice, dict):
        return pick_tool(tools, text, "required", choice.get("name"))
    return pick_tool(tools, text, str(choice), None)


def openai_response(body: JSON, rid: str, created: int) -> JSON:
    """A Responses API `response` for a validated request body."""
    items = _items(body)
    text = _prompt(items)
    limit = body.get("max_output_tokens")
    reply = compose(request_key(body), text, max_tokens=limit, tool=_tool(body, items, text))
    status = "incomplete" if reply.finish == "length" else "completed"
    if reply.tool:
        output: list[JSON] = [{"id": f"fc_{rid}", "type": "function_call", "status": "completed",
                               "call_id": f"call_{reply.tool.id}", "name": reply.tool.name,
                               "arguments": json.dumps(reply.tool.arguments)}]  # fmt: skip
    else:
        part = {"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}
        output = [{"id": f"msg_{rid}", "type": "message", "status": status, "role": "assistant",
                   "content": [part]}]  # fmt: skip
    prompt = count_tokens(str(body.get("instructions") or "")) + sum(
        count_tokens(content_text(item.get("content", item.get("output")))) for item in items
    )
    usage = {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
             "output_tokens": reply.tokens, "output_tokens_details": {"reasoning_tokens": 0},
             "total_tokens": prompt + reply.tokens}  # fmt: skip
    response = {
        "id": f"resp_{rid}", "object": "response", "created_at": created, "status": status,
        "background": False, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"), "max_output_tokens": limit,
        "model": body["model"], "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "store": body.get("store", True), "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0), "truncation": body.get("truncation", "disabled"),
        "usage": usage, "user": body.get("user"), "metadata": body.get("metadata") or {},
        "completed_at": created if status == "completed" else None,
    }  # fmt: skip
    if body["model"] == FAILING_MODEL:
        error = {
            "code": "server_error",
            "message": "Simulated failure of the llmemo test upstream.",
        }
        response.update(status="failed", error=error, output=[], completed_at=None)
    return response


def openai_response_events(response: Mapping[str, object]) -> list[tuple[str, JSON]]:
    """The documented event sequence that streams `response`, word by word."""
    return [(event["type"], event) for event in response_events(response, pieces)]


def check_response(body: JSON) -> str | None:
    """Why a Responses API body is invalid, or None."""
    value = body.get("input")
    if isinstance(value, str) or (isinstance(value, list) and value):
        return None
    return "input: a string or a non-empty list of items is required"
