"""LocalIndex: vectors searched in-process, kept durably in the store and in step across processes.

For stores without server-side vector search (the embedded SQLite file, memory, plain Redis,
Valkey). Each vector is written twice: as a record in the store, under `{index name}:{entry key}`
with the entry's TTL (what a starting process rebuilds from, by SCAN), and as an event in the
shared change log (what running processes tail, at most every `poll_interval` seconds, on
search). Searches never leave the process; a hit's payload is fetched by the caller with one GET.

Which log: `RedisStore` -> a capped Redis stream; `SQLiteStore` -> a table in the same file;
`MemoryStore` -> none (one process). Others: pass `log=` (or `log=None` for one process).

Snapshots (`index/snapshot.py`): with a log, the vectors are saved to a local file with the log
position they reflect (at close, and every `snapshot_every` seconds if set, once the index holds
`graph_from` vectors); a starting process loads that file and replays only the log after it,
instead of rebuilding from every record. A snapshot that is missing, corrupt, of another index or
store, or older than what the capped log still holds, is ignored (logged) and the index rebuilds.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from llmemo._synchronization import AsyncLock, to_thread
from llmemo.index.ann import GraphParams
from llmemo.index.base import Dtype, IndexItem, IndexScope, Match, VectorIndexError, record_key
from llmemo.index.changelog import READ_BATCH, AsyncChangeLog, Event, encode_delete, encode_drop
from llmemo.index.local_base import (
    ASYNC_LOGS,
    IDENTITY_TTL,
    Auto,
    LocalBase,
    SnapshotPath,
    _apply_one,
    head_size,
    log,
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
        snapshot: SnapshotPath = "auto",
        snapshot_every: float | None = None,
    ) -> None:
        super().__init__(
            dim, prefix, dtype, poll_interval, graph_from, graph, clock, snapshot, snapshot_every
        )
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
                self.resumed = await self._resume()
                if not self.resumed:
                    await self._rebuild()
                self._started = True

    async def _resume(self) -> bool:
        """Load the snapshot and replay the log after its position; False: rebuild instead."""
        if self.log is None or self._snapshot_arg is None:
            return False
        self._resolve_snapshot(self.store, await self._store_identity())
        if not await to_thread(self._restore):
            return False
        end = await self.log.end()
        if end[1] < self._position[1]:
            log.warning("index log %s is behind the snapshot (emptied?): rebuilding", self.log_key)
            return False
        if not await self._catch_up():
            log.warning(
                "index log %s was trimmed past the snapshot's position: rebuilding", self.log_key
            )
            return False
        return True

    async def _store_identity(self) -> str | None:
        """The random value naming this store's copy of the index (written by the first process)."""
        found = await self.store.get(self.identity_key)
        if found is None:
            await self.store.add(self.identity_key, secrets.token_hex(16).encode(), IDENTITY_TTL)
            found = await self.store.get(self.identity_key)
        return None if found is None else found.decode(errors="replace")

    async def _rebuild(self) -> None:
        """Reload every record from the store (the log position is taken first: see changelog)."""
        position = self._position if self.log is None else await self.log.end()
        records: list[Event] = []
        async for batch in self.store.scan(record_pattern(self.name), count=1000):
            records += self._events(await self.store.heads(batch, head_size(self._dim)))
        await to_thread(self._load, records)  # async: graph builds are CPU work, off the loop
        self._position = position  # after the vectors: a snapshot never claims more than they hold

    async def _catch_up(self) -> bool:
        """Apply the log after our position, batch by batch; False if it lost events we need."""
        assert self.log is not None
        while True:
            events, position, complete = await self.log.read(self._position)
            if not complete:
                return False
            self._apply(events)
            self._position = position
            if len(events) < READ_BATCH:
                return True

    async def sync(self, wait: bool = True) -> None:
        """Apply the changes other processes logged since the last sync (or rebuild if too many)."""
        if self.log is None:
            return
        await self._start()
        if not await self._lock.acquire(blocking=wait):
            return  # another caller is syncing right now
        try:
            self._polled = time.monotonic()
            if not await self._catch_up():
                await self._rebuild()
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
        self._changes += 1

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
            self._save_in_background()
        return self._search(vector, scope, k, min_similarity)

    async def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        await self._start()
        self._vectors.remove(keys)
        self._changes += 1
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
        self._changes += 1
        if self.log is not None:
            await self.log.append([encode_drop()])

    async def save_snapshot(self) -> Path | None:
        """Write the snapshot file now; its path (None: this index keeps none)."""
        await self.sync()
        await self._start()
        return await to_thread(self._save)

    async def close(self) -> None:
        """Save the snapshot if it is worth it (failures are logged), then close the log."""
        if self._started and self.snapshot is not None and self.log is not None:
            try:
                await self.sync()  # the snapshot's position is then the log's end
            except VectorIndexError as exc:
                log.warning("index log not read before the snapshot: %s", exc)
            await to_thread(self._save_at_close)
        if self.log is not None:
            await self.log.close()
