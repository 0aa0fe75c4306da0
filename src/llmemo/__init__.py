"""llmemo: an LLM response cache on Redis (exact and semantic, single-flight, fail-open).

The public API is `__all__`, documented in docs/api.md. The exact cache and its types are imported
here; the semantic layer, the stores, the indexes and the embedders load on first use (through
`__getattr__`), so `import llmemo` stays light and a missing extra fails with a one-line hint
(`MissingExtraError`) only when its backend is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from llmemo.core import AsyncCache, Cache
from llmemo.core.breaker import CircuitBreaker
from llmemo.core.check import CheckReport
from llmemo.core.crypto import Keyring
from llmemo.core.entry import Entry, Usage
from llmemo.core.facade import Hit, Result
from llmemo.core.feedback import FeedbackLimits
from llmemo.core.memoize import UnstorableValueError, memoize
from llmemo.core.near import NearCache

# The options type of a call, shared by wrap(), the service and warm.
from llmemo.core.options import CacheOptions
from llmemo.core.policy import NO_EXPIRY, TtlPolicy
from llmemo.core.pricing import Price
from llmemo.core.request import CacheRequest, Normalisation, Scope
from llmemo.core.sensitive import SensitivePolicy
from llmemo.core.stats import CacheStats
from llmemo.errors import (
    ConfigError,
    CorruptEntryError,
    LLMemoError,
    MissingExtraError,
    StoreError,
    UndecryptableError,
    UnkeyableError,
)
from llmemo.integrations.wrap import last_status, wrap
from llmemo.stores.base import AsyncStore, Store

if TYPE_CHECKING:
    from llmemo.core.semantic import AsyncSemanticLayer, SemanticLayer
    from llmemo.core.verified import Verified
    from llmemo.core.verify import AsyncLLMVerifier, LLMVerifier
    from llmemo.embed import (
        AsyncCachedEmbedder,
        AsyncOllamaEmbedder,
        AsyncOpenAIEmbedder,
        CachedEmbedder,
        OllamaEmbedder,
        OpenAIEmbedder,
    )
    from llmemo.embed.base import AsyncEmbedder, Embedder, EmbedderError
    from llmemo.embed.callable import AsyncCallableEmbedder, CallableEmbedder
    from llmemo.embed.minilm import MiniLMEmbedder
    from llmemo.embed.onnx import OnnxMiniLMEmbedder
    from llmemo.index import AsyncLocalIndex, AsyncRediSearchIndex, LocalIndex, RediSearchIndex
    from llmemo.index.base import AsyncVectorIndex, VectorIndex, VectorIndexError
    from llmemo.stores import (
        AsyncRedisClusterStore,
        AsyncRedisStore,
        AsyncUpstashStore,
        RedisClusterStore,
        RedisStore,
        UpstashStore,
    )
    from llmemo.stores.memory import AsyncMemoryStore, MemoryStore
    from llmemo.stores.sqlite import AsyncSQLiteStore, SQLiteStore

__version__ = "0.1.0"

# A cache on the store the URL names: the same as Cache.from_url / AsyncCache.from_url.
from_url = Cache.from_url
async_from_url = AsyncCache.from_url

# Loaded on first use: public name -> the module that defines it.
_LAZY: dict[str, str] = {
    "SemanticLayer": "llmemo.core.semantic",
    "AsyncSemanticLayer": "llmemo.core.semantic",
    "LLMVerifier": "llmemo.core.verify",
    "AsyncLLMVerifier": "llmemo.core.verify",
    "Verified": "llmemo.core.verified",
    "MemoryStore": "llmemo.stores.memory",
    "AsyncMemoryStore": "llmemo.stores.memory",
    "SQLiteStore": "llmemo.stores.sqlite",
    "AsyncSQLiteStore": "llmemo.stores.sqlite",
    "RedisStore": "llmemo.stores",
    "AsyncRedisStore": "llmemo.stores",
    "RedisClusterStore": "llmemo.stores",
    "AsyncRedisClusterStore": "llmemo.stores",
    "UpstashStore": "llmemo.stores",
    "AsyncUpstashStore": "llmemo.stores",
    "VectorIndex": "llmemo.index.base",
    "AsyncVectorIndex": "llmemo.index.base",
    "VectorIndexError": "llmemo.index.base",
    "LocalIndex": "llmemo.index",
    "AsyncLocalIndex": "llmemo.index",
    "RediSearchIndex": "llmemo.index",
    "AsyncRediSearchIndex": "llmemo.index",
    "Embedder": "llmemo.embed.base",
    "AsyncEmbedder": "llmemo.embed.base",
    "EmbedderError": "llmemo.embed.base",
    "MiniLMEmbedder": "llmemo.embed.minilm",
    "OnnxMiniLMEmbedder": "llmemo.embed.onnx",
    "OpenAIEmbedder": "llmemo.embed",
    "AsyncOpenAIEmbedder": "llmemo.embed",
    "OllamaEmbedder": "llmemo.embed",
    "AsyncOllamaEmbedder": "llmemo.embed",
    "CallableEmbedder": "llmemo.embed.callable",
    "AsyncCallableEmbedder": "llmemo.embed.callable",
    "CachedEmbedder": "llmemo.embed",
    "AsyncCachedEmbedder": "llmemo.embed",
}


def __getattr__(name: str) -> object:
    """Import a lazily loaded public name (a missing extra raises MissingExtraError)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmemo' has no attribute {name!r}")
    value: object = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "NO_EXPIRY",
    "AsyncCache",
    "AsyncCachedEmbedder",
    "AsyncCallableEmbedder",
    "AsyncEmbedder",
    "AsyncLLMVerifier",
    "AsyncLocalIndex",
    "AsyncMemoryStore",
    "AsyncOllamaEmbedder",
    "AsyncOpenAIEmbedder",
    "AsyncRediSearchIndex",
    "AsyncRedisClusterStore",
    "AsyncRedisStore",
    "AsyncSQLiteStore",
    "AsyncSemanticLayer",
    "AsyncStore",
    "AsyncUpstashStore",
    "AsyncVectorIndex",
    "Cache",
    "CacheOptions",
    "CacheRequest",
    "CacheStats",
    "CachedEmbedder",
    "CallableEmbedder",
    "CheckReport",
    "CircuitBreaker",
    "ConfigError",
    "CorruptEntryError",
    "Embedder",
    "EmbedderError",
    "Entry",
    "FeedbackLimits",
    "Hit",
    "Keyring",
    "LLMVerifier",
    "LLMemoError",
    "LocalIndex",
    "MemoryStore",
    "MiniLMEmbedder",
    "MissingExtraError",
    "NearCache",
    "Normalisation",
    "OllamaEmbedder",
    "OnnxMiniLMEmbedder",
    "OpenAIEmbedder",
    "Price",
    "RediSearchIndex",
    "RedisClusterStore",
    "RedisStore",
    "Result",
    "SQLiteStore",
    "Scope",
    "SemanticLayer",
    "SensitivePolicy",
    "Store",
    "StoreError",
    "TtlPolicy",
    "UndecryptableError",
    "UnkeyableError",
    "UnstorableValueError",
    "UpstashStore",
    "Usage",
    "VectorIndex",
    "VectorIndexError",
    "Verified",
    "__version__",
    "async_from_url",
    "from_url",
    "last_status",
    "memoize",
    "wrap",
]
