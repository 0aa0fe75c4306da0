"""Server-sent events on the wire: split bytes into frames, parse them, encode them.

Also the error for an event stream that did not finish, which every stream shape shares.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from llmemo.errors import LLMemoError

_BLANK_LINE = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")
_LINE = re.compile(r"\r\n|\r|\n")
DONE = "[DONE]"


class IncompleteStreamError(LLMemoError):
    """A stream that ended before its terminal event (or with an error event): never stored."""


@dataclass(frozen=True)
class Frame:
    """One server-sent event: its raw bytes (for pass-through), name, data and parsed JSON."""

    raw: bytes
    event: str | None
    data: str
    json: Any = None


def parse_frame(raw: bytes) -> Frame | None:
    """The event in one frame (blank line included), or None for comments and empty frames."""
    event: str | None = None
    data: list[str] = []
    for line in _LINE.split(raw.decode("utf-8", "replace")):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value or None
    if not data and event is None:
        return None
    text = "\n".join(data)
    parsed: Any = None
    if text and text != DONE:
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = None
    return Frame(raw, event, text, parsed)


class SSEDecoder:
    """Splits bytes, as they arrive, into complete events; a partial event waits for more."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[Frame]:
        self._buffer += chunk
        frames = []
        start = 0
        for match in _BLANK_LINE.finditer(self._buffer):
            frame = parse_frame(self._buffer[start : match.end()])
            if frame is not None:
                frames.append(frame)
            start = match.end()
        self._buffer = self._buffer[start:]
        return frames

    @property
    def pending(self) -> bytes:
        """Bytes of an event not finished yet (dropped at the end of a stream, as the spec says)."""
        return self._buffer


def sse(data: Mapping[str, Any] | str, event: str | None = None) -> bytes:
    """Encode one event."""
    body = data.encode() if isinstance(data, str) else orjson.dumps(data)
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + body + b"\n\n"
