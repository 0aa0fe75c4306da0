"""The one table from exceptions to HTTP answers, in both providers' shapes."""

from __future__ import annotations

import orjson
import pytest

from llmemo.core.streaming import IncompleteStreamError
from llmemo.errors import UnkeyableError
from llmemo.service.errors import (
    BadRequestError,
    NoUpstreamError,
    PayloadTooLargeError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnreachableError,
    error_response,
    stream_error,
)


@pytest.mark.parametrize(
    ("exc", "status", "openai_type", "anthropic_type"),
    [
        (BadRequestError("bad"), 400, "invalid_request_error", "invalid_request_error"),
        (UnkeyableError("no model"), 400, "invalid_request_error", "invalid_request_error"),
        (PayloadTooLargeError("big"), 413, "invalid_request_error", "request_too_large"),
        (NoUpstreamError("none"), 503, "server_error", "api_error"),
        (UpstreamUnreachableError("down"), 502, "server_error", "api_error"),
        (UpstreamTimeoutError("slow"), 504, "timeout", "timeout_error"),
        (IncompleteStreamError("cut"), 502, "server_error", "api_error"),
        (RuntimeError("bug"), 500, "server_error", "api_error"),
    ],
)
def test_table(exc: Exception, status: int, openai_type: str, anthropic_type: str) -> None:
    openai = error_response(exc, "openai")
    assert openai.status_code == status
    assert orjson.loads(openai.body)["error"]["type"] == openai_type
    anthropic = error_response(exc, "anthropic")
    assert anthropic.status_code == status
    body = orjson.loads(anthropic.body)
    assert body["type"] == "error" and body["error"]["type"] == anthropic_type


def test_internal_errors_do_not_leak_details() -> None:
    response = error_response(RuntimeError("secret detail"), "openai")
    assert b"secret detail" not in response.body


def test_upstream_errors_are_passed_back_as_they_came() -> None:
    body = b'{"error": {"message": "slow down", "type": "requests"}}'
    exc = UpstreamError(429, body, {"retry-after": "1", "content-type": "application/json"})
    response = error_response(exc, "anthropic")
    assert (response.status_code, response.body) == (429, body)
    assert response.headers["retry-after"] == "1"
    assert response.headers["x-llmemo-cache"] == "miss"


def test_stream_errors_are_events_the_sdks_raise() -> None:
    assert stream_error("openai", UpstreamUnreachableError("cut")).startswith(b'data: {"error":')
    assert stream_error("anthropic", UpstreamUnreachableError("cut")).startswith(
        b'event: error\ndata: {"type":"error"'
    )
