"""OpenAI chunked streams (`chat.completion.chunk`, legacy `text_completion`): assemble, replay.

Both end with `data: [DONE]` and carry token usage only when `stream_options.include_usage`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

JSON = dict[str, Any]


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
