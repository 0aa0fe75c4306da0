"""Streams as pure functions: follow an SSE stream to the one response it adds up to, replay one.

Four shapes: OpenAI `chat` (chat.completion.chunk), OpenAI legacy `completion` (text_completion),
OpenAI Responses API `response` (response.created ... response.completed) and Anthropic `message`
(message_start ... message_stop). A stream is stored as the one response it
adds up to, so a stream request can be answered from a non-stream entry and the other way round.
No I/O here: the service and the SDK wrappers feed bytes or chunk dicts in and take results out.
The wire format is in `sse`, each shape's assembly and replay in `chat_stream`,
`anthropic_stream` and `responses_stream`; this module picks by shape and re-exports them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from llmemo.core.anthropic_stream import assemble_message, message_events
from llmemo.core.chat_stream import (
    assemble_chat,
    assemble_completion,
    chat_chunks,
    completion_chunks,
)
from llmemo.core.responses_stream import TERMINAL_EVENTS, assemble_response, response_events
from llmemo.core.sse import DONE, Frame, IncompleteStreamError, SSEDecoder, parse_frame, sse

__all__ = [
    "ASSEMBLERS",
    "DONE",
    "JSON",
    "TERMINAL",
    "USAGE_ON_REQUEST",
    "Frame",
    "IncompleteStreamError",
    "SSEDecoder",
    "Shape",
    "StreamCollector",
    "assemble_chat",
    "assemble_completion",
    "assemble_message",
    "assemble_response",
    "chat_chunks",
    "completion_chunks",
    "is_usage_chunk",
    "message_events",
    "parse_frame",
    "replay",
    "response_events",
    "sse",
]

Shape = Literal["chat", "completion", "message", "response"]
JSON = dict[str, Any]

# Shapes whose streams carry token usage only when asked (`stream_options.include_usage`).
USAGE_ON_REQUEST: frozenset[Shape] = frozenset({"chat", "completion"})
# The events that end a stream, for the shapes that do not end with `data: [DONE]`.
TERMINAL: Mapping[Shape, frozenset[str]] = {
    "message": frozenset({"message_stop"}),
    "response": TERMINAL_EVENTS,
}


ASSEMBLERS: Mapping[Shape, Callable[[Iterable[Mapping[str, Any]]], JSON]] = {
    "chat": assemble_chat,
    "completion": assemble_completion,
    "message": assemble_message,
    "response": assemble_response,
}


class StreamCollector:
    """Follows a provider's SSE stream as it passes through, and builds the response it streams.

    `feed` returns the complete events of each chunk (raw bytes kept for pass-through);
    `response()` is the assembled response, and raises IncompleteStreamError unless the stream
    reached its terminal event (`data: [DONE]`, `message_stop`, `response.completed` and the
    Responses API's other ends) without an error event.
    """

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.finished = False
        self.error: Any = None
        self._decoder = SSEDecoder()
        self._items: list[Mapping[str, Any]] = []

    def feed(self, chunk: bytes) -> list[Frame]:
        frames = self._decoder.feed(chunk)
        for frame in frames:
            self._see(frame)
        return frames

    def _see(self, frame: Frame) -> None:
        data = frame.json
        if frame.event == "error" or (isinstance(data, Mapping) and data.get("type") == "error"):
            self.error = data if data is not None else frame.data
        elif self.shape in _CHUNKED and isinstance(data, Mapping) and "error" in data:
            self.error = data
        elif frame.data == DONE and self.shape in _CHUNKED:
            self.finished = True
        elif isinstance(data, Mapping):
            self._items.append(data)
            if data.get("type") in TERMINAL.get(self.shape, ()):
                self.finished = True

    @property
    def pending(self) -> bytes:
        """Bytes of an unfinished event (a pass-through proxy forwards them at the end)."""
        return self._decoder.pending

    def response(self) -> JSON:
        if self.error is not None:
            raise IncompleteStreamError(f"the stream reported an error: {self.error!r:.200}")
        if not self.finished:
            raise IncompleteStreamError("the stream ended before its terminal event")
        return ASSEMBLERS[self.shape](self._items)


_CHUNKED: frozenset[Shape] = frozenset({"chat", "completion"})  # `data: {chunk}` ... `[DONE]`


def is_usage_chunk(data: Any) -> bool:
    """An OpenAI chunk that only carries usage (sent when `stream_options.include_usage`)."""
    return isinstance(data, Mapping) and data.get("choices") == [] and data.get("usage") is not None


def replay(shape: Shape, response: Mapping[str, Any], include_usage: bool = False) -> bytes:
    """A complete SSE body that streams `response` in its provider's event format."""
    if shape == "message":
        return b"".join(sse(event, event["type"]) for event in message_events(response))
    if shape == "response":
        return b"".join(sse(event, event["type"]) for event in response_events(response))
    chunks = (chat_chunks if shape == "chat" else completion_chunks)(response, include_usage)
    return b"".join(sse(chunk) for chunk in chunks) + sse(DONE)
