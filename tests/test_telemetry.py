"""The library's OpenTelemetry spans (llmemo/telemetry.py): none without a configured tracer
provider, and then a lookup span per lookup, with the semantic layer's embed and search under it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmemo import AsyncCache, Cache
from llmemo.core.semantic import AsyncSemanticLayer
from llmemo.embed.minilm import MiniLMEmbedder
from llmemo.stores.memory import AsyncMemoryStore
from llmemo.telemetry import tracer_of
from tests.core.helpers import Upstream, answer, chat

QUESTION = "How tall is Mount Everest?"
PARAPHRASE = "What is the height of Mount Everest?"


def run(code: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_without_a_provider_a_cache_traces_nothing_and_imports_no_opentelemetry() -> None:
    found = run(
        """
        import json, sys
        from llmemo import Cache
        cache = Cache.from_url("memory://")
        cache.compute({"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                      lambda: {"choices": []})
        print(json.dumps([cache.tracer is None,
                          sorted(m for m in sys.modules if m.startswith("opentelemetry"))]))
        """
    )
    assert found == [True, []]
    assert Cache.from_url("memory://").tracer is None  # this process has no global provider


def test_a_provider_set_by_the_application_makes_the_library_trace() -> None:
    spans = run(
        """
        import json
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from llmemo import Cache

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        cache = Cache.from_url("memory://", namespace="docs")
        request = {"model": "m", "messages": [{"role": "user", "content": "secret words"}]}
        answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "x"},
                               "finish_reason": "stop"}]}
        with trace.get_tracer("app").start_as_current_span("app.request"):
            cache.compute(request, lambda: answer)
            cache.compute(request, lambda: answer)
        print(json.dumps([[s.name, dict(s.attributes), s.parent is not None]
                          for s in exporter.get_finished_spans()]))
        """
    )
    assert spans == [
        ["llmemo.lookup", {"llmemo.namespace": "docs", "llmemo.cache.status": "miss"}, True],
        ["llmemo.lookup", {"llmemo.namespace": "docs", "llmemo.cache.status": "hit"}, True],
        ["app.request", {}, False],
    ]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.mark.asyncio
async def test_a_semantic_lookup_has_embed_and_search_spans(minilm: MiniLMEmbedder) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    cache = AsyncCache(AsyncMemoryStore(), semantic=AsyncSemanticLayer(minilm, "local"))
    cache.tracer = tracer_of(provider)
    await cache.compute(chat(QUESTION), Upstream(answer("8849 m")).acall)
    exporter.clear()
    result = await cache.compute(chat(PARAPHRASE), Upstream(answer("other")).acall)
    assert result.status == "semantic" and result.hit is not None
    spans: dict[str, ReadableSpan] = {span.name: span for span in exporter.get_finished_spans()}
    assert sorted(spans) == [
        "llmemo.embed",
        "llmemo.lookup",
        "llmemo.semantic",
        "llmemo.vector_search",
    ]
    semantic = spans["llmemo.semantic"]
    for child in ("llmemo.embed", "llmemo.vector_search"):
        parent = spans[child].parent
        assert parent is not None and parent.span_id == semantic.context.span_id
    assert spans["llmemo.lookup"].attributes == {
        "llmemo.namespace": "default",
        "llmemo.cache.status": "miss",
    }
    assert semantic.attributes == {
        "llmemo.namespace": "default",
        "llmemo.cache.status": "semantic",
        "llmemo.semantic.similarity": pytest.approx(result.hit.similarity),
    }
    assert spans["llmemo.embed"].attributes == {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.request.model": minilm.model,
        "llmemo.embedder": minilm.name,
    }
    search = spans["llmemo.vector_search"].attributes
    assert search is not None and search["llmemo.semantic.matches"] >= 1
    assert search["llmemo.semantic.best_similarity"] == pytest.approx(result.hit.similarity)
    values = [str(v) for span in spans.values() for v in (span.attributes or {}).values()]
    assert not [v for v in values if "Everest" in v or "8849" in v]
    await cache.close()
