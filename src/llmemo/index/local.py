"""LocalIndex: vectors searched in-process, kept durably in the store and in step across processes.

For stores without server-side vector search (the embedded SQLite file, memory, plain Redis,
Valkey). Each vector is written twice: as a record in the store, under `{index name}:{entry key}`
with the entry's TTL (what a starting process rebuilds from, by SCAN), and as an event in the
shared change log (what running processes tail, at most every `poll_interval` seconds, on
search). Searches never leave the process; a hit's payload is fetched by the caller with one GET.

Which log: `RedisStore` -> a capped Redis stream; `SQLiteStore` -> a table in the same file;
`MemoryStore` -> none (one process). Others: pass `log=` (or `log=None` for one process).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from llmemo.errors import ConfigError
from llmemo.index.ann import GraphParams, Vectors
from llmemo.index.base import (
    Dtype,
    IndexItem,
    IndexScope,
    Match,
    check_k,
    check_similarity,
    index_name,
    log_key,
    record_key,
    unit,
)
from llmemo.index.changelog import (
    READ_BATCH,
    AsyncChangeLog,
    AsyncSQLiteLog,
    ChangeLog,
    Event,
    Position,
    SQLiteLog,
    decode,
    encode_add,
    encode_delete,
    encode_drop,
)
from llmemo.stores import keys
from llmemo.stores.base import AsyncStore, Store

if TYPE_CHECKING:
    import numpy.typing as npt

Auto = Literal["auto"]
SyncLogFactory = Callable[[Any, str, int], ChangeLog | None]
AsyncLogFactory = Callable[[Any, str, int], AsyncChangeLog | None]


def _redis_log(store: Any, key: str, maxlen: int) -> ChangeLog:
    from llmemo.index.streamlog import RedisStreamLog

    return RedisStreamLog(store.client, key, maxlen)


def _async_redis_log(store: Any, key: str, maxlen: int) -> AsyncChangeLog:
    from llmemo.index.streamlog import AsyncRedisStreamLog

    return AsyncRedisStreamLog(store.client, key, maxlen)


def _sqlite_log(store: Any, key: str, maxlen: int) -> ChangeLog:
    return SQLiteLog(store.path, key, maxlen)


def _async_sqlite_log(store: Any, key: str, maxlen: int) -> AsyncChangeLog:
    return AsyncSQLiteLog(SQLiteLog(store.sync.path, key, maxlen))


def _one_process(store: Any, key: str, maxlen: int) -> None:
    return None


def _upstash_log(store: Any, key: str, maxlen: int) -> ChangeLog:
    from llmemo.index.upstashlog import UpstashStreamLog

    return UpstashStreamLog(store.client, key, maxlen)


def _async_upstash_log(store: Any, key: str, maxlen: int) -> AsyncChangeLog:
    from llmemo.index.upstashlog import AsyncUpstashStreamLog

    return AsyncUpstashStreamLog(store.client, key, maxlen)


# Store class (dotted path, so no backend is imported to look it up) -> how its processes sync.
SYNC_LOGS: dict[str, SyncLogFactory] = {
    "llmemo.stores.redis.RedisStore": _redis_log,
    "llmemo.stores.redis_cluster.RedisClusterStore": _redis_log,  # the stream's key has a hash tag
    "llmemo.stores.sqlite.SQLiteStore": _sqlite_log,
    "llmemo.stores.memory.MemoryStore": _one_process,
    "llmemo.stores.upstash.UpstashStore": _upstash_log,
}
ASYNC_LOGS: dict[str, AsyncLogFactory] = {
    "llmemo.stores.redis.AsyncRedisStore": _async_redis_log,
    "llmemo.stores.redis_cluster.AsyncRedisClusterStore": _async_redis_log,
    "llmemo.stores.sqlite.AsyncSQLiteStore": _async_sqlite_log,
    "llmemo.stores.memory.AsyncMemoryStore": _one_process,
    "llmemo.stores.upstash.AsyncUpstashStore": _async_upstash_log,
}


def register_log(store_class: str, sync: SyncLogFactory, async_: AsyncLogFactory) -> None:
    """Teach LocalIndex how processes sharing a new kind of store stay in step."""
    SYNC_LOGS[store_class] = sync
    ASYNC_LOGS[store_class] = async_


def _factory(store: object, table: dict[str, Any]) -> Any:
    for cls in type(store).__mro__:
        factory = table.get(f"{cls.__module__}.{cls.__qualname__}")
        if factory is not None:
            return factory
    raise ConfigError(
        f"LocalIndex does not know how processes sharing a {type(store).__name__} stay in step: "
        "pass log=None (one process) or a ChangeLog"
    )


def record_pattern(name: str) -> str:
    """The SCAN pattern of every record of the index `name` (glob characters escaped)."""
    return keys.record_pattern(name)


def head_size(dim: int) -> int:
    """Bytes to read per record: the vector (float32 at most) plus a generous header."""
    return 4 * dim + 16_384


class _Base:
    """Configuration, the in-process vectors, and what both twins decide without I/O."""

    def __init__(
        self,
        dim: int,
        prefix: str,
        dtype: Dtype,
        poll_interval: float,
        graph_from: int,
        graph: GraphParams | None,
        clock: Callable[[], float],
    ) -> None:
        self.name = index_name(prefix, dim, dtype)
        self.log_key = log_key(prefix, dim, dtype)
        self.dtype: Dtype = dtype
        self.poll_interval = poll_interval
        self._dim = dim
        self._graph_from = graph_from
        self._graph = graph
        self._clock = clock
        self._vectors = self._fresh()
        self._position: Position = ("0-0", 0)
        self._started = False
        self._polled = float("-inf")

    @property
    def dim(self) -> int:
        return self._dim

    def _fresh(self) -> Vectors:
        return Vectors(self._dim, self.dtype, self._graph_from, self._graph)

    def _record(self, item: IndexItem) -> tuple[str, Event]:
        """The record key and the add event of `item` (its bytes are the record and the log entry)."""
        vector = unit(item.vector, self._dim)
        deadline = None if item.ttl is None else self._clock() + item.ttl
        return record_key(self.name, item.key), Event("add", item.key, item.scope, vector, deadline)

    def _encode(self, event: Event) -> bytes:
        assert event.scope is not None and event.vector is not None
        return encode_add(event.key, event.scope, event.vector, event.deadline, self.dtype)

    def _touched(self, record: bytes | None, ttl: float) -> bytes | None:
        """A live add record again, with its deadline `ttl` from now (None: nothing to touch)."""
        for event in self._events([record]):
            if event.op == "add" and event.scope is not None and event.vector is not None:
                return self._encode(replace(event, deadline=self._clock() + ttl))
        return None

    def _events(self, blobs: Iterable[bytes | None]) -> Iterator[Event]:
        """Decoded events (or records); unreadable ones are skipped."""
        for data in blobs:
            if data is None:
                continue
            try:
                yield decode(data, self._dim, self.dtype)
            except (ValueError, TypeError):
                continue  # not ours (another shape, or a foreign key under our prefix)

    def _apply(self, events: Iterable[bytes]) -> None:
        """Apply log events in log order."""
        now = self._clock()
        for event in self._events(events):
            _apply_one(self._vectors, event, now)

    def _load(self, records: Iterable[Event]) -> None:
        """Replace the vectors with the store's live records (one batched build per scope)."""
        now = self._clock()
        fresh = self._fresh()
        fresh.load(
            (e.key, e.scope, e.vector, e.deadline)
            for e in records
            if e.op == "add"
            and e.scope is not None
            and e.vector is not None
            and (e.deadline is None or e.deadline > now)
        )
        self._vectors = fresh
        self._polled = time.monotonic()

    def _due(self) -> bool:
        return time.monotonic() - self._polled >= self.poll_interval

    def _search(
        self, vector: npt.ArrayLike, scope: IndexScope, k: int, min_similarity: float
    ) -> list[Match]:
        check_k(k)
        check_similarity(min_similarity)
        return self._vectors.search(
            unit(vector, self._dim), scope, k, min_similarity, self._clock()
        )


