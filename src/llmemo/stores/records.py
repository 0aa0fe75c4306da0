"""Which record log a store gets (`SYNC_RECORDS`, `ASYNC_RECORDS`, `records_of`), and the logs of
the stores that do not speak Redis: a table in the SQLite store's file, a dict in memory.

A record log is a capped, expiring list of small records (`stores/_async/records.py`). In SQLite
each record expires on its own (`ttl` after it was pushed) and a push trims its log to the cap in
the same transaction as the entry it writes, so a log never holds more than `cap` rows. A store
without a log (an unknown class) keeps no feedback: the cache still serves and reports still
delete, nothing is logged.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from llmemo.stores._async.records import (
    AsyncRecordLog,
    AsyncRedisRecords,
    AsyncUpstashRecords,
    Write,
)
from llmemo.stores._sync.records import RecordLog, RedisRecords, UpstashRecords

__all__ = [
    "ASYNC_RECORDS",
    "SYNC_RECORDS",
    "AsyncMemoryRecords",
    "AsyncRecordLog",
    "AsyncRedisRecords",
    "AsyncSQLiteRecords",
    "AsyncUpstashRecords",
    "MemoryRecords",
    "RecordLog",
    "RedisRecords",
    "SQLiteRecords",
    "UpstashRecords",
    "Write",
    "records_of",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS llmemo_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT, log TEXT NOT NULL, record BLOB NOT NULL, expires REAL
);
CREATE INDEX IF NOT EXISTS llmemo_records_by_log ON llmemo_records (log, id);
CREATE TABLE IF NOT EXISTS llmemo_record_index (
    idx TEXT NOT NULL, log TEXT NOT NULL, expires REAL, PRIMARY KEY (idx, log)
) WITHOUT ROWID;
"""
_UPSERT = (
    "INSERT INTO entries (key, value, expires) VALUES (?, ?, ?) ON CONFLICT (key)"
    " DO UPDATE SET value = excluded.value, expires = excluded.expires"
)  # SQLiteStore.set's statement: the backfill and its record commit together


class SQLiteRecords:
    """Record logs in a table of a SQLiteStore's file, on the store's own connection."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._ready = False

    def _schema(self) -> None:
        """Create the table once (executescript commits: never inside a transaction)."""
        if not self._ready:
            with self.store._use("schema") as conn:
                conn.executescript(_SCHEMA)
            self._ready = True

    def push(
        self,
        log: str,
        record: bytes,
        cap: int,
        ttl: float,
        entry: Write | None = None,
        index: str | None = None,
    ) -> None:
        self._schema()
        now = self.store._clock()
        with self.store._transaction("push") as conn:
            if entry is not None:
                key, value, lifetime = entry
                conn.execute(_UPSERT, (key, value, None if lifetime is None else now + lifetime))
            conn.execute(
                "INSERT INTO llmemo_records (log, record, expires) VALUES (?, ?, ?)",
                (log, record, now + ttl),
            )
            conn.execute(
                "DELETE FROM llmemo_records WHERE log = ? AND (expires <= ? OR id <= ("
                "SELECT id FROM llmemo_records WHERE log = ? ORDER BY id DESC LIMIT 1 OFFSET ?))",
                (log, now, log, max(1, cap)),
            )
            if index is not None:
                conn.execute(
                    "INSERT INTO llmemo_record_index (idx, log, expires) VALUES (?, ?, ?)"
                    " ON CONFLICT (idx, log) DO UPDATE SET expires = excluded.expires",
                    (index, log, now + ttl),
                )

    def recent(self, log: str, limit: int) -> list[bytes]:
        if limit < 1:
            return []
        self._schema()
        with self.store._use("recent") as conn:
            rows = conn.execute(
                "SELECT record FROM llmemo_records WHERE log = ? AND expires > ?"
                " ORDER BY id DESC LIMIT ?",
                (log, self.store._clock(), limit),
            ).fetchall()
        return [bytes(record) for (record,) in rows]

    def remove(self, log: str, records: Sequence[bytes]) -> int:
        if not records:
            return 0
        self._schema()
        gone = 0
        with self.store._transaction("remove") as conn:
            for record in dict.fromkeys(records):
                cursor = conn.execute(
                    "DELETE FROM llmemo_records WHERE log = ? AND record = ?", (log, record)
                )
                gone += cursor.rowcount
        return gone

    def names(self, index: str) -> list[str]:
        self._schema()
        with self.store._use("names") as conn:
            rows = conn.execute(
                "SELECT log FROM llmemo_record_index WHERE idx = ? AND expires > ? ORDER BY log",
                (index, self.store._clock()),
            ).fetchall()
        return [log for (log,) in rows]


class AsyncSQLiteRecords:
    """SQLiteRecords run on the async store's worker thread (off the event loop)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.sync = SQLiteRecords(store.sync)

    async def push(
        self,
        log: str,
        record: bytes,
        cap: int,
        ttl: float,
        entry: Write | None = None,
        index: str | None = None,
    ) -> None:
        await self.store._run(self.sync.push, log, record, cap, ttl, entry, index)

    async def recent(self, log: str, limit: int) -> list[bytes]:
        return await self.store._run(self.sync.recent, log, limit)  # type: ignore[no-any-return]

    async def remove(self, log: str, records: Sequence[bytes]) -> int:
        return await self.store._run(self.sync.remove, log, records)  # type: ignore[no-any-return]

    async def names(self, index: str) -> list[str]:
        return await self.store._run(self.sync.names, index)  # type: ignore[no-any-return]


