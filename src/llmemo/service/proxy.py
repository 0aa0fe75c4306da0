"""The cached endpoints: parse the request, ask the cache (which calls the upstream on a miss), respond."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from llmemo.core import AsyncCache
from llmemo.core.facade import Result
from llmemo.core.request import (
    ANSWER_HEADERS,
    CacheRequest,
    from_anthropic,
    from_openai,
    responses_bypass,
    with_answer_headers,
)
from llmemo.core.streaming import USAGE_ON_REQUEST, Shape, replay
from llmemo.service.access import SharedAccess
from llmemo.service.controls import (
    Controls,
    namespace_of,
    plain_controls,
    plain_request,
    read_controls,
    tenant_of,
)
from llmemo.service.errors import (
    BadRequestError,
    ClientGoneError,
    Flavour,
    PayloadTooLargeError,
    ServiceError,
)
from llmemo.service.hot import HotAnswers
from llmemo.service.metrics import Metrics
from llmemo.service.ratelimit import RateLimits
from llmemo.service.relay import SSE_TYPE, Relay, RelayResponse
from llmemo.service.settings import Settings
from llmemo.service.telemetry import answered
from llmemo.service.upstream import Provider, Upstreams, forward_headers

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from llmemo.service.telemetry import Telemetry

log = logging.getLogger("llmemo.service")


@dataclass(frozen=True)
class Endpoint:
    """A cached route: where it is forwarded and how its requests and streams are read."""

    path: str
    provider: Provider
    kind: str  # the request normaliser's endpoint name
    upstream_path: str  # appended to the provider's base URL
    shape: Shape | None  # its stream format; None when it does not stream

    @property
    def flavour(self) -> Flavour:
        return self.provider


ENDPOINTS = (
    Endpoint("/v1/chat/completions", "openai", "chat", "/chat/completions", "chat"),
    Endpoint("/v1/completions", "openai", "completions", "/completions", "completion"),
    Endpoint("/v1/embeddings", "openai", "embeddings", "/embeddings", None),
    Endpoint("/v1/responses", "openai", "responses", "/responses", "response"),
    Endpoint("/v1/messages", "anthropic", "messages", "/v1/messages", "message"),
)


def header_dict(scope: Scope) -> dict[str, str]:
    """The request headers as a plain dict (read several times per request; a dict is fastest)."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


async def read_body(request: Request, limit: int) -> bytes:
    """The body of a Starlette request, as `read_received` reads it."""
    return await read_received(request.receive, limit, request.headers.get("content-length"))


async def read_received(receive: Receive, limit: int, declared: str | None) -> bytes:
    """The request body from the ASGI channel, refused with 413 as soon as it is known to be over
    `limit` bytes (by its Content-Length, else while it arrives); a client that hangs up
    meanwhile raises ClientGoneError. (How long a body may take is the server's limit:
    `body_timeout`, service/server.py.)"""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(_too_large(int(declared), limit))
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # not a server error: said at debug level only
            log.debug("the client disconnected before sending the whole request body")
            raise ClientGoneError("The client disconnected before sending the whole body.")
        part = message.get("body", b"")
        size += len(part)
        if size > limit:
            raise PayloadTooLargeError(_too_large(size, limit))
        if not message.get("more_body", False):
            return b"".join((*parts, part)) if parts else part
        parts.append(part)


def _too_large(size: int, limit: int) -> str:
    return (
        f"The request body ({size} bytes or more) is over this service's limit of {limit} bytes "
        "(LLMEMO_MAX_BODY_BYTES)."
    )


@dataclass(frozen=True)
class Parsed:
    """What a request body says: its canonical request and how it wants to be answered."""

    canonical: CacheRequest
    stream: bool
    include_usage: bool
    bypass: bool = False  # it depends on state kept by the provider (`responses_bypass`)
    skips_semantic: bool = False  # its body is over `semantic_max_body_bytes`


def read_request(endpoint: Endpoint, raw: bytes) -> Parsed:
    """Parse and normalise a body; small bodies are memoised (a repeated request is parsed once)."""
    if len(raw) <= _MEMO_BYTES:
        return _read_request_memo(endpoint, raw)
    return _read_request(endpoint, raw)


