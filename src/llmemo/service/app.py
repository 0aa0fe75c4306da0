"""The app factory: routes, and a lifespan that owns one AsyncCache and the upstream clients."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from llmemo.core.breaker import CircuitBreaker
from llmemo.errors import LLMemoError, StoreError
from llmemo.service import admin_stats
from llmemo.service.admin import AdminAuth, admin_only
from llmemo.service.admin_stats import rollups_for
from llmemo.service.dashboard import dashboard_routes
from llmemo.service.entries import entry_routes
from llmemo.service.erase import drop_copies, wipe_route
from llmemo.service.errors import (
    HeadersTooLargeError,
    error_response,
    flavour_of,
    handle_exception,
    json_response,
)
from llmemo.service.feedback import feedback_routes
from llmemo.service.metrics import CONTENT_TYPE, MeteredCache, Metrics
from llmemo.service.openapi import document
from llmemo.service.proxy import ENDPOINTS, Endpoint, Proxy
from llmemo.service.rollups import Rollups
from llmemo.service.server import WORKER_SETTINGS
from llmemo.service.settings import Settings, load_settings
from llmemo.service.upstream import Provider, Upstreams, forward_headers, models_path
from llmemo.service.warm import Warming
from llmemo.stores.base import async_from_url, redact, store_url

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from llmemo.core.verify import AsyncLLMVerifier
    from llmemo.service.telemetry import Telemetry


class Service:
    """What one running app holds; `proxy` exists between lifespan start and end."""

    def __init__(
        self,
        settings: Settings,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.settings = settings
        self.telemetry: Telemetry | None = None
        self.metrics = Metrics(max_models=settings.max_model_labels)
        if settings.otel:  # MissingExtraError (a one-line hint) without the `otel` extra
            from llmemo.service.telemetry import Telemetry, TracedMetrics

            traced = TracedMetrics(max_models=settings.max_model_labels)
            self.telemetry = traced.telemetry = Telemetry(traced, tracer_provider, meter_provider)
            self.metrics = traced
        self.store_url = store_url(settings.store)
        self.warming = Warming(settings, self.metrics, self.store_url)
        self.rollups: Rollups | None = None
        if settings.dashboard:  # the request path counts into it, via the metrics
            self.rollups = rollups_for(settings, self.warming)
            self.metrics.collect_into(self.rollups)
        self.admin = AdminAuth(settings.admin_token)
        self._proxy: Proxy | None = None
        self._openapi: bytes | None = None

    @property
    def proxy(self) -> Proxy:
        if self._proxy is None:
            raise RuntimeError("the llmemo app is not started (run it with its lifespan)")
        return self._proxy

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        options: dict[str, object] = {
            "namespace": self.settings.namespace,
            "breaker": CircuitBreaker(reset=self.settings.store_retry),
            "near": self.settings.near_ttl,
            "max_ttl": self.settings.max_ttl,
            "max_entry_bytes": self.settings.max_entry_bytes,
            "sensitive": self.settings.sensitive_policy(),
        }
        if self.settings.encryption_keys is not None:
            options["encryption"] = self.settings.encryption_keys.get_secret_value()
            options["encryption_required"] = self.settings.encryption_required
        if self.settings.ttl is not None:
            options["ttl"] = self.settings.ttl
        if self.settings.stale_grace is not None:
            options["stale_grace"] = self.settings.stale_grace
        if self.settings.semantic:
            from llmemo.core.feedback import FeedbackLimits
            from llmemo.core.semantic import AsyncSemanticLayer

            options["feedback"] = FeedbackLimits(
                hits=self.settings.semantic_hit_log, hits_ttl=self.settings.semantic_hit_log_ttl
            )

            max_error = self.settings.semantic_max_error
            options["semantic"] = AsyncSemanticLayer(
                self.settings.semantic_embedder,
                threshold=self.settings.semantic_threshold,
                verifier=self._verifier(),
                max_error=max_error,
                judge=None if max_error is None else self.settings.semantic_judge,
            )
        cache = MeteredCache(async_from_url(self.store_url), metrics=self.metrics, **options)
        if self.telemetry is not None:  # the lookup's spans go to the service's provider
            cache.tracer = self.telemetry.tracer
        self.metrics.watch_circuit(lambda: cache.breaker.state)
        if self.rollups is not None:
            self.rollups.attach(cache)
        upstreams = Upstreams(self.settings)
        await self.warming.open(cache, upstreams)
        self._proxy = Proxy(cache, upstreams, self.metrics, self.settings, self.warming.limits)
        self._proxy.telemetry = self.telemetry
        drop_copies(self._proxy)
        if self.settings.gc_freeze:
            freeze_heap()
        try:
            yield
        finally:
            self._proxy = None
            await self.warming.aclose()
            if self.rollups is not None:  # its last write, before the store closes
                await self.rollups.aclose()
            await cache.close()  # first: its background refreshes still call the upstreams
            await upstreams.aclose()

    def _verifier(self) -> AsyncLLMVerifier | None:
        """The LLM check of borderline semantic matches, when `semantic_verifier` names a model."""
        settings = self.settings
        if settings.semantic_verifier is None:
            return None
        from llmemo.core.verify import AsyncLLMVerifier

        key = settings.semantic_verifier_api_key
        return AsyncLLMVerifier(
            settings.semantic_verifier,
            base_url=settings.openai_url,
            api_key=None if key is None else key.get_secret_value(),
        )

    async def healthz(self, request: Request) -> Response:
        """The process is up (says nothing about the store or the upstream)."""
        return json_response({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        """Whether the store answers; when it does not, requests still succeed (failing open).

        200 in both cases (the service answers either way); `?strict=1` turns degraded into 503.
        """
        cache = self.proxy.cache
        problem = None
        try:
            await asyncio.wait_for(cache.backend.ping(), self.settings.ready_timeout)
        except (StoreError, TimeoutError) as exc:
            problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        circuit = cache.breaker.state
        body: dict[str, object] = {"store": redact(self.store_url), "circuit": circuit}
        if problem is None and circuit == "closed":
            body.update(status="ok", detail="store reachable")
        else:
            body.update(
                status="degraded",
                detail=(
                    f"store unreachable ({problem}): failing open, every request goes upstream"
                    if problem is not None
                    else "store reachable again: its circuit closes on the next successful request"
                ),
            )
        strict = request.query_params.get("strict") in ("1", "true")
        return json_response(body, 503 if strict and body["status"] != "ok" else 200)

    async def openapi(self, request: Request) -> Response:
        """The OpenAPI document of the routes (service/openapi.py)."""
        if self._openapi is None:
            self._openapi = orjson.dumps(document())
        return Response(self._openapi, media_type="application/json")

    async def admin_stats(self, request: Request) -> Response:
        """GET /admin/stats (service/admin_stats.py), behind the admin token."""
        return await admin_stats.answer(request, self.rollups, self.proxy.cache)

    async def prometheus(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    async def models(self, request: Request) -> Response:
        """GET /v1/models[/id], passed through to the provider the caller's SDK speaks to."""
        provider: Provider = "anthropic" if "anthropic-version" in request.headers else "openai"
        model = request.path_params.get("model")  # decoded: %2e%2e, %2F... are checked as such
        path = models_path("" if model is None else "/" + model)
        if provider == "anthropic":
            path = "/v1" + path
        status, body, headers = await self.proxy.upstreams.get(
            provider, path, request.url.query, forward_headers(request.headers)
        )
        return Response(body, status, headers)


