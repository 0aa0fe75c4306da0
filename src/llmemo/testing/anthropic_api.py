"""The test upstream's Anthropic shapes: a Messages API message and its event stream."""

from __future__ import annotations

import json
from typing import Any

from llmemo.testing.answers import (
    JSON,
    compose,
    content_text,
    count_tokens,
    last_user_text,
    pick_tool,
    pieces,
    request_key,
    stops,
)

_ANTHROPIC_STOP = {"stop": "end_turn", "stop_sequence": "stop_sequence", "length": "max_tokens",
                   "tool": "tool_use"}  # fmt: skip


def anthropic_message(body: JSON, rid: str) -> JSON:
    """A Messages API `message` for a validated request body."""
    messages: list[JSON] = body["messages"]
    last = messages[-1]
    content = last.get("content")
    parts: list[Any] = content if isinstance(content, list) else []
    is_prompt = last.get("role") == "user" and not any(
        isinstance(part, dict) and part.get("type") == "tool_result" for part in parts
    )
    tools = [(t["name"], t.get("input_schema")) for t in body.get("tools") or ()
             if isinstance(t, dict) and isinstance(t.get("name"), str)]  # fmt: skip
    choice: JSON = body["tool_choice"] if isinstance(body.get("tool_choice"), dict) else {}
    mode = {"any": "required", "tool": "required", "none": "none"}.get(
        str(choice.get("type")), "auto"
    )
    text = last_user_text(messages)
    tool = pick_tool(tools, text, mode, choice.get("name")) if is_prompt else None
    reply = compose(request_key(body), text, max_tokens=body["max_tokens"],
                    stops=stops(body.get("stop_sequences")), tool=tool)  # fmt: skip
    blocks: list[JSON] = [{"type": "text", "text": reply.text}] if reply.text else []
    if reply.tool:
        blocks = [{"type": "tool_use", "id": f"toolu_{reply.tool.id}", "name": reply.tool.name,
                    "input": reply.tool.arguments}]  # fmt: skip
    prompt = count_tokens(content_text(body.get("system"))) + sum(
        count_tokens(content_text(m.get("content"))) for m in messages
    )
    usage = {"input_tokens": prompt, "output_tokens": reply.tokens, "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": 0, "service_tier": "standard"}  # fmt: skip
    return {"id": rid, "type": "message", "role": "assistant", "model": body["model"], "content": blocks,
            "stop_reason": _ANTHROPIC_STOP[reply.finish], "stop_sequence": reply.stop_sequence,
            "usage": usage}  # fmt: skip


def anthropic_events(message: JSON) -> list[tuple[str, JSON]]:
    """The documented event sequence that streams `message`, as (event name, data) pairs."""
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**message["usage"], "output_tokens": 1}}  # fmt: skip
    events: list[tuple[str, JSON]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    ping = ("ping", {"type": "ping"})
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            opening, kind, field, whole = (
                {**block, "input": {}},
                "input_json_delta",
                "partial_json",
                json.dumps(block["input"]),
            )
        else:
            opening, kind, field, whole = (
                {"type": "text", "text": ""},
                "text_delta",
                "text",
                block["text"],
            )
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            )
        )
        if index == 0:
            events.append(ping)
        events += [("content_block_delta", {"type": "content_block_delta", "index": index,
                                            "delta": {"type": kind, field: piece}})
                   for piece in pieces(whole)]  # fmt: skip
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    if not message["content"]:
        events.append(ping)
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    usage = {"output_tokens": message["usage"]["output_tokens"]}
    events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events
