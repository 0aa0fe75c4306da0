"""Stores: the Store protocol, its backends, and the `{scheme: factory}` registry behind `from_url`.

Backends that need an extra (redis, upstash) are imported on first use, so `import llmemo.stores`
stays light and a missing extra fails with its one-line hint when the backend is named.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmemo._lazy import lazy_attributes
from llmemo.stores.memory import AsyncMemoryStore, DirectAsyncStore, MemoryStore
from llmemo.stores.protocol import AsyncStore, Counters, Store
from llmemo.stores.registry import (
    ASYNC_SCHEMES,
    SYNC_SCHEMES,
    async_from_url,
    from_url,
    register_scheme,
)
from llmemo.stores.sqlite import AsyncSQLiteStore, SQLiteStore
from llmemo.stores.urls import default_url, redact, store_url

if TYPE_CHECKING:
    from llmemo.stores._async.redis import AsyncRedisStore
    from llmemo.stores._async.redis_cluster import AsyncRedisClusterStore
    from llmemo.stores._async.upstash import AsyncUpstashStore
    from llmemo.stores._sync.redis import RedisStore
    from llmemo.stores._sync.redis_cluster import RedisClusterStore
    from llmemo.stores._sync.upstash import UpstashStore

__all__ = [
    "ASYNC_SCHEMES",
    "SYNC_SCHEMES",
    "AsyncMemoryStore",
    "AsyncRedisClusterStore",
    "AsyncRedisStore",
    "AsyncSQLiteStore",
    "AsyncStore",
    "AsyncUpstashStore",
    "Counters",
    "DirectAsyncStore",
    "MemoryStore",
    "RedisClusterStore",
    "RedisStore",
    "SQLiteStore",
    "Store",
    "UpstashStore",
    "async_from_url",
    "default_url",
    "from_url",
    "redact",
    "register_scheme",
    "store_url",
]

# name -> module, for the backends whose extra may be missing
_LAZY = {
    "RedisStore": "llmemo.stores._sync.redis",
    "AsyncRedisStore": "llmemo.stores._async.redis",
    "RedisClusterStore": "llmemo.stores._sync.redis_cluster",
    "AsyncRedisClusterStore": "llmemo.stores._async.redis_cluster",
    "UpstashStore": "llmemo.stores._sync.upstash",
    "AsyncUpstashStore": "llmemo.stores._async.upstash",
}

__getattr__ = lazy_attributes(__name__, _LAZY)