class CachedRoute:
    """The ASGI app of a cached route: no Starlette Request or Response on the hit path.

    A class, not a function: Starlette wraps a function endpoint in its request/response adapter.
    Inside the router, errors go up to the app's exception handlers as from any route.
    """

    def __init__(self, service: Service, endpoint: Endpoint) -> None:
        self.service = service
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = await self.service.proxy.handle(self.endpoint, scope, receive)
        await answer(scope, receive, send)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a request that skipped the router (`ServiceApp`): errors are answered with the
        same handler the router's would use, and an internal one is then raised for the server
        to log, as Starlette does."""
        try:
            answer = await self.service.proxy.handle(self.endpoint, scope, receive)
        except Exception as exc:
            response = await handle_exception(Request(scope), exc)
            await response(scope, receive, send)
            if not isinstance(exc, HTTPException | LLMemoError):
                raise
            return
        await answer(scope, receive, send)


class ServiceApp(Starlette):
    """The service's Starlette app, with the cached routes' POSTs dispatched before the router.

    Routing and the error middlewares cost about a fifth of a cache hit's time in the app; a
    POST on a cached path goes straight to its route (other requests, and any under a root path,
    take the router, where the same routes are mounted). Requests whose headers are over
    `max_header_bytes` are answered 431 first (under `llmemo serve` the server already refused
    them while they arrived; this holds under any other ASGI server).
    """

    def __init__(
        self,
        cached: list[CachedRoute],
        *,
        max_header_bytes: int = 64 * 1024,
        telemetry: Telemetry | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.telemetry = telemetry  # None: no span object is built (service/telemetry.py)
        self.cached = {route.endpoint.path: route for route in cached}
        # Starlette's own redirect builds an absolute Location from the Host header; ours is a
        # relative one (`slash_redirect`).
        self.router.redirect_slashes = False
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.telemetry is not None and scope["type"] == "http" and _TRACED not in scope:
            scope[_TRACED] = True  # the server span is open: dispatch below
            await self.telemetry.serve(self, scope, receive, send)
            return
        if scope["type"] == "http":
            size = 0
            for name, value in scope["headers"]:  # ~1 us for a dozen headers (a generator: 1.3)
                size += len(name) + len(value) + 4
            if size > self.max_header_bytes:
                problem = HeadersTooLargeError(
                    f"The request headers ({size} bytes) are over this service's limit of "
                    f"{self.max_header_bytes} bytes (LLMEMO_MAX_HEADER_BYTES)."
                )
                request = Request(scope)
                await error_response(problem, flavour_of(request))(scope, receive, send)
                return
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            route = self.cached.get(scope["path"])
            if route is not None:
                scope["app"] = self
                await route.serve(scope, receive, send)
                return
        if scope["type"] == "http" and scope["path"].endswith("/"):
            location = self.slash_redirect(scope)
            if location is not None:
                await RedirectResponse(location, 307)(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def slash_redirect(self, scope: Scope) -> str | None:
        """The relative URL without the trailing slash, when only that one is a route."""
        path: str = scope["path"]
        if path == "/" or any(r.matches(scope)[0] is not Match.NONE for r in self.router.routes):
            return None
        target = path.rstrip("/")
        stripped = {**scope, "path": target}
        if not any(r.matches(stripped)[0] is not Match.NONE for r in self.router.routes):
            return None
        query = scope.get("query_string", b"").decode("latin-1")
        return target + (f"?{query}" if query else "")


_TRACED = "llmemo.traced"
_frozen = False


def freeze_heap() -> None:
    """Collect, then freeze what is alive (once per process): later collections skip it."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def worker_environment(settings: Settings) -> dict[str, str]:
    """The environment variable that gives `worker_app` these exact settings (secrets included:
    it goes only to the worker processes this one starts)."""
    values = {
        name: value.get_secret_value() if isinstance(value, SecretStr) else value
        for name, value in settings.model_dump().items()
    }
    return {WORKER_SETTINGS: json.dumps(values)}


