"""The change log that keeps LocalIndexes of several processes in step, and its event format.

Every add, delete and drop is appended as one event; every process tails the log and applies the
events in log order (its own too: applying twice is harmless), so all processes converge on the
log's order whatever their local timing. The log is capped; a reader that fell further behind
than the cap is told (`complete=False`) and rebuilds from the store instead.

- Redis and Redis Cluster (`RedisStreamLog`, `index/_async/streamlog.py`): a stream capped with
  `XADD MAXLEN ~ N`; over Upstash REST the same stream (`index/_async/upstashlog.py`).
- SQLite (`SQLiteLog`): a table in the store's own file (AUTOINCREMENT ids; SQLite commits one
  writer at a time, so id order is commit order), trimmed to N rows with a recorded watermark.
- The memory store lives in one process: no log is needed.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from llmemo.errors import ConfigError
from llmemo.index._async.protocol import AsyncChangeLog as AsyncChangeLog
from llmemo.index._sync.protocol import ChangeLog as ChangeLog
from llmemo.index.base import Dtype, IndexScope, Vector, VectorIndexError, unit

_ADD, _DELETE, _DROP = b"a", b"d", b"c"
_NUMPY: dict[str, np.dtype[np.floating[Any]]] = {
    "float16": np.dtype("<f2"),
    "float32": np.dtype("<f4"),
}
READ_BATCH = 1000

Position = tuple[str, int]
"""Where a reader is: (the last event id read, how many events the log had added up to it)."""


@dataclass(frozen=True)
class Event:
    """One change: op 'add' (key, scope, vector, deadline), 'delete' (key) or 'drop' (all)."""

    op: str
    key: str = ""
    scope: IndexScope | None = None
    vector: Vector | None = None
    deadline: float | None = None


def encode_add(
    key: str, scope: IndexScope, vector: Vector, deadline: float | None, dtype: Dtype
) -> bytes:
    """`a` + a JSON header line (key, scope, deadline) + the vector's little-endian bytes.

    The same bytes are the durable record in the store that a starting process rebuilds from.
    """
    header = orjson.dumps(
        [
            key,
            scope.namespace,
            scope.version,
            scope.tenant,
            scope.fingerprint,
            scope.model,
            deadline,
        ]
    )
    return b"".join((_ADD, header, b"\n", vector.astype(_NUMPY[dtype]).tobytes()))


def encode_delete(key: str) -> bytes:
    return _DELETE + orjson.dumps(key)


def encode_drop() -> bytes:
    return _DROP


def decode(data: bytes, dim: int, dtype: Dtype) -> Event:
    """The inverse of the encoders; ValueError for bytes that are not an event of this shape."""
    op, body = data[:1], data[1:]
    if op == _DELETE:
        return Event("delete", key=str(orjson.loads(body)))
    if op == _DROP:
        return Event("drop")
    if op != _ADD:
        raise ValueError(f"unknown index event {op!r}")
    header, _, blob = body.partition(b"\n")
    key, ns, version, tenant, fingerprint, model, deadline = orjson.loads(header)
    vector = np.frombuffer(blob, dtype=_NUMPY[dtype])
    if vector.shape != (dim,):
        raise ValueError(f"index event vector has {vector.size} values, expected {dim}")
    scope = IndexScope(ns, version, tenant, fingerprint, model)
    return Event("add", str(key), scope, unit(vector, dim), deadline)


def log_error(command: str, exc: BaseException) -> VectorIndexError:
    text = " ".join(str(exc).split()) or "no detail"
    return VectorIndexError(f"index log {command} failed: {type(exc).__name__}: {text}")


_SQL = """
CREATE TABLE IF NOT EXISTS llmemo_index_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, log TEXT NOT NULL, event BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS llmemo_index_log_by_log ON llmemo_index_log (log, id);
CREATE TABLE IF NOT EXISTS llmemo_index_log_trim (log TEXT PRIMARY KEY, upto INTEGER NOT NULL);
"""


class SQLiteLog:
    """A ChangeLog in a table of the SQLite store's file (its own connection, WAL, busy timeout)."""

    def __init__(
        self, path: str, key: str, maxlen: int = 10_000, busy_timeout: float = 2.0
    ) -> None:
        if path == ":memory:":
            raise ConfigError("an in-memory SQLite store lives in one process: use log=None")
        self.path = path
        self.key = key
        self.maxlen = maxlen
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._appended = 0

    @contextmanager
    def _use(self, command: str) -> Iterator[sqlite3.Connection]:
        """The one connection (opened on first use), one thread at a time, errors translated."""
        with self._lock:
            try:
                if self._conn is None:
                    conn = sqlite3.connect(
                        self.path,
                        timeout=self._busy_timeout,
                        isolation_level=None,
                        check_same_thread=False,
                    )
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.executescript(_SQL)
                    self._conn = conn
                yield self._conn
            except sqlite3.Error as exc:
                raise log_error(command, exc) from exc

    def end(self) -> Position:
        with self._use("SELECT") as conn:
            row = conn.execute(
                "SELECT max(id) FROM llmemo_index_log WHERE log = ?", (self.key,)
            ).fetchone()
        last = int(row[0] or 0)
        return str(last), last

    def append(self, events: Sequence[bytes]) -> None:
        with self._use("INSERT") as conn:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT INTO llmemo_index_log (log, event) VALUES (?, ?)",
                    [(self.key, event) for event in events],
                )
            self._appended += len(events)
            if self._appended >= max(1, self.maxlen // 10):
                self._appended = 0
                self._trim(conn)

    def _trim(self, conn: sqlite3.Connection) -> None:
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            (top,) = conn.execute(
                "SELECT coalesce(max(id), 0) FROM llmemo_index_log WHERE log = ?", (self.key,)
            ).fetchone()
            upto = int(top) - self.maxlen
            if upto > 0:
                conn.execute(
                    "DELETE FROM llmemo_index_log WHERE log = ? AND id <= ?", (self.key, upto)
                )
                conn.execute(
                    "INSERT INTO llmemo_index_log_trim (log, upto) VALUES (?, ?) "
                    "ON CONFLICT (log) DO UPDATE SET upto = max(upto, excluded.upto)",
                    (self.key, upto),
                )

    def read(self, after: Position) -> tuple[list[bytes], Position, bool]:
        with self._use("SELECT") as conn, conn:
            conn.execute("BEGIN")  # one snapshot for the watermark and the rows
            trimmed = conn.execute(
                "SELECT upto FROM llmemo_index_log_trim WHERE log = ?", (self.key,)
            ).fetchone()
            rows = conn.execute(
                "SELECT id, event FROM llmemo_index_log WHERE log = ? AND id > ? "
                "ORDER BY id LIMIT ?",
                (self.key, int(after[0]), READ_BATCH),
            ).fetchall()
        complete = trimmed is None or int(trimmed[0]) <= int(after[0])
        if not rows:
            return [], after, complete
        last = int(rows[-1][0])
        return [bytes(event) for _, event in rows], (str(last), last), complete

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class AsyncSQLiteLog:
    """The asyncio twin of SQLiteLog: the same calls in a worker thread."""

    def __init__(self, log: SQLiteLog) -> None:
        self.sync = log

    async def end(self) -> Position:
        return await asyncio.to_thread(self.sync.end)

    async def append(self, events: Sequence[bytes]) -> None:
        await asyncio.to_thread(self.sync.append, events)

    async def read(self, after: Position) -> tuple[list[bytes], Position, bool]:
        return await asyncio.to_thread(self.sync.read, after)

    async def close(self) -> None:
        self.sync.close()
