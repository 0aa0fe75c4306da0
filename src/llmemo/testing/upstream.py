"""A local OpenAI-, Anthropic- and Ollama-compatible upstream with deterministic answers.

Tests, benchmarks and offline demos point the official SDKs at it instead of the providers.
The request drives every case a cache must handle: `max_tokens` truncation, a tool call (tools
given and the last user text says "use a tool"), an empty answer ("empty answer"), provider-shaped
errors (model `fail-429`), latency (model `slow-250`) and a stream that breaks mid-way (model
`fail-midstream`). Answer text is a pure function of the request; ids and `created` are fresh on
every call, so a test can tell a cache hit (same id) from a second upstream call.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import hashlib
import json
import logging
import math
import random
import re
import struct
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from llmemo.errors import ConfigError, require

require("starlette", "server")

from starlette.applications import Starlette  # noqa: E402
from starlette.datastructures import Headers  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response, StreamingResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

JSON = dict[str, Any]
MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo-instruct", "text-embedding-3-small",
          "claude-sonnet-4-5", "claude-haiku-4-5")  # fmt: skip
FINGERPRINT = "fp_llmemo_test"
_PIECE = re.compile(r"\s*\S+|\s+\Z")
_WORD = re.compile(r"\w+")
# Parameters that do not change the answer text (length limits cut the same answer short).
_IGNORED = frozenset({"stream", "stream_options", "user", "metadata", "store", "service_tier",
                      "max_tokens", "max_completion_tokens", "stop", "stop_sequences", "n"})  # fmt: skip
_FILL = {"integer": "1", "number": "1.5", "boolean": "true", "array": "[]", "object": "{}"}
_OPENAI_FINISH = {"stop": "stop", "stop_sequence": "stop", "length": "length", "tool": "tool_calls"}
_ANTHROPIC_STOP = {"stop": "end_turn", "stop_sequence": "stop_sequence", "length": "max_tokens",
                   "tool": "tool_use"}  # fmt: skip


def pieces(text: str) -> list[str]:
    """The streamed 'tokens' of a text: words with their leading whitespace; they join back exactly."""
    return _PIECE.findall(text)


def count_tokens(text: str) -> int:
    return len(text.split())


def digest(value: object) -> str:
    raw = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def credential_hash(credential: str) -> str:
    """How the stats name a credential (the API key, without `Bearer `): never the secret itself."""
    return hashlib.sha256(credential.encode()).hexdigest()[:16]


# -- answers ------------------------------------------------------------------------------------


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


def _last_user_text(messages: list[JSON]) -> str:
    return next(
        (content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )


def _request_key(body: JSON, index: int = 0) -> str:
    key = digest({name: value for name, value in body.items() if name not in _IGNORED})
    return key if index == 0 else digest([key, index])


def _stops(value: object) -> list[str]:
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


# -- OpenAI -------------------------------------------------------------------------------------


def _openai_usage(prompt: int, completion: int) -> JSON:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def openai_chat(body: JSON, rid: str, created: int) -> JSON:
    """A `chat.completion` for a validated request body."""
    messages: list[JSON] = body["messages"]
    text = _last_user_text(messages)
    tools = [(t["function"]["name"], t["function"].get("parameters")) for t in body.get("tools") or ()
             if isinstance(t, dict) and isinstance(t.get("function"), dict)]  # fmt: skip
    choice = body.get("tool_choice") or "auto"
    mode, name = (
        ("required", choice.get("function", {}).get("name"))
        if isinstance(choice, dict)
        else (str(choice), None)
    )
    tool = pick_tool(tools, text, mode, name) if messages[-1].get("role") == "user" else None
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    replies = [compose(_request_key(body, i), text, max_tokens=limit, stops=_stops(body.get("stop")), tool=tool)
               for i in range(body.get("n") or 1)]  # fmt: skip
    choices = []
    for index, reply in enumerate(replies):
        message: JSON = {
            "role": "assistant",
            "content": None if reply.tool else reply.text,
            "refusal": None,
        }
        if reply.tool:
            function = {"name": reply.tool.name, "arguments": json.dumps(reply.tool.arguments)}
            message["tool_calls"] = [
                {"id": f"call_{reply.tool.id}", "type": "function", "function": function}
            ]
        choices.append({"index": index, "message": message, "logprobs": None,
                        "finish_reason": _OPENAI_FINISH[reply.finish]})  # fmt: skip
    prompt = sum(count_tokens(content_text(m.get("content"))) for m in messages)
    return {"id": rid, "object": "chat.completion", "created": created, "model": body["model"],
            "choices": choices, "usage": _openai_usage(prompt, sum(r.tokens for r in replies)),
            "system_fingerprint": FINGERPRINT}  # fmt: skip


def openai_chat_chunks(completion: JSON, include_usage: bool) -> list[JSON]:
    """The `chat.completion.chunk`s that stream `completion` (content joins back exactly)."""
    head = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
            "model": completion["model"], "system_fingerprint": FINGERPRINT}  # fmt: skip
    tail: JSON = {"usage": None} if include_usage else {}

    def chunk(index: int, delta: JSON, finish: str | None = None) -> JSON:
        return {
            **head,
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
            **tail,
        }

    chunks = []
    for choice in completion["choices"]:
        index, message = choice["index"], choice["message"]
        if message.get("tool_calls"):
            call = message["tool_calls"][0]
            opening = {"index": 0, "id": call["id"], "type": "function",
                       "function": {"name": call["function"]["name"], "arguments": ""}}  # fmt: skip
            chunks.append(
                chunk(index, {"role": "assistant", "content": None, "tool_calls": [opening]})
            )
            chunks += [chunk(index, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                       for piece in pieces(call["function"]["arguments"])]  # fmt: skip
        else:
            chunks.append(chunk(index, {"role": "assistant", "content": "", "refusal": None}))
            chunks += [chunk(index, {"content": piece}) for piece in pieces(message["content"])]
        chunks.append(chunk(index, {}, choice["finish_reason"]))
    if include_usage:
        chunks.append({**head, "choices": [], "usage": completion["usage"]})
    return chunks


def openai_completion(body: JSON, prompts: list[str], rid: str, created: int) -> JSON:
    """A legacy `text_completion`: n choices per prompt, `max_tokens` 16 unless given."""
    limit, n, choices, used = body.get("max_tokens", 16), body.get("n") or 1, [], 0
    for number, prompt in enumerate(prompts):
        for copy in range(n):
            reply = compose(_request_key({**body, "prompt": prompt}, copy), prompt,
                            max_tokens=limit, stops=_stops(body.get("stop")))  # fmt: skip
            used += reply.tokens
            text = prompt + reply.text if body.get("echo") else reply.text
            choices.append({"text": text, "index": number * n + copy, "logprobs": None,
                            "finish_reason": _OPENAI_FINISH[reply.finish]})  # fmt: skip
    prompt_tokens = sum(count_tokens(prompt) for prompt in prompts)
    return {"id": rid, "object": "text_completion", "created": created, "model": body["model"],
            "choices": choices, "usage": _openai_usage(prompt_tokens, used),
            "system_fingerprint": FINGERPRINT}  # fmt: skip


def openai_completion_chunks(completion: JSON, include_usage: bool) -> list[JSON]:
    head = {
        name: completion[name]
        for name in ("id", "object", "created", "model", "system_fingerprint")
    }
    chunks = []
    for choice in completion["choices"]:
        step = {"index": choice["index"], "logprobs": None, "finish_reason": None}
        chunks += [
            {**head, "choices": [{**step, "text": piece}]} for piece in pieces(choice["text"])
        ]
        chunks.append(
            {**head, "choices": [{**step, "text": "", "finish_reason": choice["finish_reason"]}]}
        )
    if include_usage:
        chunks.append({**head, "choices": [], "usage": completion["usage"]})
    return chunks


# -- Anthropic ----------------------------------------------------------------------------------


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
    text = _last_user_text(messages)
    tool = pick_tool(tools, text, mode, choice.get("name")) if is_prompt else None
    reply = compose(_request_key(body), text, max_tokens=body["max_tokens"],
                    stops=_stops(body.get("stop_sequences")), tool=tool)  # fmt: skip
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


# -- embeddings ---------------------------------------------------------------------------------


def _gaussian(seed: str, dim: int) -> list[float]:
    rng = random.Random(hashlib.sha256(seed.encode()).digest())
    return [rng.gauss(0.0, 1.0) for _ in range(dim)]


_word_vector = functools.lru_cache(maxsize=4096)(_gaussian)


def _unit(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def embed(text: str, model: str, dim: int) -> list[float]:
    """A unit vector: hashed words plus a little of the whole text (shared words -> close)."""
    total = [0.0] * dim
    for word in _WORD.findall(text.lower()):
        total = [
            x + y for x, y in zip(total, _word_vector(f"{model}\0w\0{word}", dim), strict=True)
        ]
    whole = _unit(_gaussian(f"{model}\0t\0{text}", dim))
    return _unit([x + 0.2 * y for x, y in zip(_unit(total), whole, strict=True)])


def openai_embeddings(body: JSON, texts: list[str], dim: int) -> JSON:
    data = []
    for index, text in enumerate(texts):
        vector: Any = embed(text, body["model"], dim)
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(count_tokens(text) for text in texts)
    return {"object": "list", "data": data, "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}  # fmt: skip


# -- errors -------------------------------------------------------------------------------------

_ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                     403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                     429: "rate_limit_error", 504: "timeout_error", 529: "overloaded_error"}  # fmt: skip
_OPENAI_ERRORS = {401: ("invalid_request_error", "invalid_api_key"),
                  404: ("invalid_request_error", "model_not_found"),
                  429: ("requests", "rate_limit_exceeded")}  # fmt: skip


def openai_error(status: int, message: str, rid: str) -> JSON:
    kind, code = _OPENAI_ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def anthropic_error(status: int, message: str, rid: str) -> JSON:
    kind = _ANTHROPIC_ERRORS.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": rid}


def ollama_error(status: int, message: str, rid: str) -> JSON:
    return {"error": message}


_ERROR_BODIES: Mapping[str, Callable[[int, str, str], JSON]] = {
    "openai": openai_error, "anthropic": anthropic_error, "ollama": ollama_error,
}  # fmt: skip


def failure_status(model: str) -> int | None:
    """The HTTP status a `fail-<code>` model answers with (4xx/5xx), else None."""
    found = re.fullmatch(r"fail-(\d{3})", model)
    return int(found[1]) if found and 400 <= int(found[1]) < 600 else None


def model_delay(model: str) -> float:
    """Seconds a `slow-<ms>` model waits before answering."""
    found = re.fullmatch(r"slow-(\d+)", model)
    return int(found[1]) / 1000 if found else 0.0


class DroppedStream(Exception):
    """Raised inside the app to cut a `fail-midstream` response; the client sees a broken body."""


def _is_drop(exc: BaseException | None) -> bool:
    if isinstance(exc, DroppedStream):
        return True
    return any(_is_drop(inner) for inner in getattr(exc, "exceptions", ()))


class _HideDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and _is_drop(record.exc_info[1]))


def hide_dropped_streams() -> None:
    """Keep uvicorn from logging the deliberate `fail-midstream` drops as server errors."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDrops) for f in logger.filters):
        logger.addFilter(_HideDrops())


