"""Vector indexes for the semantic cache: RediSearch (server-side HNSW) or local (in-process ANN).

Everything here needs the `semantic` extra (numpy; RediSearch also `redis`), so names are imported
on first use: `import llmemo.index` stays light and a missing extra fails with its one-line hint.
`SYNC_LOGS`/`ASYNC_LOGS` map a store class to how LocalIndexes sharing it stay in step
(`register_log` adds one); `open_index` picks RediSearch or local for a store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmemo._lazy import lazy_attributes
from llmemo.errors import require

require("numpy", "semantic")  # every member needs it (checked without importing it)

if TYPE_CHECKING:
    from llmemo.index._async.auto import open_async_index
    from llmemo.index._async.local import AsyncLocalIndex
    from llmemo.index._async.redisearch import AsyncRediSearchIndex
    from llmemo.index._async.streamlog import AsyncRedisStreamLog
    from llmemo.index._async.upstashlog import AsyncUpstashStreamLog
    from llmemo.index._sync.auto import open_index
    from llmemo.index._sync.local import LocalIndex
    from llmemo.index._sync.redisearch import RediSearchIndex
    from llmemo.index._sync.streamlog import RedisStreamLog
    from llmemo.index._sync.upstashlog import UpstashStreamLog
    from llmemo.index.base import (
        AsyncVectorIndex,
        IndexItem,
        IndexScope,
        Match,
        VectorIndex,
        VectorIndexError,
    )
    from llmemo.index.changelog import AsyncChangeLog, AsyncSQLiteLog, ChangeLog, SQLiteLog
    from llmemo.index.kinds import Kind
    from llmemo.index.local_base import ASYNC_LOGS, SYNC_LOGS, register_log
    from llmemo.index.redisearch_base import HNSW

__all__ = [
    "ASYNC_LOGS",
    "HNSW",
    "SYNC_LOGS",
    "AsyncChangeLog",
    "AsyncLocalIndex",
    "AsyncRediSearchIndex",
    "AsyncRedisStreamLog",
    "AsyncSQLiteLog",
    "AsyncUpstashStreamLog",
    "AsyncVectorIndex",
    "ChangeLog",
    "IndexItem",
    "IndexScope",
    "Kind",
    "LocalIndex",
    "Match",
    "RediSearchIndex",
    "RedisStreamLog",
    "SQLiteLog",
    "UpstashStreamLog",
    "VectorIndex",
    "VectorIndexError",
    "open_async_index",
    "open_index",
    "register_log",
]

_LAZY = {
    "ASYNC_LOGS": "llmemo.index.local_base",
    "HNSW": "llmemo.index.redisearch_base",
    "SYNC_LOGS": "llmemo.index.local_base",
    "AsyncChangeLog": "llmemo.index.changelog",
    "AsyncLocalIndex": "llmemo.index._async.local",
    "AsyncRediSearchIndex": "llmemo.index._async.redisearch",
    "AsyncRedisStreamLog": "llmemo.index._async.streamlog",
    "AsyncSQLiteLog": "llmemo.index.changelog",
    "AsyncUpstashStreamLog": "llmemo.index._async.upstashlog",
    "AsyncVectorIndex": "llmemo.index.base",
    "ChangeLog": "llmemo.index.changelog",
    "IndexItem": "llmemo.index.base",
    "IndexScope": "llmemo.index.base",
    "Kind": "llmemo.index.kinds",
    "LocalIndex": "llmemo.index._sync.local",
    "Match": "llmemo.index.base",
    "RediSearchIndex": "llmemo.index._sync.redisearch",
    "RedisStreamLog": "llmemo.index._sync.streamlog",
    "SQLiteLog": "llmemo.index.changelog",
    "UpstashStreamLog": "llmemo.index._sync.upstashlog",
    "VectorIndex": "llmemo.index.base",
    "VectorIndexError": "llmemo.index.base",
    "open_async_index": "llmemo.index._async.auto",
    "open_index": "llmemo.index._sync.auto",
    "register_log": "llmemo.index.local_base",
}

__getattr__ = lazy_attributes(__name__, _LAZY)