def _read_request(endpoint: Endpoint, raw: bytes) -> Parsed:
    body, canonical = parse(endpoint, raw)
    bypass = endpoint.kind == "responses" and responses_bypass(body) is not None
    return Parsed(canonical, body.get("stream") is True, _include_usage(body), bypass)


_MEMO_BYTES = 16 * 1024
_read_request_memo = functools.lru_cache(maxsize=1024)(_read_request)


def parse(endpoint: Endpoint, raw: bytes) -> tuple[dict[str, Any], CacheRequest]:
    """The JSON body and its canonical request; BadRequestError / UnkeyableError (400) otherwise."""
    if not raw.strip():
        raise BadRequestError("The request body is empty: send a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise BadRequestError(f"The request body must be a JSON object, not {type(body).__name__}.")
    if endpoint.provider == "anthropic":
        return body, from_anthropic(body)
    return body, from_openai(body, endpoint.kind)


def cache_headers(result: Result) -> dict[str, str]:
    headers: dict[str, str] = {"x-llmemo-cache": result.status}
    if result.cached:
        headers["age"] = str(int(result.hit.age)) if result.hit is not None else "0"
    return headers


_JSON_TYPE = (b"content-type", b"application/json")
_HIT = (b"x-llmemo-cache", b"hit")


class Answer:
    """A complete JSON answer as an ASGI app: what a Starlette Response sends for it, built with
    less work (this is every cache hit's answer). `headers` follow Content-Length and -Type."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, body: bytes, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.body = body
        self.status = status
        self.headers = [(b"content-length", str(len(body)).encode()), _JSON_TYPE, *headers]

    @classmethod
    def of(cls, body: Any, status: int, headers: Mapping[str, str]) -> Answer:
        """The answer of a JSON-serialisable body, with these headers."""
        encoded = [
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
        ]
        return cls(orjson.dumps(body), status, encoded)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def _answer_headers(headers: Mapping[str, str]) -> str:
    """The request headers that change the answer (`ANSWER_HEADERS`), for the hot answers' key."""
    found = [headers.get(name) for name in ANSWER_HEADERS]
    return "" if not any(found) else "\n".join(value or "" for value in found)


def _include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, Mapping) and bool(options.get("include_usage"))


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a failure is answered or counted, never "never retrieved"


