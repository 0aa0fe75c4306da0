"""llmemo: an LLM response cache on Redis (exact and semantic, single-flight, fail-open)."""

from llmemo.core._async.cache import AsyncCache
from llmemo.core._sync.cache import Cache
from llmemo.core.breaker import CircuitBreaker
from llmemo.core.check import CheckReport
from llmemo.core.entry import Entry, Usage
from llmemo.core.facade import Hit, Result
from llmemo.core.policy import NO_EXPIRY, TtlPolicy
from llmemo.core.pricing import Price
from llmemo.core.request import CacheRequest, Normalisation, Scope
from llmemo.core.stats import CacheStats
from llmemo.errors import (
    ConfigError,
    CorruptEntryError,
    LLMemoError,
    MissingExtraError,
    StoreError,
    UnkeyableError,
)
from llmemo.integrations.wrap import last_status, wrap

__version__ = "0.1.0"

__all__ = [
    "NO_EXPIRY",
    "AsyncCache",
    "Cache",
    "CacheRequest",
    "CacheStats",
    "CheckReport",
    "CircuitBreaker",
    "ConfigError",
    "CorruptEntryError",
    "Entry",
    "Hit",
    "LLMemoError",
    "MissingExtraError",
    "Normalisation",
    "Price",
    "Result",
    "Scope",
    "StoreError",
    "TtlPolicy",
    "UnkeyableError",
    "Usage",
    "__version__",
    "last_status",
    "wrap",
]
