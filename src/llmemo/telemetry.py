"""OpenTelemetry for the library (extra `otel`): a tracer when tracing is configured, else None.

Nothing here imports OpenTelemetry until it is asked for: the cache holds `tracer` (None when
off), so its hit path pays one `is None` test and builds no span object. The library traces when
`enable()` was called (as `llmemo serve --otel` does) or when the application has set a tracer
provider of its own before the cache is built (then OpenTelemetry is already imported).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from llmemo.errors import MissingExtraError

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

HINT = "OpenTelemetry is not installed: pip install 'llmemo[otel]'"
SCOPE = "llmemo"

_enabled = False


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


def tracer_of(provider: Any) -> Tracer:
    """llmemo's tracer from `provider` (None: the global one)."""
    from llmemo import __version__

    trace = load()
    tracer: Tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=provider)
    return tracer
