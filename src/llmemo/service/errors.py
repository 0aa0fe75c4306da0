"""Errors of the service and the one table that maps them to HTTP answers in the provider's shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from llmemo.core.streaming import IncompleteStreamError
from llmemo.errors import ConfigError, LLMemoError, UnkeyableError
from llmemo.warm.runs import RunBusyError, RunConflictError

Flavour = Literal["openai", "anthropic"]


class ServiceError(LLMemoError):
    """An error the service answers itself (not the upstream's)."""


class BadRequestError(ServiceError):
    """Malformed JSON, a missing field, a bad control header."""


class AuthError(ServiceError):
    """401: the caller is not allowed; the message says why (without any secret)."""


class PayloadTooLargeError(ServiceError):
    """The request body is over `max_body_bytes`."""


class HeadersTooLargeError(ServiceError):
    """The request's headers are over `max_header_bytes`."""


class NoUpstreamError(ServiceError):
    """The route's provider has no upstream configured."""


class UpstreamUnreachableError(ServiceError):
    """The upstream refused the connection, or broke it before answering."""


class UpstreamTimeoutError(ServiceError):
    """The upstream did not answer in time."""


class NotFoundError(ServiceError):
    """What the request names does not exist (a warm job), or no longer."""


class StoreUnavailableError(ServiceError):
    """The store is down and the request cannot do without it (warming records its work)."""


class ClientGoneError(ServiceError):
    """The client disconnected in the middle of a stream (the entry is not stored)."""


class UpstreamError(ServiceError):
    """The upstream answered with an error: passed back to the client as is, never cached."""

    def __init__(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        super().__init__(f"upstream answered {status}")
        self.status = status
        self.body = body
        self.headers = dict(headers)


@dataclass(frozen=True)
class Problem:
    """How one kind of error is answered: HTTP status and the error type each provider uses."""

    status: int
    openai: str
    anthropic: str
    retry_after: int | None = None  # seconds a client should wait before it retries


# The one table. The first entry an exception is an instance of wins (most specific first).
PROBLEMS: tuple[tuple[type[BaseException], Problem], ...] = (
    (BadRequestError, Problem(400, "invalid_request_error", "invalid_request_error")),
    (UnkeyableError, Problem(400, "invalid_request_error", "invalid_request_error")),
    (ConfigError, Problem(400, "invalid_request_error", "invalid_request_error")),
    (AuthError, Problem(401, "invalid_request_error", "authentication_error")),
    (PayloadTooLargeError, Problem(413, "invalid_request_error", "request_too_large")),
    (HeadersTooLargeError, Problem(431, "invalid_request_error", "invalid_request_error")),
    (NoUpstreamError, Problem(503, "server_error", "api_error")),
    (UpstreamUnreachableError, Problem(502, "server_error", "api_error")),
    (UpstreamTimeoutError, Problem(504, "timeout", "timeout_error")),
    (IncompleteStreamError, Problem(502, "server_error", "api_error")),
    (ClientGoneError, Problem(499, "invalid_request_error", "invalid_request_error")),
    (NotFoundError, Problem(404, "not_found_error", "not_found_error")),
    (RunBusyError, Problem(409, "conflict", "invalid_request_error", retry_after=5)),
    (RunConflictError, Problem(422, "invalid_request_error", "invalid_request_error")),
    (StoreUnavailableError, Problem(503, "server_error", "api_error", retry_after=10)),
)
INTERNAL = Problem(500, "server_error", "api_error")
# Errors that happen after the cache was asked (and missed): their answers say `miss`.
_AFTER_LOOKUP = (
    UpstreamUnreachableError,
    UpstreamTimeoutError,
    IncompleteStreamError,
    NoUpstreamError,
)
_CACHE = "x-llmemo-cache"
_HTTP_TYPES: Mapping[int, tuple[str, str]] = {
    404: ("invalid_request_error", "not_found_error"),
    405: ("invalid_request_error", "invalid_request_error"),
}


def problem_of(exc: BaseException) -> Problem:
    for kind, problem in PROBLEMS:
        if isinstance(exc, kind):
            return problem
    return INTERNAL


def error_body(flavour: Flavour, kind: str, message: str) -> dict[str, Any]:
    """An error body as the provider writes it."""
    if flavour == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def flavour_of(request: Request) -> Flavour:
    """Anthropic's shape on /v1/messages and for the Anthropic SDK elsewhere, else OpenAI's."""
    path = request.url.path
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith(("/v1/chat/", "/v1/completions", "/v1/embeddings")):
        return "openai"
    return "anthropic" if "anthropic-version" in request.headers else "openai"


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def error_response(exc: BaseException, flavour: Flavour) -> Response:
    """The HTTP answer for an exception (the upstream's own answer for UpstreamError)."""
    if isinstance(exc, UpstreamError):
        return Response(exc.body, exc.status, {**exc.headers, _CACHE: "miss"})
    if isinstance(exc, HTTPException):
        kinds = _HTTP_TYPES.get(exc.status_code, ("invalid_request_error", "invalid_request_error"))
        body = error_body(flavour, kinds[0] if flavour == "openai" else kinds[1], exc.detail)
        return json_response(body, exc.status_code, {**(exc.headers or {}), _CACHE: "bypass"})
    problem = problem_of(exc)
    # Internal errors are logged by the server (Starlette re-raises them); details stay there.
    internal = "llmemo failed to handle the request (see the service log)"
    message = internal if problem is INTERNAL else str(exc)
    kind = problem.anthropic if flavour == "anthropic" else problem.openai
    status = "miss" if isinstance(exc, _AFTER_LOOKUP) else "bypass"
    headers = {_CACHE: status}
    if problem.retry_after is not None:
        headers["retry-after"] = str(problem.retry_after)
    return json_response(error_body(flavour, kind, message), problem.status, headers)


def warm_error(exc: LLMemoError, headers: Mapping[str, str] | None = None) -> Response:
    """The answer of the warm endpoints for an error, through the one table, in OpenAI's shape
    (schedulers read the status; `headers`: the rate limiter's)."""
    extra = dict(headers or {})
    if isinstance(exc, UpstreamError):  # the limiter's 429, already in its shape
        return Response(exc.body, exc.status, {**exc.headers, **extra})
    problem = problem_of(exc)
    if problem.retry_after is not None:
        extra["retry-after"] = str(problem.retry_after)
    body = error_body("openai", problem.openai, str(exc))
    return json_response(body, problem.status, extra)


def stream_error(flavour: Flavour, exc: BaseException) -> bytes:
    """An error event for a stream that already started (the SDKs raise it as an API error)."""
    problem = problem_of(exc)
    message = f"the upstream stream broke: {exc}"
    if flavour == "anthropic":
        body = orjson.dumps(error_body(flavour, problem.anthropic, message))
        return b"event: error\ndata: " + body + b"\n\n"
    return b"data: " + orjson.dumps(error_body(flavour, problem.openai, message)) + b"\n\n"


def served(request: Request) -> str:
    """The app's own routes, read from its router (so the list cannot miss one):
    "POST /v1/chat/completions, ... and GET /v1/models, ..."."""
    paths: dict[str, list[str]] = {"POST": [], "GET": []}
    for route in getattr(request.app, "routes", ()):
        path, methods = getattr(route, "path", None), getattr(route, "methods", None) or ()
        for method, listed in paths.items():
            if path and method in methods and path not in listed:
                listed.append(path)
    return " and ".join(f"{m} {', '.join(p)}" for m, p in paths.items() if p)


async def handle_exception(request: Request, exc: Exception) -> Response:
    """Starlette exception handler: every error leaves in the provider's shape."""
    path = request.url.path
    if isinstance(exc, HTTPException) and exc.status_code == 404:
        exc = HTTPException(404, f"Unknown path {path}: llmemo serves {served(request)}.")
    elif isinstance(exc, HTTPException) and exc.status_code == 405:
        allowed = {k.lower(): v for k, v in (exc.headers or {}).items()}.get("allow", "POST")
        message = f"Method {request.method} is not allowed on {path}; use {allowed}."
        exc = HTTPException(405, message, exc.headers)
    return error_response(exc, flavour_of(request))
