"""Forwarding to the providers: one pooled httpx.AsyncClient per provider.

This is llmemo's one upstream client: the service forwards through it and `llmemo warm` calls
the providers through it (`Upstreams.to`), with the same timeouts, pool limits, header policy and
redirects (never followed).

The caller's headers (their API key included) are forwarded as they came and kept nowhere else.
An answer that is not a success (any status outside 2xx: an error, but also a redirect) is raised as
UpstreamError carrying the upstream's status, body and useful headers, so the cache never stores it
and the client gets the provider's own answer back, status included.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Literal

import httpx
import orjson

from llmemo.service.errors import (
    BadRequestError,
    NoUpstreamError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnreachableError,
)
from llmemo.service.settings import Settings
from llmemo.stores.base import redact

Provider = Literal["openai", "anthropic"]

# Never forwarded: hop-by-hop headers, our own controls, and what httpx sets itself.
_HOP_BY_HOP = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "accept-encoding",
        "cache-control",
        "cookie",
    }
)
# Upstream response headers worth passing back (request ids, rate limits, retry hints).
_ANSWER_PREFIXES = (
    "content-type",
    "x-request-id",
    "request-id",
    "retry-after",
    "x-ratelimit-",
    "anthropic-ratelimit-",
    "openai-",
    "x-should-retry",
)
_DEFAULTS: dict[str, Any] = {
    name: Settings.model_fields[name].default
    for name in ("upstream_timeout", "connect_timeout", "max_connections")
}
_ENV_HINT = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}
# One segment of a model id (`gpt-4o`, `ft:gpt-4o-mini:org::id`, `meta-llama/Llama-3-8B` has two):
# it starts with a letter or digit, so `.` and `..` never pass, nor do `%`, `\\` or spaces.
_MODEL_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+~-]*")


def models_path(suffix: str) -> str:
    """`/models` plus what followed `/v1/models` in the caller's (decoded) path: "" or "/ID".

    Anything that could leave the models path upstream (dot segments, encoded slashes or dots,
    backslashes, empty segments) is refused with BadRequestError before any upstream call.
    """
    if not suffix:
        return "/models"
    segments = suffix.removeprefix("/").split("/")
    if not suffix.startswith("/") or not all(_MODEL_SEGMENT.fullmatch(s) for s in segments):
        shown = suffix if len(suffix) <= 100 else suffix[:100] + "..."
        raise BadRequestError(
            f"Invalid model id in the path: {shown!r} (model ids are letters, digits and "
            "._:@+~- separated by single slashes)."
        )
    return "/models" + suffix


def forward_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The caller's headers minus hop-by-hop ones and llmemo's own controls."""
    return {
        name: value
        for name, value in headers.items()
        if name not in _HOP_BY_HOP and not name.startswith("x-llmemo-")
    }


def answer_headers(headers: httpx.Headers) -> dict[str, str]:
    """The upstream response headers that the client should see."""
    return {name: value for name, value in headers.items() if name.startswith(_ANSWER_PREFIXES)}


class Upstreams:
    """The HTTP clients of the configured providers (one connection pool each)."""

    def __init__(self, settings: Settings) -> None:
        self._open(
            {"openai": settings.openai_url, "anthropic": settings.anthropic_url},
            settings.upstream_timeout,
            settings.connect_timeout,
            settings.max_connections,
        )

    @classmethod
    def to(
        cls,
        urls: Mapping[Provider, str | None],
        *,
        timeout: float = _DEFAULTS["upstream_timeout"],
        connect_timeout: float = _DEFAULTS["connect_timeout"],
        max_connections: int = _DEFAULTS["max_connections"],
    ) -> Upstreams:
        """Clients of these base URLs (as the service's settings take them), without settings."""
        upstreams = cls.__new__(cls)
        upstreams._open(urls, timeout, connect_timeout, max_connections)
        return upstreams

    def _open(
        self,
        urls: Mapping[Provider, str | None],
        timeout: float,
        connect_timeout: float,
        max_connections: int,
    ) -> None:
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self.timeout = timeout
        self.bases: dict[Provider, str] = {}
        self.clients: dict[Provider, httpx.AsyncClient] = {}
        for provider, base in urls.items():
            if base is not None:
                self.bases[provider] = base
                self.clients[provider] = httpx.AsyncClient(
                    timeout=httpx.Timeout(timeout, connect=connect_timeout), limits=limits
                )

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    def _client(self, provider: Provider) -> tuple[httpx.AsyncClient, str]:
        client = self.clients.get(provider)
        if client is None:
            raise NoUpstreamError(
                f"no {provider} upstream is configured: start llmemo with "
                f"{_ENV_HINT[provider]} (or --{provider}-base-url) set, or with --upstream demo"
            )
        return client, self.bases[provider]

    @contextlib.contextmanager
    def _translated(self, provider: Provider) -> Iterator[None]:
        """httpx errors -> 504 (timed out) or 502 (refused, broken), worded for a person."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise UpstreamTimeoutError(
                f"the {provider} upstream at {redact(self.bases[provider])} did not answer "
                f"in time ({type(exc).__name__})"
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamUnreachableError(
                f"cannot reach the {provider} upstream at {redact(self.bases[provider])}: "
                f"{type(exc).__name__}: {exc}"
            ) from None

    async def post(
        self, provider: Provider, path: str, content: bytes, headers: Mapping[str, str]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """POST and return (the JSON answer, headers to pass back but Content-Type); raises on
        any error."""
        client, base = self._client(provider)
        with self._translated(provider):
            response = await client.post(base + path, content=content, headers=headers)
        if not response.is_success:
            raise UpstreamError(
                response.status_code, response.content, answer_headers(response.headers)
            )
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamUnreachableError(
                f"the {provider} upstream answered {response.status_code} without a JSON object"
            )
        passed = answer_headers(response.headers)
        passed.pop("content-type", None)  # the answer is sent re-encoded, with its own type
        return data, passed

    async def open_stream(
        self, provider: Provider, path: str, content: bytes, headers: Mapping[str, str]
    ) -> httpx.Response:
        """POST and return the open streaming response (a 2xx); the caller closes it."""
        client, base = self._client(provider)
        request = client.build_request("POST", base + path, content=content, headers=headers)
        with self._translated(provider):
            response = await client.send(request, stream=True)
            if not response.is_success:
                try:
                    body = await response.aread()
                finally:
                    await response.aclose()
                raise UpstreamError(response.status_code, body, answer_headers(response.headers))
        return response

    async def chunks(self, provider: Provider, response: httpx.Response) -> AsyncIterator[bytes]:
        """The decoded body of an open stream, chunk by chunk (errors translated)."""
        with self._translated(provider):
            async for chunk in response.aiter_bytes():
                yield chunk

    async def get(
        self, provider: Provider, path: str, query: str, headers: Mapping[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        """A GET of `path` under the base URL, passed through: (status, body, headers to pass
        back). A path that would resolve outside the base is refused (never sent)."""
        client, base = self._client(provider)
        url = base + path + (f"?{query}" if query else "")
        if not httpx.URL(url).path.startswith(httpx.URL(base).path.rstrip("/") + "/"):
            raise BadRequestError(f"The path {path!r} is outside the upstream's base path.")
        with self._translated(provider):
            response = await client.get(url, headers=headers)
        return response.status_code, response.content, answer_headers(response.headers)