_MEMORY: weakref.WeakKeyDictionary[Any, dict[str, list[tuple[bytes, float]]]] = (
    weakref.WeakKeyDictionary()
)
_MEMORY_INDEX: weakref.WeakKeyDictionary[Any, dict[str, dict[str, float]]] = (
    weakref.WeakKeyDictionary()
)
_MEMORY_LOCK = threading.Lock()


class MemoryRecords:
    """Record logs of a MemoryStore, in this process (kept beside the store, dropped with it)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        with _MEMORY_LOCK:
            self._logs = _MEMORY.setdefault(store, {})
            self._index = _MEMORY_INDEX.setdefault(store, {})

    def _live(self, log: str) -> list[tuple[bytes, float]]:
        now = self.store._clock()
        kept = [item for item in self._logs.get(log, []) if item[1] > now]
        self._logs[log] = kept
        return kept

    def push(
        self,
        log: str,
        record: bytes,
        cap: int,
        ttl: float,
        entry: Write | None = None,
        index: str | None = None,
    ) -> None:
        if entry is not None:
            self.store.set(*entry)
        with _MEMORY_LOCK:
            kept = self._live(log)
            until = self.store._clock() + ttl
            kept.insert(0, (bytes(record), until))
            del kept[max(1, cap) :]
            if index is not None:
                self._index.setdefault(index, {})[log] = until

    def recent(self, log: str, limit: int) -> list[bytes]:
        with _MEMORY_LOCK:
            return [record for record, _ in self._live(log)[: max(0, limit)]]

    def remove(self, log: str, records: Sequence[bytes]) -> int:
        drop = set(records)
        with _MEMORY_LOCK:
            kept = self._live(log)
            left = [item for item in kept if item[0] not in drop]
            self._logs[log] = left
            return len(kept) - len(left)

    def names(self, index: str) -> list[str]:
        now = self.store._clock()
        with _MEMORY_LOCK:
            return sorted(log for log, until in self._index.get(index, {}).items() if until > now)


class AsyncMemoryRecords:
    """MemoryRecords for an AsyncMemoryStore (no I/O: direct calls)."""

    def __init__(self, store: Any) -> None:
        self.sync = MemoryRecords(store.sync)

    async def push(
        self,
        log: str,
        record: bytes,
        cap: int,
        ttl: float,
        entry: Write | None = None,
        index: str | None = None,
    ) -> None:
        self.sync.push(log, record, cap, ttl, entry, index)

    async def recent(self, log: str, limit: int) -> list[bytes]:
        return self.sync.recent(log, limit)

    async def remove(self, log: str, records: Sequence[bytes]) -> int:
        return self.sync.remove(log, records)

    async def names(self, index: str) -> list[str]:
        return self.sync.names(index)


SyncFactory = Callable[[Any], RecordLog]
AsyncFactory = Callable[[Any], AsyncRecordLog]
SYNC_RECORDS: dict[str, SyncFactory] = {
    "llmemo.stores._sync.redis.RedisStore": RedisRecords,
    "llmemo.stores._sync.redis_cluster.RedisClusterStore": RedisRecords,
    "llmemo.stores.sqlite.SQLiteStore": SQLiteRecords,
    "llmemo.stores.memory.MemoryStore": MemoryRecords,
    "llmemo.stores._sync.upstash.UpstashStore": UpstashRecords,
}
ASYNC_RECORDS: dict[str, AsyncFactory] = {
    "llmemo.stores._async.redis.AsyncRedisStore": AsyncRedisRecords,
    "llmemo.stores._async.redis_cluster.AsyncRedisClusterStore": AsyncRedisRecords,
    "llmemo.stores.sqlite.AsyncSQLiteStore": AsyncSQLiteRecords,
    "llmemo.stores.memory.AsyncMemoryStore": AsyncMemoryRecords,
    "llmemo.stores._async.upstash.AsyncUpstashStore": AsyncUpstashRecords,
}


def records_of(store: object, table: dict[str, Any]) -> Any:
    """The record log of a store (from `SYNC_RECORDS` or `ASYNC_RECORDS`), or None."""
    for cls in type(store).__mro__:
        factory = table.get(f"{cls.__module__}.{cls.__qualname__}")
        if factory is not None:
            return factory(store)
    return None
