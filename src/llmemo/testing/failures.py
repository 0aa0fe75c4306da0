"""How the test upstream fails on purpose: provider-shaped errors, latency, dropped streams, and odd
answers a cache must not store (model `odd-redirect`, `odd-shape`, `odd-unfinished`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping

from llmemo.testing.answers import JSON

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


ERROR_BODIES: Mapping[str, Callable[[int, str, str], JSON]] = {
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


ODD_REDIRECT = "odd-redirect"  # the usual JSON answer, with status 302 (and a Location)
ODD_SHAPE = "odd-shape"  # 200 with a JSON object of no known shape
ODD_UNFINISHED = "odd-unfinished"  # no finish/stop reason (answer and stream), no Responses status


def unfinish(answer: JSON) -> None:
    """Take the final reason out of an answer, in place: its stream then ends without one too."""
    for choice in answer.get("choices") or ():
        choice["finish_reason"] = None
    if answer.get("type") == "message":
        answer["stop_reason"] = None
    if answer.get("object") == "response":
        answer["status"] = None


def odd_shape(rid: str) -> JSON:
    """A JSON object that is no provider's answer."""
    return {"id": rid, "object": "surprise", "value": 42}


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
