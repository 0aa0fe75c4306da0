"""The HTTP server of `llmemo serve`: uvicorn, with limits on what a connection may cost.

uvicorn's httptools protocol buffers a request head of any size for as long as the client takes
to send it, and waits for a body forever. `LimitedHttpToolsProtocol` counts the head's bytes as
they arrive (431 once they pass `max_header_bytes`, before the head is even complete), gives
each head `header_timeout` seconds from its first byte (or from the connection) and each body
`body_timeout` seconds from its head (408, then the connection is closed). Timers are only set
on a new connection and when a head or a body is still incomplete after a read, so a request
that arrives whole sets none (a timer per request, or `asyncio.timeout` in the app, costs ~2-6
µs, up to a fifth of a cache hit). Idle keep-alive connections and the number of concurrent ones
are uvicorn's own `timeout_keep_alive` and `limit_concurrency`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from llmemo.service.errors import Flavour, error_body
from llmemo.service.settings import Settings

WORKER_SETTINGS = "_LLMEMO_WORKER_SETTINGS"  # how `serve --workers N` hands its settings over
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
LINGER_SECONDS = 2.0  # after a refusal, how long (and how much) is read and dropped
LINGER_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may send before its request reaches the app."""

    max_header_bytes: int = 64 * 1024
    header_timeout: float = 20.0
    body_timeout: float = 60.0

    @classmethod
    def of(cls, settings: Settings) -> ConnectionLimits:
        return cls(settings.max_header_bytes, settings.header_timeout, settings.body_timeout)


class LimitedConfig(uvicorn.Config):
    """uvicorn's Config, carrying the connection limits to the protocol."""

    def __init__(self, app: Any, *, limits: ConnectionLimits, **options: Any) -> None:
        super().__init__(app, **options)
        self.connection_limits = limits


def server_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """The uvicorn Config that serves `app` with the settings' connection limits."""
    limits = ConnectionLimits.of(settings)
    return LimitedConfig(app, limits=limits, **server_options(settings), **options)


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options of the limits (for `uvicorn.run` with workers, where the protocol reads
    the rest of the limits from the workers' settings)."""
    return {
        "http": LimitedHttpToolsProtocol,
        "timeout_keep_alive": settings.timeout_keep_alive,
        "limit_concurrency": settings.limit_concurrency,
    }


@functools.cache
def _worker_limits() -> ConnectionLimits:
    """The limits of a `serve --workers N` process (from its settings), else the defaults."""
    raw = os.environ.get(WORKER_SETTINGS)
    return ConnectionLimits.of(Settings(**json.loads(raw))) if raw else ConnectionLimits()


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with caps on the request head's size and time and on the
    body's time."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        limits = getattr(config, "connection_limits", None)
        self.limits = limits if isinstance(limits, ConnectionLimits) else _worker_limits()
        self.head_bytes = 0  # bytes of the head being read (from the read it began in, or after)
        self.reading_head = True  # from the connection, or a request's first byte, to its head
        self.head_started = False  # a byte of the head being read has arrived
        self.head_timer: asyncio.TimerHandle | None = None
        self.body_timer: asyncio.TimerHandle | None = None  # armed while a body is incomplete
        self.lingering = -1  # bytes discarded since a refusal (-1: not refused)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._body_done()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.lingering >= 0:  # refused: read and drop, so the answer is not lost to a reset
            self.lingering += len(data)
            if self.lingering > LINGER_BYTES:
                self.transport.close()
            return
        if self.reading_head:
            self.head_bytes += len(data)
            self.head_started = True
        super().data_received(data)
        # Timers only for what is still to come after this read: a request that arrives whole
        # (most of them, on a kept-alive connection) sets none.
        if self.transport.is_closing():
            return
        if self.reading_head:
            if self.head_bytes > self.limits.max_header_bytes:
                self._refuse(
                    431,
                    f"The request line and headers are over this service's limit of "
                    f"{self.limits.max_header_bytes} bytes (LLMEMO_MAX_HEADER_BYTES).",
                )
            elif self.head_timer is None:
                self._arm()
            return
        cycle = self.cycle
        if (
            self.body_timer is None
            and cycle is not None
            and cycle.more_body
            and not cycle.response_complete
        ):
            self.body_timer = self.loop.call_later(self.limits.body_timeout, self._body_timed_out)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.reading_head = self.head_started = True

    def on_headers_complete(self) -> None:
        self.reading_head, self.head_started, self.head_bytes = False, False, 0
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._body_done()
        super().on_message_complete()

    def _body_done(self) -> None:
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None

    def _body_timed_out(self) -> None:
        """408 for a body slower than `body_timeout` (unless the app answered already); the app
        sees the client leave (ClientGoneError, logged at debug level)."""
        self.body_timer = None
        cycle = self.cycle
        if cycle is None or not cycle.more_body or self.transport.is_closing():
            return
        started = cycle.response_started
        cycle.disconnected = True  # what the app still sends is dropped
        cycle.message_event.set()
        if started:
            self.transport.close()
            return
        message = (
            f"The request body did not arrive within {self.limits.body_timeout:g} seconds "
            "(LLMEMO_BODY_TIMEOUT)."
        )
        self._refuse(408, message, _flavour(self.scope))

    def _arm(self) -> None:
        self.head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.lingering >= 0:
            self.transport.close()
        elif self.head_started:
            message = (
                f"The request headers did not arrive within {self.limits.header_timeout:g} "
                "seconds (LLMEMO_HEADER_TIMEOUT)."
            )
            self._refuse(408, message)
        elif not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: int, message: str, flavour: Flavour = "openai") -> None:
        """Answer `status` in the provider's error shape (OpenAI's while the head is unread) and
        close the connection; a response under way is cut instead.

        After the answer the connection is half-closed and what still arrives is dropped, for
        at most LINGER_SECONDS and LINGER_BYTES: closing with unread data would send a reset,
        and the client could lose the answer before reading it.
        """
        self.reading_head = False
        self._disarm()
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete or self.cycle.disconnected:
            body = orjson.dumps(error_body(flavour, "invalid_request_error", message))
            head = [
                b"HTTP/1.1 %d %s" % (status, _REASONS[status]),
                b"content-type: application/json",
                b"content-length: %d" % len(body),
                b"connection: close",
            ]
            self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
            if self.transport.can_write_eof():
                self.transport.write_eof()
                self.lingering = 0
                self.head_timer = self.loop.call_later(LINGER_SECONDS, self._head_timed_out)
                return
        self.transport.close()


def _flavour(scope: Mapping[str, Any]) -> Flavour:
    """The provider shape of a request's errors, from its scope (as errors.flavour_of)."""
    path: str = scope["path"]
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith(("/v1/chat/", "/v1/completions", "/v1/embeddings")):
        return "openai"
    if any(name == b"anthropic-version" for name, _ in scope["headers"]):
        return "anthropic"
    return "openai"
