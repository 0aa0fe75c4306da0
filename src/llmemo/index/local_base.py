"""What LocalIndex and AsyncLocalIndex share without I/O: the in-process vectors, the decisions,
and which change log each kind of store uses (`SYNC_LOGS`, `ASYNC_LOGS`, `register_log`)."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from llmemo.errors import ConfigError
from llmemo.index.ann import GraphParams, Vectors
from llmemo.index.base import (
    Dtype,
    IndexItem,
    IndexScope,
    Match,
    VectorIndexError,
    check_k,
    check_similarity,
    index_name,
    log_key,
    record_key,
    unit,
)
from llmemo.index.changelog import (
    AsyncChangeLog,
    AsyncSQLiteLog,
    ChangeLog,
    Event,
    Position,
    SQLiteLog,
    decode,
    encode_add,
)
from llmemo.index.snapshot import Shape, SnapshotError
from llmemo.index.snapshot import load as load_snapshot
from llmemo.index.snapshot import save as save_snapshot
from llmemo.stores import keys

if TYPE_CHECKING:
    import numpy.typing as npt

Auto = Literal["auto"]
SnapshotPath = str | os.PathLike[str] | Auto | None
log = logging.getLogger("llmemo.index")
# The store identity outlives any entry; emptying the store drops it (and so every snapshot's claim).
IDENTITY_TTL = 10 * 365 * 86400.0
LogFactory = Callable[[Any, str, int], ChangeLog | None]
AsyncLogFactory = Callable[[Any, str, int], AsyncChangeLog | None]


def _redis_log(store: Any, key: str, maxlen: int) -> ChangeLog:
    from llmemo.index._sync.streamlog import RedisStreamLog

    return RedisStreamLog(store.client, key, maxlen)


def _async_redis_log(store: Any, key: str, maxlen: int) -> AsyncChangeLog:
    from llmemo.index._async.streamlog import AsyncRedisStreamLog

    return AsyncRedisStreamLog(store.client, key, maxlen)


def _sqlite_log(store: Any, key: str, maxlen: int) -> ChangeLog:
    return SQLiteLog(store.path, key, maxlen)


def _async_sqlite_log(store: Any, key: str, maxlen: int) -> AsyncChangeLog:
    return AsyncSQLiteLog(SQLiteLog(store.sync.path, key, maxlen))


def _one_process(store: Any, key: str, maxlen: int) -> None:
    return None


def _upstash_log(store: Any, key: str, maxlen: int) -> ChangeLog:
    from llmemo.index._sync.upstashlog import UpstashStreamLog

    return UpstashStreamLog(store.client, key, maxlen)


def _async_upstash_log(store: Any, key: str, maxlen: int) -> AsyncChangeLog:
    from llmemo.index._async.upstashlog import AsyncUpstashStreamLog

    return AsyncUpstashStreamLog(store.client, key, maxlen)


# Store class (dotted path, so no backend is imported to look it up) -> how its processes sync.
SYNC_LOGS: dict[str, LogFactory] = {
    "llmemo.stores._sync.redis.RedisStore": _redis_log,
    "llmemo.stores._sync.redis_cluster.RedisClusterStore": _redis_log,  # the stream's key has a hash tag
    "llmemo.stores.sqlite.SQLiteStore": _sqlite_log,
    "llmemo.stores.memory.MemoryStore": _one_process,
    "llmemo.stores._sync.upstash.UpstashStore": _upstash_log,
}
ASYNC_LOGS: dict[str, AsyncLogFactory] = {
    "llmemo.stores._async.redis.AsyncRedisStore": _async_redis_log,
    "llmemo.stores._async.redis_cluster.AsyncRedisClusterStore": _async_redis_log,
    "llmemo.stores.sqlite.AsyncSQLiteStore": _async_sqlite_log,
    "llmemo.stores.memory.AsyncMemoryStore": _one_process,
    "llmemo.stores._async.upstash.AsyncUpstashStore": _async_upstash_log,
}


def register_log(store_class: str, sync: LogFactory, async_: AsyncLogFactory) -> None:
    """Teach LocalIndex how processes sharing a new kind of store stay in step."""
    SYNC_LOGS[store_class] = sync
    ASYNC_LOGS[store_class] = async_


def log_factory(store: object, table: dict[str, Any]) -> Any:
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


def snapshot_dir(store: Any) -> Path:
    """Where an `auto` snapshot goes: next to an SQLite store's file, else the user cache dir."""
    for face in (store, getattr(store, "sync", None)):
        path = getattr(face, "path", None)
        if isinstance(path, str) and path != ":memory:":
            return Path(path).resolve().parent
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llmemo" / "index"


