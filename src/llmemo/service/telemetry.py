"""OpenTelemetry for `llmemo serve --otel` (extra `otel`): spans per request, metrics by a Meter.

Built only when the setting is on; otherwise the service holds None and builds no span object.
Span tree of a cached route (docs/service.md, "OpenTelemetry"):

    POST /v1/chat/completions         SERVER  (joins the caller's trace from `traceparent`)
      llmemo.lookup                   INTERNAL (exact lookup; embedding and vector search below it)
      chat gpt-4o                     CLIENT  (the upstream call, on a miss; `traceparent` sent)

Attributes follow the HTTP and GenAI semantic conventions; llmemo's own are `llmemo.*`. Never a
prompt, an answer or a credential: the tenant is its opaque id.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmemo.core.entry import usage_of
from llmemo.core.facade import Result
from llmemo.errors import MissingExtraError
from llmemo.service.metrics import Metrics
from llmemo.telemetry import HINT, load, tracer_of

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter, MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

OPERATIONS = {  # endpoint kind -> gen_ai.operation.name
    "chat": "chat",
    "messages": "chat",
    "responses": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}
_BRIDGED = (  # Prometheus counters published as they are (name, unit, description)
    ("store_errors", "{error}", "Store operations that failed (the cache failed open)."),
    ("upstream_errors", "{error}", "Upstream failures by route and reason."),
    ("rate_limited", "{request}", "Requests answered 429 by llmemo's own rate limits, by limit."),
    ("ratelimit_errors", "{error}", "Rate-limit checks that failed (the request was let through)."),
    ("warm_items", "{item}", "Items handled by /v1/warm, by result (stored, fresh, failed)."),
)
_HIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Telemetry:
    """The service's tracer, propagator and OTel instruments (the same figures as /metrics)."""

    def __init__(
        self,
        metrics: Metrics,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        trace = load()
        from opentelemetry import metrics as otel_metrics
        from opentelemetry import propagate

        self.trace = trace
        self.propagate = propagate
        from llmemo import __version__

        self.tracer: Tracer = tracer_of(tracer_provider, __version__)
        self.cached_routes: frozenset[str] = frozenset()  # paths served before the router
        self.routes: Sequence[BaseRoute] = ()  # the router's, to name a span on Starlette < 0.39

        meter: Meter = otel_metrics.get_meter("llmemo", __version__, meter_provider=meter_provider)
        # Answers are counted in these dicts (plain arithmetic on the request's path: an SDK
        # counter's add() costs ~10 us) and read by observable counters at export.
        self._requests: dict[tuple[str, str, str], int] = {}
        self._tokens: dict[tuple[str, str], int] = {}
        self._dollars: dict[tuple[str, str], float] = {}
        meter.create_observable_counter(
            "llmemo.requests",
            [self._observer(self._requests, ("route", "model", "cache"))],
            "{request}",
            "Answers by route, model and cache result.",
        )
        meter.create_observable_counter(
            "llmemo.tokens_saved",
            [self._observer(self._tokens, ("route", "model"))],
            "{token}",
            "Tokens answered from the cache.",
        )
        meter.create_observable_counter(
            "llmemo.dollars_saved",
            [self._observer(self._dollars, ("route", "model"))],
            "USD",
            "List-price USD of the tokens answered from the cache.",
        )
        self.hit_latency = meter.create_histogram(
            "llmemo.hit_latency",
            "s",
            "Time to answer a request from the cache.",
            explicit_bucket_boundaries_advisory=_HIT_BUCKETS,
        )
        self.upstream_latency = meter.create_histogram(
            "llmemo.upstream_latency",
            "s",
            "Time the upstream took (to the end of the stream for streams).",
            explicit_bucket_boundaries_advisory=_UPSTREAM_BUCKETS,
        )
        self._registry = metrics.registry
        self._routes: dict[str, dict[str, str]] = {}  # route -> its attributes, built once
        for name, unit, description in _BRIDGED:  # counted as they happen: read at export
            meter.create_observable_counter(
                f"llmemo.{name}", [self._reader(f"llmemo_{name}_total")], unit, description
            )
        meter.create_observable_gauge(
            "llmemo.store_circuit_open",
            [self._reader("llmemo_store_circuit_open")],
            "1",
            "1 while the store's circuit breaker is open (requests skip the store).",
        )

    # -- metrics --

    def count(self, route: str, model: str, status: str) -> None:
        labels = (route, model, status)
        self._requests[labels] = self._requests.get(labels, 0) + 1

    def count_cached(
        self, route: str, model: str, status: str, saved: tuple[int, float], seconds: float
    ) -> None:
        self.count(route, model, status)
        attributes = self._routes.get(route)
        if attributes is None:
            attributes = self._routes[route] = {"route": route}
        self.hit_latency.record(seconds, attributes)
        if saved[0]:
            labels = (route, model)
            self._tokens[labels] = self._tokens.get(labels, 0) + saved[0]
            if saved[1]:
                self._dollars[labels] = self._dollars.get(labels, 0.0) + saved[1]

    @staticmethod
    def _observer(
        counts: dict[Any, int] | dict[Any, float], names: tuple[str, ...]
    ) -> Callable[[Any], list[Any]]:
        """An observable counter's callback over one of the dicts answers are counted in (read
        from the exporter's thread: `dict.copy` is atomic under the GIL)."""
        from opentelemetry.metrics import Observation

        def observe(options: Any) -> list[Any]:
            return [
                Observation(value, dict(zip(names, labels, strict=True)))
                for labels, value in counts.copy().items()
            ]

        return observe

    def _reader(self, name: str) -> Callable[[Any], list[Any]]:
        """An observable instrument's callback: the Prometheus samples called `name` (their
        counters are thread-safe; the exporter reads them from its own thread)."""
        from opentelemetry.metrics import Observation

        def observe(options: Any) -> list[Any]:
            return [
                Observation(sample.value, dict(sample.labels))
                for family in self._registry.collect()
                for sample in family.samples
                if sample.name == name
            ]

        return observe

    # -- spans --

    def server(self, app: ASGIApp) -> ASGIApp:
        """`app` with a SERVER span around each HTTP request, in the caller's trace."""

        async def traced(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            await self.serve(app, scope, receive, send)

        return traced

    async def serve(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        trace = self.trace
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in (b"traceparent", b"tracestate", b"baggage")
        }
        method = scope["method"]
        span = self.tracer.start_span(
            method,
            self.propagate.extract(carrier),
            kind=trace.SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": scope["path"],
                "url.scheme": scope.get("scheme", "http"),
            },
        )
        sent = False

        async def send_traced(message: Message) -> None:
            nonlocal sent
            if message["type"] == "http.response.start":
                status = int(message["status"])
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(trace.StatusCode.ERROR)
                for name, value in message.get("headers", ()):
                    if name == b"x-llmemo-cache":
                        span.set_attribute("llmemo.cache.status", value.decode("latin-1"))
                sent = True
            await send(message)

        with trace.use_span(span, end_on_exit=True, record_exception=True):
            try:
                await app(scope, receive, send_traced)
            except BaseException:
                if not sent:
                    span.set_attribute("http.response.status_code", 500)
                span.set_attribute("error.type", "500")
                raise
            finally:
                template = self.template(scope)
                if template is not None:
                    span.set_attribute("http.route", template)
                    span.update_name(f"{method} {template}")

    def template(self, scope: Scope) -> str | None:
        """The route template a request took (`http.route`), None for no route."""
        route = scope.get("route")  # set by the router on newer Starlette releases
        if route is None:
            if scope["path"] in self.cached_routes:
                return str(scope["path"])  # dispatched before the router (ServiceApp)
            route = next((r for r in self.routes if r.matches(scope)[0] is Match.FULL), None)
        template = getattr(route, "path", None)
        return template if isinstance(template, str) else None

    def annotate(
        self,
        kind: str,
        provider: str,
        model: str | None,
        namespace: str,
        tenant: str | None,
        result: Result | None = None,
    ) -> None:
        """The request's cache and GenAI attributes, on the current (server) span."""
        span = self.trace.get_current_span()
        if not span.is_recording():
            return
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": OPERATIONS.get(kind, kind),
            "gen_ai.provider.name": provider,
            "gen_ai.system": provider,
            "llmemo.namespace": namespace,
        }
        if model:
            attributes["gen_ai.request.model"] = model
        if tenant is not None:
            attributes["llmemo.tenant"] = tenant
        if result is not None:  # llmemo.cache.status: from the answer's X-LLMemo-Cache (serve)
            hit = result.hit
            if hit is not None:
                attributes["llmemo.cache.age"] = float(hit.age)
                if hit.similarity is not None:
                    attributes["llmemo.semantic.similarity"] = float(hit.similarity)
            if result.cached:
                usage = hit.usage if hit is not None else usage_of(result.response)
                attributes["llmemo.tokens_saved"] = usage.total
            else:
                usage = usage_of(result.response)
                attributes["gen_ai.usage.input_tokens"] = usage.input_tokens
                attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
        span.set_attributes(attributes)

    def hot_lookup(self, started: int, namespace: str) -> None:
        """The `llmemo.lookup` span of a hit answered from its kept bytes (service/hot.py),
        from `started` (ns) to now. A miss there records none: the cache's lookup follows."""
        span = self.tracer.start_span(
            "llmemo.lookup",
            attributes={"llmemo.namespace": namespace, "llmemo.cache.status": "hit"},
            start_time=started,
        )
        span.end()

    @contextlib.contextmanager
    def upstream(
        self,
        route: str,
        kind: str,
        provider: str,
        base_url: str | None,
        model: str | None,
        headers: dict[str, str],
    ) -> Iterator[Span]:
        """A CLIENT span around an upstream call; `headers` get its `traceparent` (W3C)."""
        trace = self.trace
        operation = OPERATIONS.get(kind, kind)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": provider,
            "gen_ai.system": provider,
            "http.request.method": "POST",
        }
        if model:
            attributes["gen_ai.request.model"] = model
        if base_url is not None:
            where = urlsplit(base_url)
            if where.hostname:
                attributes["server.address"] = where.hostname
            if where.port:
                attributes["server.port"] = where.port
        name = f"{operation} {model}" if model else operation
        span = self.tracer.start_span(name, kind=trace.SpanKind.CLIENT, attributes=attributes)
        for header in ("traceparent", "tracestate"):
            headers.pop(header, None)  # the caller's: the upstream's parent is this span now
        self.propagate.inject(headers, trace.set_span_in_context(span))
        started = time.perf_counter()
        with trace.use_span(span, end_on_exit=True, record_exception=True):
            try:
                yield span
            except BaseException as exc:
                status = getattr(exc, "status", None)
                if isinstance(status, int):
                    span.set_attribute("http.response.status_code", status)
                span.set_attribute("error.type", str(status or type(exc).__name__))
                raise
            finally:
                self.upstream_latency.record(time.perf_counter() - started, {"route": route})


