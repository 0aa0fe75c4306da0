"""Anthropic Messages streams (message_start ... message_stop): assemble a message, replay one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from llmemo.core.sse import IncompleteStreamError

JSON = dict[str, Any]


def assemble_message(events: Iterable[Mapping[str, Any]]) -> JSON:
    """The Anthropic `message` that a list of stream events (message_start ... ) adds up to."""
    message: JSON | None = None
    json_parts: dict[int, str] = {}
    for event in events:
        kind = event.get("type")
        if kind == "message_start":
            message = dict(event["message"])
            message["content"] = list(message.get("content") or ())
            message["usage"] = dict(message.get("usage") or {})
        elif message is None or kind in ("ping", "message_stop"):
            continue
        elif kind == "content_block_start":
            message["content"].append(dict(event["content_block"]))
        elif kind == "content_block_delta":
            index = event.get("index", 0)
            _apply_block_delta(
                message["content"][index], event.get("delta") or {}, json_parts, index
            )
        elif kind == "content_block_stop":
            _close_block(message["content"], event.get("index", 0), json_parts)
        elif kind == "message_delta":
            for name, value in (event.get("delta") or {}).items():
                message[name] = value
            usage = event.get("usage") or {}
            message["usage"].update({k: v for k, v in usage.items() if v is not None})
    if message is None:
        raise IncompleteStreamError("the stream has no message_start event")
    for index in list(json_parts):
        _close_block(message["content"], index, json_parts)
    return message


def _apply_block_delta(
    block: JSON, delta: Mapping[str, Any], json_parts: dict[int, str], index: int
) -> None:
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = block.get("text", "") + delta.get("text", "")
    elif kind == "input_json_delta":
        json_parts[index] = json_parts.get(index, "") + delta.get("partial_json", "")
    elif kind == "thinking_delta":
        block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
    elif kind == "signature_delta":
        block["signature"] = delta.get("signature", "")
    elif kind == "citations_delta":
        block.setdefault("citations", []).append(delta.get("citation"))


def _close_block(blocks: list[JSON], index: int, json_parts: dict[int, str]) -> None:
    text = json_parts.pop(index, None)
    if text:
        try:
            blocks[index]["input"] = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise IncompleteStreamError(f"tool input of block {index} is not JSON: {exc}") from None


def message_events(message: Mapping[str, Any]) -> list[JSON]:
    """The Anthropic event sequence (message_start ... message_stop) that streams a message."""
    usage = dict(message.get("usage") or {})
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 0},
    }
    events: list[JSON] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message.get("content") or ()):
        opening, deltas = _block_parts(block)
        events.append({"type": "content_block_start", "index": index, "content_block": opening})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    delta: JSON = {
        "stop_reason": message.get("stop_reason"),
        "stop_sequence": message.get("stop_sequence"),
    }
    for name in ("stop_details", "container"):
        if message.get(name) is not None:
            delta[name] = message[name]
    events.append({"type": "message_delta", "delta": delta, "usage": usage})
    events.append({"type": "message_stop"})
    return events


def _block_parts(block: Mapping[str, Any]) -> tuple[JSON, list[JSON]]:
    """A content block as its opening (content_block_start) and its deltas."""
    kind = block.get("type")
    if kind == "text":
        deltas: list[JSON] = []
        if block.get("text"):
            deltas.append({"type": "text_delta", "text": block["text"]})
        deltas += [{"type": "citations_delta", "citation": c} for c in block.get("citations") or ()]
        rest = {k: v for k, v in block.items() if k not in ("text", "citations")}
        return {**rest, "text": ""}, deltas
    if kind in ("tool_use", "server_tool_use", "mcp_tool_use"):
        arguments = block.get("input") or {}
        deltas = [{"type": "input_json_delta", "partial_json": orjson.dumps(arguments).decode()}]
        return {**block, "input": {}}, deltas if arguments else []
    if kind == "thinking":
        deltas = [{"type": "thinking_delta", "thinking": block.get("thinking", "")}]
        if block.get("signature"):
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        return {**block, "thinking": "", "signature": ""}, deltas
    return dict(block), []
