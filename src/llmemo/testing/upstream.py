"""A local OpenAI-, Anthropic- and Ollama-compatible upstream with deterministic answers.

Tests, benchmarks and offline demos point the official SDKs at it instead of the providers.
Routes: chat completions, legacy completions, the Responses API, embeddings, models, Anthropic
messages, Ollama embed, and `/_stats` / `/_reset` for the call counter. The answers and shapes
live in `answers`, `openai_api`, `responses_api`, `anthropic_api`, `embedding`, `failures` and
`calls`; this module is the app (and re-exports their names, as it held them all before).
The request drives every case a cache must handle: `max_tokens` truncation, a tool call (tools
given and the last user text says "use a tool"), an empty answer ("empty answer"), provider-shaped
errors (model `fail-429`), latency (model `slow-250`), a stream that breaks mid-way (model
`fail-midstream`), and odd answers (models `odd-redirect`, `odd-shape`, `odd-unfinished`). Answer text is a pure function of the request; ids and `created` are fresh on
every call, so a test can tell a cache hit (same id) from a second upstream call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import NoReturn

from llmemo.errors import ConfigError, require

require("starlette", "server")

from starlette.applications import Starlette  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response, StreamingResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

# Every name below was importable from this module before it was split: keep it so.
from llmemo.testing.answers import (  # noqa: E402
    JSON,
    Reply,
    ToolCall,
    as_texts,
    compose,
    content_text,
    count_tokens,
    digest,
    pick_tool,
    pieces,
    tool_arguments,
)
from llmemo.testing.anthropic_api import anthropic_events, anthropic_message  # noqa: E402
from llmemo.testing.calls import (  # noqa: E402
    CallLog,
    UpstreamStats,
    credential_hash,
    credentials_of,
)
from llmemo.testing.embedding import embed  # noqa: E402
from llmemo.testing.failures import (  # noqa: E402
    ERROR_BODIES,
    ODD_REDIRECT,
    ODD_SHAPE,
    ODD_UNFINISHED,
    DroppedStream,
    anthropic_error,
    failure_status,
    hide_dropped_streams,
    model_delay,
    odd_shape,
    ollama_error,
    openai_error,
    unfinish,
)
from llmemo.testing.openai_api import (  # noqa: E402
    FINGERPRINT,
    openai_chat,
    openai_chat_chunks,
    openai_completion,
    openai_completion_chunks,
    openai_embeddings,
)
from llmemo.testing.responses_api import (  # noqa: E402
    check_response,
    openai_response,
    openai_response_events,
)

__all__ = [
    "FINGERPRINT", "JSON", "MODELS", "CallLog", "DroppedStream", "Reply", "ToolCall",
    "UpstreamOptions", "UpstreamStats", "anthropic_error", "anthropic_events", "anthropic_message",
    "as_texts", "compose", "content_text", "count_tokens", "create_app", "credential_hash",
    "digest", "embed", "failure_status", "hide_dropped_streams", "main", "model_delay",
    "ollama_error", "openai_chat", "openai_chat_chunks", "openai_completion",
    "openai_completion_chunks", "openai_embeddings", "openai_error", "openai_response",
    "openai_response_events", "pick_tool", "pieces", "tool_arguments",
]  # fmt: skip

MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo-instruct", "text-embedding-3-small",
          "claude-sonnet-4-5", "claude-haiku-4-5")  # fmt: skip


# -- the app ------------------------------------------------------------------------------------

Build = Callable[[JSON, str], Response]


@dataclass(frozen=True)
class UpstreamOptions:
    """Global behaviour: seconds of latency per request and between stream chunks, auth, dim.

    api_keys: the only keys accepted (401 for any other, as a real provider answers); None
    accepts any key (and `require_auth` decides whether one is needed)."""

    latency: float = 0.0
    chunk_delay: float = 0.0
    require_auth: bool = False
    embedding_dim: int = 384
    api_keys: frozenset[str] | None = None

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
        credentials = credentials_of(request.headers)
        self.log.record(
            request.url.path, str(model), credentials, request.headers.get("traceparent")
        )
        headers = {"request-id" if flavour == "anthropic" else "x-request-id": f"req_{rid}"}

        def fail(status: int, message: str, extra: Mapping[str, str] | None = None) -> Response:
            body = ERROR_BODIES[flavour](status, message, f"req_{rid}")
            return JSONResponse(body, status, headers={**headers, **(extra or {})})

        delay = self.options.latency + model_delay(str(model))
        if delay:
            await asyncio.sleep(delay)
        if (self.options.require_auth or self.options.api_keys is not None) and not credentials:
            return fail(
                401, "No API key provided: send `Authorization: Bearer <key>` or `x-api-key`."
            )
        if self.options.api_keys is not None and not self.options.api_keys.issuperset(
            credentials.values()
        ):
            return fail(401, "Incorrect API key provided.")
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
        if body["model"] == ODD_UNFINISHED:
            unfinish(payload)  # before `frames` reads it: the stream has no final reason either
        if body.get("stream"):
            return self._send(frames(), drop, "text/event-stream")
        if drop:
            raw = json.dumps(payload).encode()
            return self._send([raw[: len(raw) // 2]], True, "application/json")
        return _plain(body, payload)

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
        return self._respond(
            body, message, lambda: [_event(name, data) for name, data in anthropic_events(message)]
        )

    def _response(self, body: JSON, rid: str) -> Response:
        response = openai_response(body, rid, int(time.time()))
        return self._respond(
            body,
            response,
            lambda: [_event(name, data) for name, data in openai_response_events(response)],
        )

    def _dim(self, body: JSON) -> int:
        dim = body.get("dimensions")
        return dim if isinstance(dim, int) and dim > 0 else self.options.embedding_dim

    def _embeddings(self, body: JSON, rid: str) -> Response:
        return _plain(body, openai_embeddings(body, as_texts(body["input"]) or [], self._dim(body)))

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

    async def responses(self, request: Request) -> Response:
        return await self._serve(request, "openai", self._response, check_response)

    async def embeddings(self, request: Request) -> Response:
        return await self._serve(request, "openai", self._embeddings, _check_input)

    async def messages(self, request: Request) -> Response:
        return await self._serve(request, "anthropic", self._message, _check_anthropic)

    async def ollama_embed(self, request: Request) -> Response:
        return await self._serve(request, "ollama", self._ollama_embed, _check_input)

    async def models(self, request: Request) -> Response:
        if "anthropic-version" in request.headers:
            return await self._serve(request, "anthropic", _anthropic_models, lambda body: None)
        return await self._serve(request, "openai", self._models, lambda body: None)

    async def model(self, request: Request) -> Response:
        """GET /v1/models/{id}: one model, or the provider's 404."""
        flavour = "anthropic" if "anthropic-version" in request.headers else "openai"
        name = request.path_params["model"]

        def one(body: JSON, rid: str) -> Response:
            if name not in MODELS:
                error = ERROR_BODIES[flavour](404, f"The model {name!r} does not exist.", rid)
                return JSONResponse(error, 404)
            if flavour == "anthropic":
                return JSONResponse({"type": "model", "id": name, "display_name": name,
                                     "created_at": "2025-01-01T00:00:00Z"})  # fmt: skip
            return JSONResponse(_model_object(name))

        return await self._serve(request, flavour, one, lambda body: None)

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.log.snapshot().as_json())

    async def reset(self, request: Request) -> Response:
        self.log.reset()
        return Response(status_code=204)


