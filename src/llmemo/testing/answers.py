"""Answers of the test upstream, provider-neutral: a pure function of the request.

The last user text drives every case a cache must handle: `max_tokens` truncation, a tool call
(tools given and the text says "use a tool"), an empty answer ("empty answer"). The provider
modules shape a `Reply` into their own JSON.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]
_PIECE = re.compile(r"\s*\S+|\s+\Z")
# Parameters that do not change the answer text (length limits cut the same answer short).
_IGNORED = frozenset({"stream", "stream_options", "user", "metadata", "store", "service_tier",
                      "max_tokens", "max_completion_tokens", "max_output_tokens", "stop",
                      "stop_sequences", "n"})  # fmt: skip
_FILL = {"integer": "1", "number": "1.5", "boolean": "true", "array": "[]", "object": "{}"}


def pieces(text: str) -> list[str]:
    """The streamed 'tokens' of a text: words with their leading whitespace; they join back exactly."""
    return _PIECE.findall(text)


def count_tokens(text: str) -> int:
    return len(text.split())


def digest(value: object) -> str:
    raw = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: JSON


@dataclass(frozen=True)
class Reply:
    """One answer, provider-neutral; finish is `stop`, `stop_sequence`, `length` or `tool`."""

    text: str = ""
    finish: str = "stop"
    tool: ToolCall | None = None
    stop_sequence: str | None = None

    @property
    def tokens(self) -> int:
        return (
            count_tokens(json.dumps(self.tool.arguments)) if self.tool else count_tokens(self.text)
        )


def tool_arguments(schema: object, text: str) -> JSON:
    """Arguments for a JSON-schema'd tool: the user text for strings, a fixed value otherwise."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict):
        return {}
    args: JSON = {}
    for name, spec in props.items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        args[name] = json.loads(_FILL[kind]) if isinstance(kind, str) and kind in _FILL else text
    return args


def pick_tool(
    tools: Sequence[tuple[str, object]], text: str, mode: str, name: str | None
) -> tuple[str, object] | None:
    """The tool to call (mode `auto` needs "use a tool" in the text, `required` forces one)."""
    if not tools or mode == "none" or (mode == "auto" and "use a tool" not in text.lower()):
        return None
    return next((tool for tool in tools if tool[0] == name), tools[0])


def compose(
    key: str,
    text: str,
    *,
    max_tokens: int | None = None,
    stops: Sequence[str] = (),
    tool: tuple[str, object] | None = None,
) -> Reply:
    """The answer to `text` for the request hashed to `key`, cut by stop sequences and max_tokens."""
    if tool is not None:
        return Reply(finish="tool", tool=ToolCall(key[:24], tool[0], tool_arguments(tool[1], text)))
    if "empty answer" in text.lower():
        return Reply()
    answer = " ".join(["Answer to:", *text.split(), f"[{key[:8]}]"])
    finish, stop_sequence = "stop", None
    hits = [(answer.find(stop), stop) for stop in stops if stop and stop in answer]
    if hits:
        at, stop_sequence = min(hits)
        answer, finish = answer[:at], "stop_sequence"
    words = [piece for piece in pieces(answer) if piece.strip()]
    if max_tokens is not None and len(words) > max_tokens:
        answer, finish, stop_sequence = "".join(words[:max_tokens]), "length", None
    return Reply(answer, finish, None, stop_sequence)


_REQUESTS = re.compile(r"Request A: (?P<a>.*)\nRequest B: (?P<b>.*)", re.S)


def judge(text: str) -> str:
    """What a `judge*` model answers llmemo's verifier (`llmemo.core.verify`): "yes" when the two
    requests have the same numbers and share at least half their words, else "no"; a text that
    is not a verifier question gets "maybe". A fixed rule, for tests, not a real judgement."""
    found = _REQUESTS.search(text)
    if found is None:
        return "maybe"
    a, b = (set(re.findall(r"\w+", found[name].lower())) for name in ("a", "b"))
    numbers = {w for w in a | b if w.isdigit()}
    same = numbers <= (a & b) and len(a & b) * 2 >= len(a | b)
    return "yes" if same else "no"


def content_text(content: object) -> str:
    """The text of a message content: a string, or the text (and tool result) parts of a list."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content if isinstance(content, list) else ():
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(part["text"])
        elif isinstance(part, dict) and part.get("type") == "tool_result":
            parts.append(content_text(part.get("content")))
    return " ".join(part for part in parts if part)


def last_user_text(messages: list[JSON]) -> str:
    return next(
        (content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )


def request_key(body: JSON, index: int = 0) -> str:
    key = digest({name: value for name, value in body.items() if name not in _IGNORED})
    return key if index == 0 else digest([key, index])


def stops(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [stop for stop in value if isinstance(stop, str)] if isinstance(value, list) else []


def as_texts(value: object) -> list[str] | None:
    """A string, strings, token ids or lists of token ids as texts; None for any other shape."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(item, int) for item in value):
            return [json.dumps(value)]
        if all(isinstance(item, str) for item in value):
            return list(value)
        if all(isinstance(item, list) for item in value):
            return [json.dumps(item) for item in value]
    return None