def head_size(dim: int) -> int:
    """Bytes to read per record: the vector (float32 at most) plus a generous header."""
    return 4 * dim + 16_384


class LocalBase:
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
        snapshot: SnapshotPath = None,
        snapshot_every: float | None = None,
    ) -> None:
        if snapshot_every is not None and not snapshot_every > 0:
            raise ConfigError(f"snapshot_every must be > 0 seconds or None, got {snapshot_every!r}")
        self.name = index_name(prefix, dim, dtype)
        self.identity_key = keys.vector_identity(prefix, dtype, dim)
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
        self.snapshot: Path | None = None  # resolved at start (an `auto` path names the store)
        self.resumed = False  # started from the snapshot (True) or by a rebuild (False)
        self._snapshot_arg = snapshot
        self._snapshot_every = snapshot_every
        self._identity: str | None = None
        self._changes = 0  # bumped by every change to the vectors; a save records the count
        self._saved_changes = 0
        self._saved_at = time.monotonic()
        self._saver: threading.Thread | None = None

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

    def _apply(self, events: Sequence[bytes]) -> None:
        """Apply log events in log order."""
        if not events:
            return
        self._changes += 1
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
        self._changes += 1
        self._polled = time.monotonic()

    # -- snapshots (index/snapshot.py) ------------------------------------------------------

    def _resolve_snapshot(self, store: Any, identity: str | None) -> None:
        """Name the snapshot file, once the store's identity is known (None: keep no snapshot)."""
        self._identity = identity
        arg = self._snapshot_arg
        if arg is None or identity is None:
            self.snapshot = None
        elif arg == "auto":
            digest = hashlib.sha256(f"{identity}\0{self.name}".encode()).hexdigest()[:16]
            self.snapshot = snapshot_dir(store) / f"llmemo-index-{digest}.snapshot"
        else:
            self.snapshot = Path(arg)

    def _shape(self) -> Shape:
        return Shape(
            self.name,
            self.log_key,
            self._identity or "",
            self._dim,
            self.dtype,
            self._graph_from,
            (self._graph or GraphParams()).connectivity,
        )

    def _restore(self) -> bool:
        """Load the snapshot into a fresh set of vectors; False (logged) when there is none usable."""
        if self.snapshot is None:
            return False
        fresh = self._fresh()
        try:
            position = load_snapshot(self.snapshot, self._shape(), fresh)
        except FileNotFoundError:
            log.info("no index snapshot at %s: rebuilding from the store", self.snapshot)
            return False
        except (SnapshotError, OSError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "index snapshot %s ignored (%s): rebuilding from the store", self.snapshot, exc
            )
            return False
        self._vectors, self._position = fresh, position
        self._changes = self._saved_changes = 0
        self._polled = time.monotonic()
        return True

    def _save(self) -> Path | None:
        """Write the snapshot now (None: this index keeps none). VectorIndexError if it fails."""
        path = self.snapshot
        if path is None:
            return None
        changes = self._changes
        position = self._position  # read before the vectors: they are then at least this new
        states = self._vectors.states()
        try:
            save_snapshot(path, self._shape(), position, states)
        except OSError as exc:
            raise VectorIndexError(f"index snapshot {path} not written: {exc}") from exc
        self._saved_changes = changes
        return path

    def _worth_saving(self) -> bool:
        """A snapshot pays when a rebuild would be slow: from `graph_from` vectors, when changed."""
        return (
            self.snapshot is not None
            and self._changes != self._saved_changes
            and len(self._vectors) >= self._graph_from
        )

    def _save_quietly(self) -> None:
        try:
            self._save()
        except VectorIndexError as exc:
            log.warning("%s", exc)

    def _save_in_background(self) -> None:
        """Every `snapshot_every` seconds, save on a thread of its own (searches go on)."""
        every = self._snapshot_every
        if every is None or time.monotonic() - self._saved_at < every:
            return
        if (self._saver is not None and self._saver.is_alive()) or not self._worth_saving():
            return
        self._saved_at = time.monotonic()
        self._saver = threading.Thread(
            target=self._save_quietly, name="llmemo-index-snapshot", daemon=True
        )
        self._saver.start()

    def _save_at_close(self) -> None:
        if self._saver is not None:
            self._saver.join()
        if self._started and self._worth_saving():
            self._save_quietly()

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