def worker_app() -> Starlette:
    """The app of one `llmemo serve --workers N` process (a uvicorn factory)."""
    raw = os.environ.get(WORKER_SETTINGS)
    settings = Settings(**json.loads(raw)) if raw else load_settings()
    if settings.otel:  # each process exports its own spans and metrics
        from llmemo.service.telemetry import install_sdk

        install_sdk()
    return create_app(settings)


def create_app(
    settings: Settings,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> Starlette:
    """The llmemo service as an ASGI app (run it with uvicorn, lifespan on).

    With `settings.otel`, spans and metrics go to these OpenTelemetry providers (None: the global
    ones, which `llmemo serve --otel` sets up; docs/service.md, "OpenTelemetry")."""
    service = Service(settings, tracer_provider, meter_provider)
    cached = [CachedRoute(service, e) for e in ENDPOINTS]
    if service.telemetry is not None:
        service.telemetry.cached_routes = frozenset(e.path for e in ENDPOINTS)
    routes = [Route(route.endpoint.path, route, methods=["POST"]) for route in cached]
    routes += [
        Route("/v1/models", service.models, methods=["GET"]),
        Route("/v1/models/{model:path}", service.models, methods=["GET"]),
        Route("/healthz", service.healthz, methods=["GET"]),
        Route("/readyz", service.readyz, methods=["GET"]),
        Route("/metrics", service.prometheus, methods=["GET"]),
        Route("/openapi.json", service.openapi, methods=["GET"]),
        Route("/admin/stats", admin_only(service.admin, service.admin_stats), methods=["GET"]),
        *service.warming.routes(),
        *feedback_routes(service),
        *entry_routes(service.admin, lambda: service.proxy.cache, settings.namespace),
        Route("/admin/wipe", admin_only(service.admin, wipe_route(service)), methods=["POST"]),
    ]
    if settings.dashboard:
        routes += dashboard_routes(service.admin, settings.dashboard_show_prompts)
    app = ServiceApp(
        cached,
        max_header_bytes=settings.max_header_bytes,
        telemetry=service.telemetry,
        routes=routes,
        lifespan=service.lifespan,
        exception_handlers={
            HTTPException: handle_exception,
            LLMemoError: handle_exception,
            Exception: handle_exception,
        },
    )
    app.state.service = service
    if service.telemetry is not None:
        service.telemetry.routes = app.router.routes
    return app