# -- stats --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpstreamStats:
    """Calls served, by route and model, and the credentials seen (hashed), since the last reset."""

    calls: Mapping[str, Mapping[str, int]]
    credentials: Mapping[str, Mapping[str, int]]

    @property
    def total(self) -> int:
        return sum(sum(models.values()) for models in self.calls.values())

    def count(self, route: str | None = None, model: str | None = None) -> int:
        """Calls to `route` (e.g. `/v1/chat/completions`) with `model`; None matches any."""
        return sum(n for r, models in self.calls.items() if route in (None, r)
                   for m, n in models.items() if model in (None, m))  # fmt: skip

    def saw(self, credential: str, header: str | None = None) -> bool:
        """Whether a call carried this API key (in `header`, `authorization` or `x-api-key`)."""
        return any(credential_hash(credential) in seen for name, seen in self.credentials.items()
                   if header in (None, name))  # fmt: skip

    def as_json(self) -> JSON:
        return {"total": self.total, "calls": self.calls, "credentials": self.credentials}


class CallLog:
    """The mutable counters behind `UpstreamStats`; safe to read from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, dict[str, int]] = {}
        self._credentials: dict[str, dict[str, int]] = {}

    def record(self, route: str, model: str, credentials: Mapping[str, str]) -> None:
        with self._lock:
            models = self._calls.setdefault(route, {})
            models[model] = models.get(model, 0) + 1
            for header, credential in credentials.items():
                seen = self._credentials.setdefault(header, {})
                seen[credential_hash(credential)] = seen.get(credential_hash(credential), 0) + 1

    def snapshot(self) -> UpstreamStats:
        with self._lock:
            return UpstreamStats(
                {route: dict(models) for route, models in self._calls.items()},
                {header: dict(seen) for header, seen in self._credentials.items()},
            )

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._credentials.clear()


def _credentials(headers: Headers) -> dict[str, str]:
    found = {name: headers[name] for name in ("authorization", "x-api-key") if headers.get(name)}
    if found.get("authorization", "").lower().startswith("bearer "):
        found["authorization"] = found["authorization"][7:].strip()
    return found


# -- the app ------------------------------------------------------------------------------------

Build = Callable[[JSON, str], Response]


@dataclass(frozen=True)
class UpstreamOptions:
    """Global behaviour: seconds of latency per request and between stream chunks, auth, dim."""

    latency: float = 0.0
    chunk_delay: float = 0.0
    require_auth: bool = False
    embedding_dim: int = 384

    def __post_init__(self) -> None:
        if self.latency < 0 or self.chunk_delay < 0:
            raise ConfigError("latency and chunk_delay must be >= 0 seconds")
        if self.embedding_dim < 1:
            raise ConfigError(f"embedding_dim must be >= 1, not {self.embedding_dim}")


def _check_messages(body: JSON) -> str | None:
    messages = body.get("messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, dict) for m in messages)
    ):
        return "messages: a non-empty list of message objects is required"
    return None


def _check_anthropic(body: JSON) -> str | None:
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    return _check_messages(body)


class _Upstream:
    """The route handlers, around one `CallLog` and the global options."""

    def __init__(self, options: UpstreamOptions) -> None:
        self.options = options
        self.log = CallLog()

    async def _serve(
        self, request: Request, flavour: str, build: Build, check: Callable[[JSON], str | None]
    ) -> Response:
        rid = uuid.uuid4().hex[:24]
        body: object = {}
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                body = None
        payload: JSON = body if isinstance(body, dict) else {}
        model = payload.get("model") if isinstance(payload.get("model"), str) else "-"
        credentials = _credentials(request.headers)
        self.log.record(request.url.path, str(model), credentials)
        headers = {"request-id" if flavour == "anthropic" else "x-request-id": f"req_{rid}"}

        def fail(status: int, message: str, extra: Mapping[str, str] | None = None) -> Response:
            body = _ERROR_BODIES[flavour](status, message, f"req_{rid}")
            return JSONResponse(body, status, headers={**headers, **(extra or {})})

        delay = self.options.latency + model_delay(str(model))
        if delay:
            await asyncio.sleep(delay)
        if self.options.require_auth and not credentials:
            return fail(
                401, "No API key provided: send `Authorization: Bearer <key>` or `x-api-key`."
            )
        if not isinstance(body, dict):
            return fail(400, "The request body must be a JSON object.")
        status = failure_status(str(model))
        if status is not None:
            retry = {"retry-after-ms": "10"} if status in (429, 503, 529) else {}
            return fail(
                status,
                f"Simulated {status} from the llmemo test upstream (model {model!r}).",
                retry,
            )
        problem = check(payload) if request.method == "POST" else None
        if problem is None and request.method == "POST" and model == "-":
            problem = "model: Field required"
        if problem is not None:
            return fail(400, problem)
        try:
            response = build(payload, rid)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a malformed field
            return fail(400, f"Invalid request: {type(exc).__name__}: {exc}")
        response.headers.update(headers)
        return response

    def _send(self, frames: list[bytes], drop: bool, media_type: str) -> Response:
        async def emit() -> AsyncIterator[bytes]:
            sent = frames[: max(1, len(frames) // 2)] if drop else frames
            for number, frame in enumerate(sent):
                if number and self.options.chunk_delay:
                    await asyncio.sleep(self.options.chunk_delay)
                yield frame
            if drop:
                raise DroppedStream("fail-midstream: connection dropped on purpose")

        return StreamingResponse(
            emit(), media_type=media_type, headers={"cache-control": "no-cache"}
        )

    def _respond(self, body: JSON, payload: JSON, frames: Callable[[], list[bytes]]) -> Response:
        drop = body["model"] == "fail-midstream"
        if body.get("stream"):
            return self._send(frames(), drop, "text/event-stream")
        if drop:
            raw = json.dumps(payload).encode()
            return self._send([raw[: len(raw) // 2]], True, "application/json")
        return JSONResponse(payload)

    def _chat(self, body: JSON, rid: str) -> Response:
        completion = openai_chat(body, f"chatcmpl-{rid}", int(time.time()))
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return self._respond(
            body, completion, lambda: _openai_frames(openai_chat_chunks(completion, usage))
        )

    def _completion(self, body: JSON, rid: str) -> Response:
        prompts = as_texts(body.get("prompt", "")) or []
        completion = openai_completion(body, prompts, f"cmpl-{rid}", int(time.time()))
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return self._respond(
            body, completion, lambda: _openai_frames(openai_completion_chunks(completion, usage))
        )

    def _message(self, body: JSON, rid: str) -> Response:
        message = anthropic_message(body, f"msg_{rid}")
        events = anthropic_events(message)
        return self._respond(body, message, lambda: [_event(name, data) for name, data in events])

    def _dim(self, body: JSON) -> int:
        dim = body.get("dimensions")
        return dim if isinstance(dim, int) and dim > 0 else self.options.embedding_dim

    def _embeddings(self, body: JSON, rid: str) -> Response:
        return JSONResponse(openai_embeddings(body, as_texts(body["input"]) or [], self._dim(body)))

    def _ollama_embed(self, body: JSON, rid: str) -> Response:
        texts = as_texts(body["input"]) or []
        vectors = [embed(text, body["model"], self._dim(body)) for text in texts]
        return JSONResponse({"model": body["model"], "embeddings": vectors, "total_duration": 1000,
                             "load_duration": 0, "prompt_eval_count": sum(count_tokens(t) for t in texts)})  # fmt: skip

    def _models(self, body: JSON, rid: str) -> Response:
        return JSONResponse({"object": "list", "data": [_model_object(m) for m in MODELS]})

    async def chat(self, request: Request) -> Response:
        return await self._serve(request, "openai", self._chat, _check_messages)

    async def completions(self, request: Request) -> Response:
        return await self._serve(request, "openai", self._completion, _check_prompt)

    async def embeddings(self, request: Request) -> Response:
        return await self._serve(request, "openai", self._embeddings, _check_input)

    async def messages(self, request: Request) -> Response:
        return await self._serve(request, "anthropic", self._message, _check_anthropic)

    async def ollama_embed(self, request: Request) -> Response:
        return await self._serve(request, "ollama", self._ollama_embed, _check_input)

    async def models(self, request: Request) -> Response:
        if request.headers.get("anthropic-version"):
            return await self._serve(request, "anthropic", _anthropic_models, lambda body: None)
        return await self._serve(request, "openai", self._models, lambda body: None)

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.log.snapshot().as_json())

    async def reset(self, request: Request) -> Response:
        self.log.reset()
        return Response(status_code=204)


def _check_prompt(body: JSON) -> str | None:
    return (
        None
        if as_texts(body.get("prompt", ""))
        else "prompt: a string or a non-empty list is required"
    )


def _check_input(body: JSON) -> str | None:
    return (
        None if as_texts(body.get("input")) else "input: a string or a non-empty list is required"
    )


def _model_object(model: str) -> JSON:
    return {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "llmemo"}


def _anthropic_models(body: JSON, rid: str) -> Response:
    data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
            for m in MODELS if m.startswith("claude")]  # fmt: skip
    return JSONResponse(
        {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
    )


def _openai_frames(chunks: list[JSON]) -> list[bytes]:
    return [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks] + [
        b"data: [DONE]\n\n"
    ]


def _event(name: str, data: JSON) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def create_app(
    *,
    latency: float = 0.0,
    chunk_delay: float = 0.0,
    require_auth: bool = False,
    embedding_dim: int = 384,
) -> Starlette:
    """The upstream app; `app.state.calls` is its `CallLog` (also served at `/_stats`)."""
    upstream = _Upstream(UpstreamOptions(latency, chunk_delay, require_auth, embedding_dim))
    post, get = ["POST"], ["GET"]
    app = Starlette(routes=[
        Route("/v1/chat/completions", upstream.chat, methods=post),
        Route("/v1/completions", upstream.completions, methods=post),
        Route("/v1/embeddings", upstream.embeddings, methods=post),
        Route("/v1/models", upstream.models, methods=get),
        Route("/v1/messages", upstream.messages, methods=post),
        Route("/api/embed", upstream.ollama_embed, methods=post),
        Route("/_stats", upstream.stats, methods=get),
        Route("/_reset", upstream.reset, methods=post),
    ])  # fmt: skip
    app.state.calls = upstream.log
    hide_dropped_streams()
    return app


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, without the usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m llmemo.testing.upstream --port 8001 --latency 0.5`."""
    parser = _Parser(prog="python -m llmemo.testing.upstream", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument(
        "--chunk-delay", type=float, default=0.0, help="seconds between stream chunks"
    )
    parser.add_argument("--require-auth", action="store_true", help="401 without an API key")
    parser.add_argument("--embedding-dim", type=int, default=384)
    args = parser.parse_args(argv)
    require("uvicorn", "server")
    import uvicorn

    try:
        app = create_app(latency=args.latency, chunk_delay=args.chunk_delay,
                         require_auth=args.require_auth, embedding_dim=args.embedding_dim)  # fmt: skip
    except ConfigError as exc:
        parser.error(str(exc))
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, lifespan="off"))
    hide_dropped_streams()
    server.run()


if __name__ == "__main__":
    main()
