"""What OpenTelemetry costs a cache hit: the service's app called in process (no sockets), one hit
request again and again, with `otel` off and on, rounds interleaved.

Sides: off (the default; `--otel` not given); on, under the OpenTelemetry SDK with every span built
and batched, then dropped by a no-op exporter, and metrics aggregated in memory. With `--near 0`
each hit reads the store (memory://, so the figure is the app's own CPU). Run the same script
with PYTHONPATH pointing at another checkout for a before/after of the off side (a checkout
without the `otel` setting runs the off side only).

Run: .venv/bin/python bench/otel.py [--requests 20000] [--rounds 5] [--near 1s] [--sample 1.0]
Not a test: nothing is asserted. Prints microseconds per request, median of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

BODY = orjson.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is OpenTelemetry?"}]}
)
KEY = "sk-bench-otel-0123456789"
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Traces. " * 100},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 200, "total_tokens": 212},
}


def providers(sample: float) -> dict[str, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Dropped(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

    tracer_provider = TracerProvider(sampler=ParentBasedTraceIdRatio(sample))
    tracer_provider.add_span_processor(BatchSpanProcessor(Dropped()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return {"tracer_provider": tracer_provider, "meter_provider": meter_provider}


@contextlib.asynccontextmanager
async def started(otel: bool, near: str, sample: float = 1.0) -> AsyncIterator[Any]:
    from llmemo.service import create_app, load_settings

    options: dict[str, Any] = {"otel": True} if otel else {}
    settings = load_settings(  # shared, with a known key: no upstream call checks the key
        store="memory://",
        openai_base_url="http://upstream.invalid/v1",
        near_ttl=near,
        shared=True,
        client_keys=KEY,
        **options,
    )
    app = create_app(settings, **providers(sample)) if otel else create_app(settings)
    async with app.router.lifespan_context(app):
        from llmemo.core.request import from_openai

        cache = app.state.service.proxy.cache  # the answer stored once, as a miss would
        assert await cache.store(from_openai(orjson.loads(BODY), "chat"), ANSWER)
        yield app


async def per_request(app: Any, n: int) -> float:
    """Microseconds per hit request through the whole app."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"llmemo"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
            (b"authorization", b"Bearer " + KEY.encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
    }
    message = {"type": "http.request", "body": BODY, "more_body": False}
    statuses: list[str] = []

    async def receive() -> dict[str, Any]:
        return message

    async def send(event: dict[str, Any]) -> None:
        if event["type"] == "http.response.start":
            for name, value in event["headers"]:
                if name == b"x-llmemo-cache":
                    statuses.append(value.decode())

    begun = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), receive, send)
    elapsed = time.perf_counter() - begun
    if set(statuses) != {"hit"}:
        raise RuntimeError(f"not all hits: {sorted(set(statuses))}")
    return elapsed / n * 1e6


async def main(args: argparse.Namespace) -> None:
    from llmemo.service.settings import Settings

    sides = ["off", "on"] if "otel" in Settings.model_fields else ["off"]
    async with contextlib.AsyncExitStack() as stack:
        apps = {
            side: await stack.enter_async_context(started(side == "on", args.near, args.sample))
            for side in sides
        }
        for app in apps.values():
            await per_request(app, 2000)  # warm up
        figures: dict[str, list[float]] = {side: [] for side in sides}
        for number in range(args.rounds):
            order = sides if number % 2 == 0 else sides[::-1]
            for side in order:
                figures[side].append(await per_request(apps[side], args.requests))
    for side in sides:
        print(
            f"otel {side}: {statistics.median(figures[side]):.1f} us/request "
            f"(rounds: {', '.join(f'{v:.1f}' for v in figures[side])})"
        )
    if len(sides) == 2:
        off, on = (statistics.median(figures[s]) for s in sides)
        print(f"on - off: {on - off:.1f} us/request ({on / off:.2f}x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--near", default="1s", help="near_ttl of both sides")
    parser.add_argument("--sample", type=float, default=1.0, help="the on side's trace ratio")
    asyncio.run(main(parser.parse_args()))