def answered(span: Span, data: Mapping[str, Any]) -> None:
    """The upstream's answer on its span: status, response model and token usage."""
    if not span.is_recording():
        return
    usage = usage_of(data)
    span.set_attribute("http.response.status_code", 200)
    span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
    model = data.get("model")
    if isinstance(model, str):
        span.set_attribute("gen_ai.response.model", model)


class TracedMetrics(Metrics):
    """The service's Prometheus metrics that also publish each answer through the OTel Meter."""

    telemetry: Telemetry | None = None

    def record(
        self,
        route: str,
        model: str | None,
        result: Result,
        seconds: float,
        namespace: str | None = None,
        tenant: str | None = None,
    ) -> None:
        super().record(route, model, result, seconds, namespace, tenant)
        if not result.cached and self.telemetry is not None:
            self.telemetry.count(route, self.model_label(model), result.status)

    def record_cached(
        self,
        route: str,
        name: str,
        status: str,
        saved: tuple[int, float],
        seconds: float,
        namespace: str | None = None,
        tenant: str | None = None,
    ) -> None:
        super().record_cached(route, name, status, saved, seconds, namespace, tenant)
        if self.telemetry is not None:
            self.telemetry.count_cached(route, name, status, saved, seconds)


def install_sdk() -> str:
    """Global SDK providers exporting over OTLP, unless the application set its own tracer
    provider (e.g. under `opentelemetry-instrument`); says what was done, in a few words.

    The exporters come from `opentelemetry-exporter-otlp` (HTTP, else gRPC), configured by the
    usual OTEL_EXPORTER_OTLP_* variables; without it spans and metrics are recorded but not sent.
    """
    trace = load()
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return "the application's providers"
    try:
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise MissingExtraError(HINT) from None
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "llmemo")})
    tracer_provider = TracerProvider(resource=resource)
    readers = []
    exporters = _otlp_exporters()
    if exporters is not None:
        tracer_provider.add_span_processor(BatchSpanProcessor(exporters[0]))
        readers.append(PeriodicExportingMetricReader(exporters[1]))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    if exporters is None:
        return "no exporter: pip install opentelemetry-exporter-otlp"
    return f"OTLP to {os.environ.get('OTEL_EXPORTER_OTLP_ENDPOINT', 'the default endpoint')}"


def _otlp_exporters() -> tuple[Any, Any] | None:
    """The OTLP span and metric exporters (HTTP, else gRPC); None when neither is installed."""
    with contextlib.suppress(ImportError):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(), OTLPMetricExporter()
    with contextlib.suppress(ImportError):
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter(), GrpcMetricExporter()
    return None
