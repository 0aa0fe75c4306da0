"""`llmemo serve --otel`: spans and metrics through the OpenTelemetry SDK's in-memory exporters,
against the real service (uvicorn, Redis, the local upstream)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from llmemo.service import load_settings
from llmemo.service.controls import tenant_id
from llmemo.testing.server import UpstreamServer
from tests.service.conftest import ALICE, ServiceServer

PROMPT = "The secret prompt text: pineapple submarine"
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_PARENT = f"00-{CALLER_TRACE}-b7ad6b7169203331-01"


class Traced:
    """A service with `otel` on, its spans and metrics kept in memory."""

    def __init__(
        self, server: ServiceServer, spans: InMemorySpanExporter, reader: InMemoryMetricReader
    ):
        self.server = server
        self.spans = spans
        self.reader = reader
        self.http = httpx.Client(
            base_url=server.url, headers={"authorization": f"Bearer {ALICE}"}, timeout=30
        )

    def chat(
        self, prompt: str = PROMPT, model: str = "gpt-4o-mini", status: int = 200, **headers: str
    ) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
        response = self.http.post("/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == status, response.text
        return response

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
        """The data points of one OTel metric, by their sorted attributes."""
        data = self.reader.get_metrics_data()
        found: dict[tuple[tuple[str, Any], ...], Any] = {}
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            found[tuple(sorted(point.attributes.items()))] = point
        return found


@pytest.fixture
def traced(upstream: UpstreamServer, redis_url: str) -> Iterator[Traced]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    settings = load_settings(
        store=redis_url,
        openai_base_url=upstream.openai_base_url,
        anthropic_base_url=upstream.url,
        otel=True,
        near_ttl="0",
    )
    server = ServiceServer(
        settings, tracer_provider=tracer_provider, meter_provider=meter_provider
    ).start()
    upstream.reset()
    client = Traced(server, spans, reader)
    yield client
    client.http.close()
    server.stop()
    tracer_provider.shutdown()
    meter_provider.shutdown()


def by_name(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    matching = [span for span in spans if span.name == name]
    assert len(matching) == 1, [span.name for span in spans]
    return matching[0]


def test_a_miss_has_a_server_span_with_an_upstream_client_span_under_it(traced: Traced) -> None:
    traced.chat()
    spans = traced.finished()
    server = by_name(spans, "POST /v1/chat/completions")
    client = by_name(spans, "chat gpt-4o-mini")
    assert server.kind is SpanKind.SERVER
    assert client.kind is SpanKind.CLIENT
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    assert server.attributes is not None and client.attributes is not None
    assert dict(server.attributes) | {} == {
        **dict(server.attributes),
        "http.request.method": "POST",
        "http.route": "/v1/chat/completions",
        "http.response.status_code": 200,
        "llmemo.cache.status": "miss",
        "llmemo.namespace": "default",
        "llmemo.tenant": tenant_id(ALICE),
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
    }
    lookup = by_name(spans, "llmemo.lookup")
    assert lookup.parent is not None and lookup.parent.span_id == server.context.span_id
    assert lookup.attributes == {"llmemo.namespace": "default", "llmemo.cache.status": "miss"}
    assert lookup.end_time is not None and client.start_time is not None
    assert lookup.end_time <= client.start_time  # looked up, then called the upstream
    assert server.attributes["gen_ai.usage.input_tokens"] > 0
    assert client.attributes["gen_ai.usage.output_tokens"] > 0
    assert client.attributes["server.address"] == "127.0.0.1"
    assert client.attributes["http.response.status_code"] == 200


def test_a_hit_has_a_server_span_without_an_upstream_call(traced: Traced) -> None:
    traced.chat()
    traced.spans.clear()
    assert traced.chat().headers["x-llmemo-cache"] == "hit"
    spans = traced.finished()
    server = by_name(spans, "POST /v1/chat/completions")
    assert server.attributes is not None
    assert server.attributes["llmemo.cache.status"] == "hit"
    assert server.attributes["llmemo.tokens_saved"] > 0
    assert server.attributes["llmemo.cache.age"] >= 0
    assert not [span for span in spans if span.kind is SpanKind.CLIENT]
    lookup = by_name(spans, "llmemo.lookup")
    assert lookup.parent is not None and lookup.parent.span_id == server.context.span_id
    assert lookup.attributes is not None and lookup.attributes["llmemo.cache.status"] == "hit"


def test_the_callers_trace_is_joined_and_sent_on_to_the_upstream(
    traced: Traced, upstream: UpstreamServer
) -> None:
    traced.chat(traceparent=CALLER_PARENT)
    spans = traced.finished()
    server = by_name(spans, "POST /v1/chat/completions")
    client = by_name(spans, "chat gpt-4o-mini")
    assert format(server.context.trace_id, "032x") == CALLER_TRACE
    assert server.parent is not None and format(server.parent.span_id, "016x") == "b7ad6b7169203331"
    sent = upstream.stats().traceparents
    assert sent == (f"00-{CALLER_TRACE}-{format(client.context.span_id, '016x')}-01",)


def test_a_stream_miss_sends_the_trace_and_records_the_client_span(
    traced: Traced, upstream: UpstreamServer
) -> None:
    body = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    with traced.http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        response.read()
    spans = traced.finished()
    client = by_name(spans, "chat gpt-4o-mini")
    sent = upstream.stats().traceparents
    assert len(sent) == 1 and sent[0].split("-")[2] == format(client.context.span_id, "016x")


def test_an_upstream_failure_is_an_error_on_both_spans(traced: Traced) -> None:
    traced.chat(model="fail-503", status=503)
    spans = traced.finished()
    server = by_name(spans, "POST /v1/chat/completions")
    client = by_name(spans, "chat fail-503")
    assert server.attributes is not None and client.attributes is not None
    assert server.attributes["http.response.status_code"] == 503
    assert server.status.status_code is StatusCode.ERROR
    assert client.attributes["http.response.status_code"] == 503
    assert client.attributes["error.type"] == "503"
    assert client.status.status_code is StatusCode.ERROR


def test_routed_requests_are_named_by_their_route_template(traced: Traced) -> None:
    assert traced.http.get("/v1/models/gpt-4o-mini").status_code == 200
    assert traced.http.get("/healthz").status_code == 200
    names = [span.name for span in traced.finished() if span.kind is SpanKind.SERVER]
    assert names == ["GET /v1/models/{model:path}", "GET /healthz"]


def test_no_attribute_holds_the_prompt_the_answer_or_a_credential(traced: Traced) -> None:
    answer = traced.chat().json()["choices"][0]["message"]["content"]
    traced.chat()
    values = [
        str(value) for span in traced.finished() for value in (span.attributes or {}).values()
    ]
    assert values
    for secret in (PROMPT, "pineapple", answer, ALICE):
        assert not [value for value in values if secret in value]


def test_otel_metrics_equal_the_prometheus_page(traced: Traced) -> None:
    for prompt in ("one", "two", "one", "one", "two", "three"):
        traced.chat(prompt)
    traced.chat("four", model="fail-503", status=503)
    page = traced.http.get("/metrics").text
    prometheus: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            prometheus[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    requests = traced.points("llmemo.requests")
    assert {key: point.value for key, point in requests.items()} == {
        labels: value
        for (name, labels), value in prometheus.items()
        if name == "llmemo_requests_total"
    }
    assert sum(point.value for point in requests.values()) == 6
    errors = traced.points("llmemo.upstream_errors")
    assert {key: point.value for key, point in errors.items()} == {
        labels: value
        for (name, labels), value in prometheus.items()
        if name == "llmemo_upstream_errors_total"
    }
    assert [point.value for point in errors.values()] == [1]
    tokens = traced.points("llmemo.tokens_saved")
    assert {key: point.value for key, point in tokens.items()} == {
        labels: value
        for (name, labels), value in prometheus.items()
        if name == "llmemo_tokens_saved_total"
    }
    dollars = traced.points("llmemo.dollars_saved")
    assert {key: pytest.approx(point.value) for key, point in dollars.items()} == {
        labels: value
        for (name, labels), value in prometheus.items()
        if name == "llmemo_dollars_saved_total"
    }
    hits = traced.points("llmemo.hit_latency")
    assert {key: point.count for key, point in hits.items()} == {
        labels: value
        for (name, labels), value in prometheus.items()
        if name == "llmemo_hit_latency_seconds_count"
    }
    upstream = traced.points("llmemo.upstream_latency")
    assert {key: point.count for key, point in upstream.items()} == {
        labels: value
        for (name, labels), value in prometheus.items()
        if name == "llmemo_upstream_latency_seconds_count"
    }
    circuit = traced.points("llmemo.store_circuit_open")
    assert [point.value for point in circuit.values()] == [0]


def test_otel_without_the_extra_is_a_one_line_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmemo.cli.main import app

    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    result = CliRunner().invoke(app, ["serve", "--otel", "--upstream", "demo", "--port", "0"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "llmemo: error: --otel: OpenTelemetry is not installed: pip install 'llmemo[otel]'"
    )


def test_create_app_with_otel_and_without_the_extra_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llmemo.errors import MissingExtraError
    from llmemo.service import create_app

    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'llmemo\[otel\]'"):
        create_app(load_settings(otel=True, upstream="demo"))