def _plain(body: JSON, payload: JSON) -> Response:
    """A JSON answer, made odd for the `odd-redirect` and `odd-shape` models."""
    if body["model"] == ODD_REDIRECT:
        return JSONResponse(payload, 302, headers={"location": "/v1/elsewhere"})
    if body["model"] == ODD_SHAPE:
        return JSONResponse(odd_shape(str(payload.get("id"))))
    return JSONResponse(payload)


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


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods, answered in the provider's error shape as the APIs do."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    flavour = "anthropic" if "anthropic-version" in request.headers else "openai"
    message = f"{request.method} {request.url.path}: {HTTPStatus(status).phrase}"
    return JSONResponse(ERROR_BODIES[flavour](status, message, "req_none"), status)


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
    api_keys: Collection[str] | None = None,
) -> Starlette:
    """The upstream app; `app.state.calls` is its `CallLog` (also served at `/_stats`)."""
    keys = None if api_keys is None else frozenset(api_keys)
    upstream = _Upstream(UpstreamOptions(latency, chunk_delay, require_auth, embedding_dim, keys))
    post, get = ["POST"], ["GET"]
    app = Starlette(routes=[
        Route("/v1/chat/completions", upstream.chat, methods=post),
        Route("/v1/completions", upstream.completions, methods=post),
        Route("/v1/responses", upstream.responses, methods=post),
        Route("/v1/embeddings", upstream.embeddings, methods=post),
        Route("/v1/models", upstream.models, methods=get),
        Route("/v1/models/{model:path}", upstream.model, methods=get),
        Route("/v1/messages", upstream.messages, methods=post),
        Route("/api/embed", upstream.ollama_embed, methods=post),
        Route("/_stats", upstream.stats, methods=get),
        Route("/_reset", upstream.reset, methods=post),
    ], exception_handlers={HTTPException: _http_error})  # fmt: skip
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
