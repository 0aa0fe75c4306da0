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

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from llmemo._synchronization import AsyncLock, to_thread
from llmemo.index.ann import GraphParams
from llmemo.index.base import Dtype, IndexItem, IndexScope, Match, record_key
from llmemo.index.changelog import READ_BATCH, AsyncChangeLog, Event, encode_delete, encode_drop
from llmemo.index.local_base import (
    ASYNC_LOGS,
    Auto,
    LocalBase,
    _apply_one,
    head_size,
    log_factory,
    record_pattern,
)
from llmemo.stores.protocol import AsyncStore

if TYPE_CHECKING:
    import numpy.typing as npt


class AsyncLocalIndex(LocalBase):
    """A VectorIndex in this process over a Store (see the module doc). Safe for concurrent use.

    The first call rebuilds from the store's records; searches apply other processes' changes
    at most every `poll_interval` seconds (`sync()` applies them now). Below `graph_from`
    vectors a scope is scanned exactly; above, it is an HNSW graph (usearch). `clock` is wall
    time (deadlines are shared by processes) and injectable for TTL tests.
    """

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
            log_factory(store, ASYNC_LOGS)(store, self.log_key, log_maxlen)
            if log == "auto"
            else log
        )
        self._lock = AsyncLock()

    async def _start(self) -> None:
        if self._started:
            return
        async with self._lock:
            if not self._started:
                await self._rebuild()
                self._started = True

    async def _rebuild(self) -> None:
        """Reload every record from the store (the log position is taken first: see changelog)."""
        if self.log is not None:
            self._position = await self.log.end()
        records: list[Event] = []
        async for batch in self.store.scan(record_pattern(self.name), count=1000):
            records += self._events(await self.store.heads(batch, head_size(self._dim)))
        await to_thread(self._load, records)  # async: graph builds are CPU work, off the loop

    async def sync(self, wait: bool = True) -> None:
        """Apply the changes other processes logged since the last sync (or rebuild if too many)."""
        if self.log is None:
            return
        await self._start()
        if not await self._lock.acquire(blocking=wait):
            return  # another caller is syncing right now
        try:
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
        finally:
            self._lock.release()

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