def _apply_one(vectors: Vectors, event: Event, now: float) -> None:
    if event.op == "add" and event.scope is not None and event.vector is not None:
        if event.deadline is None or event.deadline > now:
            vectors.put(event.key, event.scope, event.vector, event.deadline)
        else:
            vectors.remove([event.key])
    elif event.op == "delete":
        vectors.remove([event.key])
    elif event.op == "drop":
        vectors.clear()


class LocalIndex(_Base):
    """A VectorIndex in this process over a Store (see the module doc). Thread-safe.

    The first call rebuilds from the store's records; searches apply other processes' changes
    at most every `poll_interval` seconds (`sync()` applies them now). Below `graph_from`
    vectors a scope is scanned exactly; above, it is an HNSW graph (usearch). `clock` is wall
    time (deadlines are shared by processes) and injectable for TTL tests.
    """

    def __init__(
        self,
        store: Store,
        dim: int,
        *,
        prefix: str = "llmemo",
        dtype: Dtype = "float16",
        log: ChangeLog | Auto | None = "auto",
        log_maxlen: int = 10_000,
        poll_interval: float = 0.1,
        graph_from: int = 8192,
        graph: GraphParams | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(dim, prefix, dtype, poll_interval, graph_from, graph, clock)
        self.store = store
        self.log: ChangeLog | None = (
            _factory(store, SYNC_LOGS)(store, self.log_key, log_maxlen) if log == "auto" else log
        )
        self._lock = threading.Lock()

    def _start(self) -> None:
        if self._started:
            return
        with self._lock:
            if not self._started:
                self._rebuild()
                self._started = True

    def _rebuild(self) -> None:
        """Reload every record from the store (the log position is taken first: see changelog)."""
        if self.log is not None:
            self._position = self.log.end()
        records: list[Event] = []
        for batch in self.store.scan(record_pattern(self.name), count=1000):
            records += self._events(self.store.heads(batch, head_size(self._dim)))
        self._load(records)

    def sync(self, wait: bool = True) -> None:
        """Apply the changes other processes logged since the last sync (or rebuild if too many)."""
        if self.log is None:
            return
        self._start()
        if not self._lock.acquire(blocking=wait):
            return  # another thread is syncing right now
        try:
            self._polled = time.monotonic()
            while True:
                events, position, complete = self.log.read(self._position)
                if not complete:
                    self._rebuild()
                    return
                self._apply(events)
                self._position = position
                if len(events) < READ_BATCH:
                    return
        finally:
            self._lock.release()

    def add(self, item: IndexItem) -> None:
        self._start()
        key, event = self._record(item)
        if event.vector is None or not event.vector.any():  # no direction: never a match
            self.delete([item.key])
            return
        blob = self._encode(event)
        self.store.set(key, blob, item.ttl)
        if self.log is not None:
            self.log.append([blob])
        _apply_one(self._vectors, event, self._clock())

    def touch(self, key: str, ttl: float) -> None:
        """Re-record the vector with a later deadline (its record holds the vector)."""
        self._start()
        record = record_key(self.name, key)
        blob = self._touched(self.store.get(record), ttl)
        if blob is not None:
            self.store.set(record, blob, ttl)
            if self.log is not None:
                self.log.append([blob])
            self._apply([blob])

    def search(
        self, vector: npt.ArrayLike, scope: IndexScope, k: int = 1, min_similarity: float = 0.0
    ) -> list[Match]:
        self._start()
        if self._due():
            self.sync(wait=False)
        return self._search(vector, scope, k, min_similarity)

    def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        self._start()
        self._vectors.remove(keys)
        gone = self.store.delete([record_key(self.name, key) for key in keys])
        if self.log is not None:
            self.log.append([encode_delete(key) for key in keys])
        return gone

    def count(self) -> int:
        self.sync()
        self._start()
        self._vectors.expire(self._clock())
        return len(self._vectors)

    def drop(self) -> None:
        """Delete every record of this index from the store and empty every process's index."""
        self._start()
        for batch in self.store.scan(record_pattern(self.name), count=1000):
            self.store.delete(batch)
        self._vectors.clear()
        if self.log is not None:
            self.log.append([encode_drop()])

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


class AsyncLocalIndex(_Base):
    """The asyncio twin of LocalIndex, over an AsyncStore (same options, same records and log)."""

    def __init__(
        self,
        store: AsyncStore,
        dim: int,
        *,
        prefix: str = "llmemo",
        dtype: Dtype = "float16",
        log: AsyncChangeLog | Auto | None = "auto",
        log_maxlen: int = 10_000,
        poll_interval: float = 0.1,
        graph_from: int = 8192,
        graph: GraphParams | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(dim, prefix, dtype, poll_interval, graph_from, graph, clock)
        self.store = store
        self.log: AsyncChangeLog | None = (
            _factory(store, ASYNC_LOGS)(store, self.log_key, log_maxlen) if log == "auto" else log
        )
        self._lock: asyncio.Lock | None = None

    def _mutex(self) -> asyncio.Lock:
        if self._lock is None:  # created inside the running loop
            self._lock = asyncio.Lock()
        return self._lock

    async def _start(self) -> None:
        if self._started:
            return
        async with self._mutex():
            if not self._started:
                await self._rebuild()
                self._started = True

    async def _rebuild(self) -> None:
        if self.log is not None:
            self._position = await self.log.end()
        records: list[Event] = []
        async for batch in self.store.scan(record_pattern(self.name), count=1000):
            records += self._events(await self.store.heads(batch, head_size(self._dim)))
        await asyncio.to_thread(self._load, records)  # graph builds are CPU work: off the loop

    async def sync(self, wait: bool = True) -> None:
        """Apply the changes other processes logged since the last sync (or rebuild if too many)."""
        if self.log is None:
            return
        await self._start()
        mutex = self._mutex()
        if not wait and mutex.locked():
            return
        async with mutex:
            self._polled = time.monotonic()
            while True:
                events, position, complete = await self.log.read(self._position)
                if not complete:
                    await self._rebuild()
                    return
                self._apply(events)
                self._position = position
                if len(events) < READ_BATCH:
                    return

    async def add(self, item: IndexItem) -> None:
        await self._start()
        key, event = self._record(item)
        if event.vector is None or not event.vector.any():  # no direction: never a match
            await self.delete([item.key])
            return
        blob = self._encode(event)
        await self.store.set(key, blob, item.ttl)
        if self.log is not None:
            await self.log.append([blob])
        _apply_one(self._vectors, event, self._clock())

    async def touch(self, key: str, ttl: float) -> None:
        """Re-record the vector with a later deadline (its record holds the vector)."""
        await self._start()
        record = record_key(self.name, key)
        blob = self._touched(await self.store.get(record), ttl)
        if blob is not None:
            await self.store.set(record, blob, ttl)
            if self.log is not None:
                await self.log.append([blob])
            self._apply([blob])

    async def search(
        self, vector: npt.ArrayLike, scope: IndexScope, k: int = 1, min_similarity: float = 0.0
    ) -> list[Match]:
        await self._start()
        if self._due():
            await self.sync(wait=False)
        return self._search(vector, scope, k, min_similarity)

    async def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        await self._start()
        self._vectors.remove(keys)
        gone = await self.store.delete([record_key(self.name, key) for key in keys])
        if self.log is not None:
            await self.log.append([encode_delete(key) for key in keys])
        return gone

    async def count(self) -> int:
        await self.sync()
        await self._start()
        self._vectors.expire(self._clock())
        return len(self._vectors)

    async def drop(self) -> None:
        """Delete every record of this index from the store and empty every process's index."""
        await self._start()
        async for batch in self.store.scan(record_pattern(self.name), count=1000):
            await self.store.delete(batch)
        self._vectors.clear()
        if self.log is not None:
            await self.log.append([encode_drop()])

    async def close(self) -> None:
        if self.log is not None:
            await self.log.close()
