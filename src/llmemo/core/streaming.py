"""Streams as pure functions: decode SSE, assemble a stream into one response, replay a response.

Four shapes: OpenAI `chat` (chat.completion.chunk), OpenAI legacy `completion` (text_completion),
OpenAI Responses API `response` (response.created ... response.completed) and Anthropic `message`
(message_start ... message_stop). A stream is stored as the one response it
adds up to, so a stream request can be answered from a non-stream entry and the other way round.
No I/O here: the service and the SDK wrappers feed bytes or chunk dicts in and take results out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from llmemo.errors import LLMemoError

Shape = Literal["chat", "completion", "message", "response"]
JSON = dict[str, Any]

_BLANK_LINE = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")
_LINE = re.compile(r"\r\n|\r|\n")
DONE = "[DONE]"
# Shapes whose streams carry token usage only when asked (`stream_options.include_usage`).
USAGE_ON_REQUEST: frozenset[Shape] = frozenset({"chat", "completion"})
# The events that end a stream, for the shapes that do not end with `data: [DONE]`.
TERMINAL: Mapping[Shape, frozenset[str]] = {
    "message": frozenset({"message_stop"}),
    "response": frozenset({"response.completed", "response.incomplete", "response.failed"}),
}


class IncompleteStreamError(LLMemoError):
    """A stream that ended before its terminal event (or with an error event): never stored."""


# -- SSE --------------------------------------------------------------------------------------


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


# -- stream -> response -----------------------------------------------------------------------


def _first(target: JSON, source: Mapping[str, Any], names: Iterable[str]) -> None:
    for name in names:
        if target.get(name) is None and source.get(name) is not None:
            target[name] = source[name]


def _merge_delta(message: JSON, delta: Mapping[str, Any]) -> None:
    """Add one chat delta to a message: strings are appended, tool calls merged by index."""
    for name, value in delta.items():
        if name == "tool_calls" and isinstance(value, list):
            calls: list[JSON] = message.setdefault("tool_calls", [])
            for part in value:
                _merge_tool_call(calls, part)
        elif name == "function_call" and isinstance(value, Mapping):
            _append_fields(message.setdefault("function_call", {}), value)
        elif isinstance(value, str) and name != "role":
            message[name] = (message.get(name) or "") + value
        elif value is not None:
            message[name] = value


def _merge_tool_call(calls: list[JSON], part: Mapping[str, Any]) -> None:
    index = part.get("index", len(calls))
    call = next((c for c in calls if c["index"] == index), None)
    if call is None:
        call = {"index": index, "function": {"name": "", "arguments": ""}}
        calls.append(call)
    for name, value in part.items():
        if name == "function" and isinstance(value, Mapping):
            _append_fields(call["function"], value)
        elif name != "index" and value is not None:
            call[name] = value


def _append_fields(target: JSON, part: Mapping[str, Any]) -> None:
    for name, value in part.items():
        if isinstance(value, str):
            target[name] = (target.get(name) or "") + value
        elif value is not None:
            target[name] = value


def _merge_logprobs(target: JSON, logprobs: Any) -> None:
    if not isinstance(logprobs, Mapping):
        return
    for name, value in logprobs.items():
        if isinstance(value, list):
            target.setdefault(name, []).extend(value)
        elif value is not None and name not in target:
            target[name] = value


_HEAD = ("id", "created", "model", "system_fingerprint", "service_tier")


def assemble_chat(chunks: Iterable[Mapping[str, Any]]) -> JSON:
    """The `chat.completion` that a list of `chat.completion.chunk`s streams."""
    head: JSON = {}
    usage: Any = None
    choices: dict[int, JSON] = {}
    for chunk in chunks:
        _first(head, chunk, _HEAD)
        if chunk.get("usage") is not None:
            usage = chunk["usage"]
        for part in chunk.get("choices") or ():
            choice = choices.setdefault(
                part.get("index", 0),
                {"message": {"role": "assistant", "content": None, "refusal": None}},
            )
            if isinstance(part.get("delta"), Mapping):
                _merge_delta(choice["message"], part["delta"])
            if part.get("logprobs") is not None:
                _merge_logprobs(choice.setdefault("logprobs", {}), part["logprobs"])
            if part.get("finish_reason") is not None:
                choice["finish_reason"] = part["finish_reason"]
    out: JSON = {
        "id": head.get("id"),
        "object": "chat.completion",
        "created": head.get("created"),
        "model": head.get("model"),
        "choices": [],
    }
    for index in sorted(choices):
        choice = choices[index]
        message = choice["message"]
        for call in message.get("tool_calls", ()):
            call.setdefault("type", "function")
        message.get("tool_calls", []).sort(key=lambda c: c["index"])
        for call in message.get("tool_calls", ()):
            del call["index"]
        out["choices"].append(
            {
                "index": index,
                "message": message,
                "logprobs": choice.get("logprobs"),
                "finish_reason": choice.get("finish_reason"),
            }
        )
    if usage is not None:
        out["usage"] = usage
    for name in ("system_fingerprint", "service_tier"):
        if name in head:
            out[name] = head[name]
    return out


def assemble_completion(chunks: Iterable[Mapping[str, Any]]) -> JSON:
    """The legacy `text_completion` that a list of streamed completion chunks adds up to."""
    head: JSON = {}
    usage: Any = None
    choices: dict[int, JSON] = {}
    for chunk in chunks:
        _first(head, chunk, _HEAD)
        if chunk.get("usage") is not None:
            usage = chunk["usage"]
        for part in chunk.get("choices") or ():
            choice = choices.setdefault(part.get("index", 0), {"text": ""})
            choice["text"] += part.get("text") or ""
            if part.get("logprobs") is not None:
                _merge_logprobs(choice.setdefault("logprobs", {}), part["logprobs"])
            if part.get("finish_reason") is not None:
                choice["finish_reason"] = part["finish_reason"]
    out: JSON = {
        "id": head.get("id"),
        "object": "text_completion",
        "created": head.get("created"),
        "model": head.get("model"),
        "choices": [
            {
                "text": c["text"],
                "index": i,
                "logprobs": c.get("logprobs"),
                "finish_reason": c.get("finish_reason"),
            }
            for i, c in sorted(choices.items())
        ],
    }
    if usage is not None:
        out["usage"] = usage
    if "system_fingerprint" in head:
        out["system_fingerprint"] = head["system_fingerprint"]
    return out


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


def assemble_response(events: Iterable[Mapping[str, Any]]) -> JSON:
    """The Responses API `response` a stream adds up to: its terminal event's, with the output
    items the stream finished when that response omits them."""
    final: JSON | None = None
    items: dict[int, Any] = {}
    for event in events:
        kind = event.get("type")
        if kind == "response.output_item.done":
            items[event.get("output_index", len(items))] = event.get("item")
        elif kind in TERMINAL["response"] and isinstance(event.get("response"), Mapping):
            final = dict(event["response"])
    if final is None:
        raise IncompleteStreamError("the stream has no response.completed event")
    if not final.get("output") and items:
        final["output"] = [items[index] for index in sorted(items)]
    return final


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


# -- response -> stream -----------------------------------------------------------------------


def chat_chunks(completion: Mapping[str, Any], include_usage: bool = False) -> list[JSON]:
    """`chat.completion.chunk`s that stream a `chat.completion` (whole fields, few chunks)."""
    head: JSON = {
        "id": completion.get("id"),
        "object": "chat.completion.chunk",
        "created": completion.get("created"),
        "model": completion.get("model"),
    }
    for name in ("system_fingerprint", "service_tier"):
        if completion.get(name) is not None:
            head[name] = completion[name]
    tail: JSON = {"usage": None} if include_usage else {}

    def chunk(index: int, delta: JSON, finish: Any = None, logprobs: Any = None) -> JSON:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return {**head, "choices": [choice], **tail}

    chunks = []
    for choice in completion.get("choices") or ():
        index = choice.get("index", 0)
        message: Mapping[str, Any] = choice.get("message") or {}
        content, calls = message.get("content"), message.get("tool_calls")
        chunks.append(
            chunk(
                index,
                {
                    "role": message.get("role") or "assistant",
                    "content": None if content is None and calls else "",
                    "refusal": None,
                },
            )
        )
        if content:
            chunks.append(chunk(index, {"content": content}, logprobs=_chunk_logprobs(choice)))
        if message.get("refusal"):
            chunks.append(chunk(index, {"refusal": message["refusal"]}))
        if calls:
            parts = [{"index": i, **call} for i, call in enumerate(calls)]
            chunks.append(chunk(index, {"tool_calls": parts}))
        if message.get("function_call"):
            chunks.append(chunk(index, {"function_call": message["function_call"]}))
        extra = {k: v for k, v in message.items() if k not in _CHAT_MESSAGE_FIELDS and v}
        if extra:
            chunks.append(chunk(index, extra))
        chunks.append(chunk(index, {}, choice.get("finish_reason")))
    if include_usage and completion.get("usage") is not None:
        chunks.append({**head, "choices": [], "usage": completion["usage"]})
    return chunks


_CHAT_MESSAGE_FIELDS = frozenset({"role", "content", "refusal", "tool_calls", "function_call"})


def _chunk_logprobs(choice: Mapping[str, Any]) -> Any:
    logprobs = choice.get("logprobs")
    return dict(logprobs) if isinstance(logprobs, Mapping) else None


def completion_chunks(completion: Mapping[str, Any], include_usage: bool = False) -> list[JSON]:
    """Streamed chunks of a legacy `text_completion`: the text, then the finish reason."""
    head: JSON = {name: completion.get(name) for name in ("id", "created", "model")}
    head["object"] = "text_completion"
    if completion.get("system_fingerprint") is not None:
        head["system_fingerprint"] = completion["system_fingerprint"]
    chunks = []
    for choice in completion.get("choices") or ():
        step = {"index": choice.get("index", 0), "logprobs": None, "finish_reason": None}
        if choice.get("text"):
            text = {**step, "text": choice["text"], "logprobs": choice.get("logprobs")}
            chunks.append({**head, "choices": [text]})
        chunks.append(
            {
                **head,
                "choices": [{**step, "text": "", "finish_reason": choice.get("finish_reason")}],
            }
        )
    if include_usage and completion.get("usage") is not None:
        chunks.append({**head, "choices": [], "usage": completion["usage"]})
    return chunks


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


def _whole(text: str) -> list[str]:
    return [text] if text else []


_TERMINAL_OF_STATUS = {"incomplete": "response.incomplete", "failed": "response.failed"}


def response_events(
    response: Mapping[str, Any], split: Callable[[str], list[str]] = _whole
) -> list[JSON]:
    """The Responses API events (response.created ... response.completed) that stream `response`;
    `split` cuts text and arguments into deltas (one delta each by default)."""
    opening = {**response, "status": "in_progress", "output": [], "usage": None, "error": None,
               "incomplete_details": None}  # fmt: skip
    if "completed_at" in response:
        opening["completed_at"] = None
    events: list[JSON] = [
        {"type": "response.created", "response": opening},
        {"type": "response.in_progress", "response": opening},
    ]
    for index, item in enumerate(response.get("output") or ()):
        events += _item_events(index, item, split)
    terminal = _TERMINAL_OF_STATUS.get(str(response.get("status")), "response.completed")
    events.append({"type": terminal, "response": dict(response)})
    return [{**event, "sequence_number": number} for number, event in enumerate(events)]


def _item_events(
    index: int, item: Mapping[str, Any], split: Callable[[str], list[str]]
) -> list[JSON]:
    """One output item's events: added, its content or arguments as deltas, done."""
    kind, where = item.get("type"), {"item_id": item.get("id"), "output_index": index}
    opening: Mapping[str, Any] = item
    events: list[JSON] = []
    if kind == "message":
        opening = {**item, "status": "in_progress", "content": []}
        for number, part in enumerate(item.get("content") or ()):
            events += _part_events({**where, "content_index": number}, part, split)
    elif kind == "function_call":
        opening = {**item, "status": "in_progress", "arguments": ""}
        arguments = str(item.get("arguments") or "")
        events += [{"type": "response.function_call_arguments.delta", **where, "delta": piece}
                   for piece in split(arguments)]  # fmt: skip
        events.append(
            {"type": "response.function_call_arguments.done", **where, "arguments": arguments}
        )
    added = {"type": "response.output_item.added", "output_index": index, "item": opening}
    done = {"type": "response.output_item.done", "output_index": index, "item": dict(item)}
    return [added, *events, done]