class Proxy:
    """The handlers of the cached routes, around one cache and the upstream clients."""

    def __init__(
        self,
        cache: AsyncCache,
        upstreams: Upstreams,
        metrics: Metrics,
        settings: Settings,
        limits: RateLimits | None = None,
    ) -> None:
        self.cache = cache
        self.upstreams = upstreams
        self.metrics = metrics
        self.settings = settings
        self.limits = limits  # its miss limit is checked by the leader, before going upstream
        self.hot = HotAnswers(cache, metrics)
        self.access = SharedAccess(settings, upstreams)
        self.shared_names = frozenset(settings.shared_namespaces)
        self.telemetry: Telemetry | None = None  # set by the app with `otel` on

    def shares(self, headers: Mapping[str, str]) -> bool:
        """The request's namespace is shared (`--shared`, or one of `shared_namespaces`)."""
        if self.settings.shared:
            return True
        if not self.shared_names:
            return False
        return (namespace_of(headers) or self.settings.namespace) in self.shared_names

    async def handle(self, endpoint: Endpoint, scope: Scope, receive: Receive) -> ASGIApp:
        """The answer to one request on a cached route (an ASGI app to send it with)."""
        started = time.perf_counter()
        received = header_dict(scope)
        raw = await read_received(
            receive, self.settings.max_body_bytes, received.get("content-length")
        )
        shared = self.shares(received)
        writer = True  # isolated: each caller only writes its own tenant's entries
        if shared:  # a credential the service accepts, before any hit
            writer = await self.access.check(endpoint.provider, received)
        hot_key = None
        controls = None
        if plain_request(received):  # no control header: maybe a hot answer (service/hot.py)
            tenant = tenant_of(received, shared)
            hot_key = (endpoint.path, raw, tenant, _answer_headers(received))
            looked = 0 if self.telemetry is None else time.time_ns()
            hot = await self.hot.get(hot_key)
            if hot is not None and self.telemetry is not None:  # its lookup span, after the fact
                self.telemetry.hot_lookup(looked, namespace_of(received) or self.settings.namespace)
            if hot is not None:
                body, headers = await self.hot.answer(
                    endpoint.path, hot, time.perf_counter() - started
                )
                if self.telemetry is not None:
                    self._annotate(endpoint, received, tenant, hot.model, None)
                return Answer(body, 200, headers)
            controls = plain_controls(tenant)
        parsed = read_request(endpoint, raw)  # a bad body is reported before a bad header
        if controls is None:
            controls = read_controls(received, shared)
        canonical = with_answer_headers(parsed.canonical, received)
        if canonical.semantic_text is not None and len(raw) > self.settings.semantic_max_body_bytes:
            parsed = replace(parsed, skips_semantic=True)  # an exact lookup only
            canonical = replace(canonical, semantic_text=None)
        if canonical is not parsed.canonical:
            parsed = replace(parsed, canonical=canonical)
        if parsed.bypass:  # as `Cache-Control: no-cache, no-store`: neither look up nor store
            controls = replace(controls, refresh=True, no_store=True)
        elif controls.refresh and not writer:  # a fresh answer for it, not one for everyone
            controls = replace(controls, no_store=True)
        if endpoint.shape is not None and parsed.stream:
            return await self.stream(endpoint, parsed, raw, controls, received, started)
        passed: dict[str, str] = {}

        async def call() -> dict[str, Any]:
            if self.limits is not None:
                await self.limits.check_miss(controls.tenant, endpoint.flavour)
            sent = time.perf_counter()
            headers = forward_headers(received)
            try:
                with self._upstream_span(endpoint, canonical.model, headers) as span:
                    data, answer = await self.upstreams.post(
                        endpoint.provider, endpoint.upstream_path, raw, headers
                    )
                    if span is not None:
                        answered(span, data)
            except ServiceError as exc:
                self.metrics.upstream_failed(endpoint.path, exc)
                raise
            finally:
                self.metrics.upstream_took(endpoint.path, time.perf_counter() - sent)
            passed.update(answer)
            return data

        result = await self.compute(parsed, controls, call)
        self.metrics.record(
            endpoint.path,
            canonical.model,
            result,
            time.perf_counter() - started,
            controls.namespace,
            controls.tenant,
        )
        if self.telemetry is not None:
            self._annotate(endpoint, received, controls.tenant, canonical.model, result)
        if result.status == "hit" and result.hit is not None and not passed:  # every hit's path
            age = (b"age", b"%d" % int(result.hit.age))
            answer = Answer(orjson.dumps(result.response), 200, [_HIT, age])
        else:
            sent = {
                **passed,
                **cache_headers(result),
                **await self.report_key(parsed, controls, result),
            }
            answer = Answer.of(result.response, 200, sent)
        if hot_key is not None and not parsed.bypass:
            self.hot.learn(hot_key, canonical, controls.tenant, result, answer.body)
        return answer

    def _annotate(
        self,
        endpoint: Endpoint,
        received: Mapping[str, str],
        tenant: str | None,
        model: str | None,
        result: Result | None,
    ) -> None:
        """The request's attributes on its server span (with `otel` on)."""
        assert self.telemetry is not None
        namespace = namespace_of(received) or self.settings.namespace
        self.telemetry.annotate(endpoint.kind, endpoint.provider, model, namespace, tenant, result)

    @contextlib.contextmanager
    def _upstream_span(
        self, endpoint: Endpoint, model: str | None, headers: dict[str, str]
    ) -> Iterator[Span | None]:
        """The upstream call's CLIENT span (None with `otel` off); `headers` get its traceparent."""
        if self.telemetry is None:
            yield None
            return
        base = self.upstreams.bases.get(endpoint.provider)
        with self.telemetry.upstream(
            endpoint.path, endpoint.kind, endpoint.provider, base, model, headers
        ) as span:
            yield span

    async def report_key(
        self, parsed: Parsed, controls: Controls, result: Result
    ) -> dict[str, str]:
        """A semantic hit's `x-llmemo-key`: the key it was backfilled under, to report it by
        (`POST /admin/feedback`); nothing for other answers."""
        if result.status != "semantic":
            return {}
        return {"x-llmemo-key": await self.cache.entry_key(parsed.canonical, **controls.scope())}

    async def compute(
        self, parsed: Parsed, controls: Controls, call: Callable[[], Awaitable[dict[str, Any]]]
    ) -> Result:
        """The cache's answer; an exact miss that skipped the semantic layer for its body's size
        is counted (`semantic_skipped:body_size`), as the layer counts the texts it skips."""
        result = await self.cache.compute(parsed.canonical, call, **controls.options())
        if (
            parsed.skips_semantic
            and result.status == "miss"
            and not controls.refresh
            and self.cache.semantic is not None
        ):
            self.cache.count("semantic_skipped:body_size")
        return result

    async def stream(
        self,
        endpoint: Endpoint,
        parsed: Parsed,
        raw: bytes,
        controls: Controls,
        received: Mapping[str, str],
        started: float,
    ) -> Response:
        """A stream request: relay the upstream's stream on a miss, replay the entry on a hit.

        Followers of an in-flight identical request wait for the leader's whole answer, then get
        it replayed (they do not share the leader's live stream).
        """
        assert endpoint.shape is not None
        include_usage = parsed.include_usage
        content = raw
        hide_usage = (
            self.settings.stream_usage and endpoint.shape in USAGE_ON_REQUEST and not include_usage
        )
        if hide_usage:  # ask for usage so the entry has token counts; the client will not see it
            body = orjson.loads(raw)
            options = body.get("stream_options")
            extra = dict(options) if isinstance(options, Mapping) else {}
            content = orjson.dumps({**body, "stream_options": {**extra, "include_usage": True}})
        relay = Relay(
            self.upstreams,
            endpoint.provider,
            endpoint.upstream_path,
            content,
            forward_headers(received),
            endpoint.shape,
            endpoint.flavour,
            hide_usage,
        )
        task = asyncio.ensure_future(
            self._compute_stream(endpoint, parsed, controls, relay, received, started)
        )
        task.add_done_callback(_consume)
        waiting: list[asyncio.Future[Any]] = [task, relay.started]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if relay.started.done():
            status = "miss" if controls.cacheable else "bypass"
            return RelayResponse(relay, task, {**relay.started.result(), "x-llmemo-cache": status})
        result = task.result()
        body_bytes = replay(endpoint.shape, result.response, include_usage)
        sent = {**cache_headers(result), **await self.report_key(parsed, controls, result)}
        return Response(body_bytes, 200, sent, media_type=SSE_TYPE)

    async def _compute_stream(
        self,
        endpoint: Endpoint,
        parsed: Parsed,
        controls: Controls,
        relay: Relay,
        received: Mapping[str, str],
        started: float,
    ) -> Result:
        async def call() -> dict[str, Any]:
            if self.limits is not None:
                await self.limits.check_miss(controls.tenant, endpoint.flavour)
            sent = time.perf_counter()
            headers = dict(relay.headers)
            try:
                with self._upstream_span(endpoint, parsed.canonical.model, headers) as span:
                    relay.headers = headers
                    data = await relay()
                    if span is not None:
                        answered(span, data)
                    return data
            except Exception as exc:
                self.metrics.upstream_failed(endpoint.path, exc)
                raise
            finally:
                self.metrics.upstream_took(endpoint.path, time.perf_counter() - sent)

        result = await self.compute(parsed, controls, call)
        self.metrics.record(
            endpoint.path,
            parsed.canonical.model,
            result,
            time.perf_counter() - started,
            controls.namespace,
            controls.tenant,
        )
        if self.telemetry is not None:
            self._annotate(endpoint, received, controls.tenant, parsed.canonical.model, result)
        return result
