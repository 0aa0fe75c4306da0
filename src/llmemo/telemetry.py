"""OpenTelemetry for the library (extra `otel`): a tracer when tracing is configured, else None.

Nothing here imports OpenTelemetry until it is asked for: the cache holds `tracer` (None when
off), so its hit path pays one `is None` test and builds no span object. The library traces when
`enable()` was called (as `llmemo serve --otel` does) or when the application has set a tracer
provider of its own before the cache is built (then OpenTelemetry is already imported).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from llmemo.errors import MissingExtraError

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

HINT = "OpenTelemetry is not installed: pip install 'llmemo[otel]'"
SCOPE = "llmemo"

_enabled = False
_OFF: AbstractContextManager[None] = contextlib.nullcontext()


def load() -> Any:
    """The `opentelemetry.trace` module; MissingExtraError (one line naming the extra) without it."""
    try:
        from opentelemetry import trace
    except ImportError:
        raise MissingExtraError(HINT) from None
    return trace


def enable() -> None:
    """Trace every cache built from now on (MissingExtraError without the extra)."""
    global _enabled
    load()
    _enabled = True


def library_tracer() -> Tracer | None:
    """The tracer a new cache uses: None unless `enable()` was called or the application set a
    tracer provider (the OpenTelemetry API's default provider records nothing)."""
    if not _enabled:
        trace = sys.modules.get("opentelemetry.trace")
        if trace is None:
            return None
        provider = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            return None
    return tracer_of(None)


def tracer_of(provider: Any, version: str | None = None) -> Tracer:
    """llmemo's tracer from `provider` (None: the global one)."""
    trace = load()
    tracer: Tracer = trace.get_tracer(SCOPE, version, tracer_provider=provider)
    return tracer


def span(
    tracer: Tracer | None, name: str, attributes: Mapping[str, Any] | None = None
) -> AbstractContextManager[Span | None]:
    """A span made current for the `with` block, or nothing (None) when `tracer` is None."""
    if tracer is None:
        return _OFF
    return tracer.start_as_current_span(name, attributes=attributes)


def looked_up(span: Span, namespace: str, hit: Any) -> None:
    """A lookup span's result: hit (or stale, semantic) or miss, and a semantic hit's similarity."""
    if hit is None:
        span.set_attributes({"llmemo.namespace": namespace, "llmemo.cache.status": "miss"})
        return
    status = "semantic" if hit.kind == "semantic" else "stale" if hit.stale else "hit"
    attributes: dict[str, Any] = {"llmemo.namespace": namespace, "llmemo.cache.status": status}
    if hit.similarity is not None:
        attributes["llmemo.semantic.similarity"] = float(hit.similarity)
    span.set_attributes(attributes)


def searched(span: Span, k: int, similarities: list[float]) -> None:
    """A vector search span's result: how many neighbours were asked for and found, the best."""
    attributes: dict[str, Any] = {
        "llmemo.semantic.k": k,
        "llmemo.semantic.matches": len(similarities),
    }
    if similarities:
        attributes["llmemo.semantic.best_similarity"] = float(max(similarities))
    span.set_attributes(attributes)


def embed_attributes(name: str, model: str) -> dict[str, str]:
    """An embedding span's attributes: which embedder (never the text)."""
    return {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.request.model": model,
        "llmemo.embedder": name,
    }