def _part_events(
    where: Mapping[str, Any], part: Mapping[str, Any], split: Callable[[str], list[str]]
) -> list[JSON]:
    """A message content part: added (empty), its text or refusal as deltas, done (whole)."""
    kind = part.get("type")
    field = {"output_text": "text", "refusal": "refusal"}.get(str(kind))
    opening: JSON = dict(part)
    deltas: list[JSON] = []
    if field == "text":
        opening.update(text="", annotations=[], **({"logprobs": []} if "logprobs" in part else {}))
        text = str(part.get("text") or "")
        deltas = [{"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
                  for piece in split(text)]  # fmt: skip
        deltas.append({"type": "response.output_text.done", **where, "text": text, "logprobs": []})
    elif field == "refusal":
        opening["refusal"] = ""
        refusal = str(part.get("refusal") or "")
        deltas = [{"type": "response.refusal.delta", **where, "delta": piece}
                  for piece in split(refusal)]  # fmt: skip
        deltas.append({"type": "response.refusal.done", **where, "refusal": refusal})
    return [
        {"type": "response.content_part.added", **where, "part": opening},
        *deltas,
        {"type": "response.content_part.done", **where, "part": dict(part)},
    ]


def replay(shape: Shape, response: Mapping[str, Any], include_usage: bool = False) -> bytes:
    """A complete SSE body that streams `response` in its provider's event format."""
    if shape == "message":
        return b"".join(sse(event, event["type"]) for event in message_events(response))
    if shape == "response":
        return b"".join(sse(event, event["type"]) for event in response_events(response))
    chunks = (chat_chunks if shape == "chat" else completion_chunks)(response, include_usage)
    return b"".join(sse(chunk) for chunk in chunks) + sse(DONE)
