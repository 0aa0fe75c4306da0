"""The embedded default store: one SQLite file, shared safely by threads and processes."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from llmemo.errors import ConfigError, StoreError
from llmemo.stores.glob import glob_regex
from llmemo.stores.protocol import Counters

T = TypeVar("T")
log = logging.getLogger("llmemo.stores")

# A plain rowid table for entries: values are kilobytes of JSON, which WITHOUT ROWID handles badly.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL);
CREATE INDEX IF NOT EXISTS entries_expires ON entries (expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS counters (
    key TEXT NOT NULL, name TEXT NOT NULL, value NUMERIC NOT NULL, PRIMARY KEY (key, name)
) WITHOUT ROWID;
"""
_LIVE = "(expires IS NULL OR expires > ?)"
_CHUNK = 400  # keys per statement: two IN lists stay under SQLite's old 999-parameter limit
_PURGE_BATCH = 1000

# Connections inherited across fork() must be neither used nor closed by the child (SQLite's rule);
# holding them here keeps the garbage collector from closing them.
_INHERITED: list[sqlite3.Connection] = []


def _literal_prefix(pattern: str) -> str:
    """The part of a glob before its first special character (rows are read from there on)."""
    end = next((i for i, c in enumerate(pattern) if c in "*?[\\"), len(pattern))
    return pattern[:end]


def _chunks(keys: Sequence[str]) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(keys))
    for i in range(0, len(unique), _CHUNK):
        yield unique[i : i + _CHUNK]


def _no_directory(path: str, url: str | None) -> str:
    """Why a path cannot be opened, with the path resolved: `sqlite:///tmp/x.db` is the relative
    path tmp/x.db, which a hint points out when the absolute one was probably meant."""
    where = Path(path).absolute()
    message = (
        f"sqlite store path {path!r} ({where}): directory {str(where.parent)!r} does not exist"
    )
    if url is not None and not Path(path).is_absolute() and Path("/", path).parent.is_dir():
        return f"{message}; use four slashes for an absolute path: sqlite:////{path}"
    return f"{message} (create it first)"


def _marks(n: int) -> str:
    return ",".join("?" * n)


class SQLiteStore:
    """A Store in one SQLite file (WAL): safe for several threads and processes at once.

    Expired rows are misses on read and purged on open and every `purge_every` writes. `clock` is
    wall time (processes share the file) and injectable so TTL tests need not sleep.
    `busy_timeout` bounds how long a call waits for another writer before failing with StoreError.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 2.0,
        purge_every: int = 1000,
        url: str | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.url = url or f"sqlite:///{self.path}"
        parent = Path(self.path).parent
        if self.path != ":memory:" and not parent.is_dir():
            raise ConfigError(_no_directory(self.path, url))
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._purge_every = max(1, purge_every)
        self._writes = 0
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._conn: sqlite3.Connection | None = self._open()
        try:
            self.purge()
        except StoreError:
            self.close()
            raise

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 2.0,
        purge_every: int = 1000,
    ) -> SQLiteStore:
        """`sqlite:///relative.db` or `sqlite:////abs/path.db`; the query may set
        `busy_timeout` (seconds) and `purge_every` (writes), and wins over the arguments."""
        parts = urlsplit(url)
        if parts.scheme.lower() != "sqlite" or parts.netloc or len(parts.path) < 2:
            raise ConfigError(
                f"not a sqlite store URL: {url!r} (expected sqlite:///relative.db or sqlite:////abs/path.db)"
            )
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = set(query) - {"busy_timeout", "purge_every"}
        if unknown:
            raise ConfigError(
                f"unknown option(s) {', '.join(sorted(unknown))} in {url!r}; known: busy_timeout, purge_every"
            )
        try:
            busy_timeout = float(query.get("busy_timeout", busy_timeout))
            purge_every = int(query.get("purge_every", purge_every))
        except ValueError:
            raise ConfigError(
                f"bad option value in {url!r}: busy_timeout is seconds, purge_every an integer"
            ) from None
        path = unquote(parts.path[1:])
        return cls(path, clock=clock, busy_timeout=busy_timeout, purge_every=purge_every, url=url)

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._error("open", exc) from exc
        try:
            self._enable_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable enough for a cache
            conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            conn.close()
            raise self._error("open", exc) from exc
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch a new file to WAL. SQLite answers "database is locked" at once (no busy handler)
        when several processes open a new file together, so retry until the busy timeout."""
        deadline = time.monotonic() + self._busy_timeout
        delay = 0.005
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                locked = "locked" in str(exc) or "busy" in str(exc)
                if not locked or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _error(self, op: str, exc: BaseException) -> StoreError:
        text = " ".join(str(exc).split()) or type(exc).__name__
        return StoreError(f"sqlite store {self.path!r}: {op} failed: {text}")

    @contextmanager
    def _use(self, op: str, write: bool = False) -> Iterator[sqlite3.Connection]:
        """The connection, under the thread lock, with sqlite errors translated to StoreError."""
        if self._pid != os.getpid():
            self._after_fork()
        with self._lock:
            if self._conn is None:
                raise StoreError(f"sqlite store {self.path!r}: {op} failed: the store is closed")
            conn = self._conn
            try:
                yield conn
                if write:
                    self._wrote(conn)
            except sqlite3.Error as exc:
                raise self._error(op, exc) from exc
            finally:
                if conn.in_transaction:  # the body failed inside BEGIN ... COMMIT
                    with suppress(sqlite3.Error):
                        conn.rollback()

    @contextmanager
    def _transaction(self, op: str) -> Iterator[sqlite3.Connection]:
        """A short write transaction taking the write lock up front (read-modify-write)."""
        with self._use(op, write=True) as conn:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")

    def _after_fork(self) -> None:
        if self._conn is not None:
            _INHERITED.append(self._conn)
            self._conn = None
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._conn = self._open()

    def _wrote(self, conn: sqlite3.Connection) -> None:
        self._writes += 1
        if self._writes % self._purge_every == 0:
            try:
                self._purge_batch(conn)
            except sqlite3.OperationalError as exc:  # the write itself succeeded; purge next time
                log.debug("sqlite store %r: purge skipped: %s", self.path, exc)

    def _purge_batch(self, conn: sqlite3.Connection) -> int:
        cursor = conn.execute(
            "DELETE FROM entries WHERE rowid IN"
            " (SELECT rowid FROM entries WHERE expires <= ? LIMIT ?)",
            (self._clock(), _PURGE_BATCH),
        )
        return cursor.rowcount

    def purge(self) -> int:
        """Delete every expired row (in short batches); returns how many went."""
        total = 0
        while True:
            with self._use("purge") as conn:
                gone = self._purge_batch(conn)
            total += gone
            if gone < _PURGE_BATCH:
                return total

    def scrub(self) -> bool:
        """Leave no byte of deleted rows in the files (after an erasure): VACUUM rewrites the
        database without its free pages, then a TRUNCATE checkpoint empties the write-ahead log,
        whose old frames still hold the pages as they were. False when another connection's open
        read kept the checkpoint from finishing (the old frames then go at its next checkpoint)."""
        with self._use("scrub") as conn:
            conn.execute("VACUUM")
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy

    def get(self, key: str, refresh: float | None = None) -> bytes | None:
        now = self._clock()
        with self._use("get", write=refresh is not None) as conn:
            row = conn.execute(
                f"SELECT value FROM entries WHERE key = ? AND {_LIVE}", (key, now)
            ).fetchone()
            if row is not None and refresh is not None:
                conn.execute("UPDATE entries SET expires = ? WHERE key = ?", (now + refresh, key))
        return None if row is None else bytes(row[0])

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        expires = None if ttl is None else self._clock() + ttl
        with self._use("set", write=True) as conn:
            conn.execute(
                "INSERT INTO entries (key, value, expires) VALUES (?, ?, ?) ON CONFLICT (key)"
                " DO UPDATE SET value = excluded.value, expires = excluded.expires",
                (key, value, expires),
            )

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        now = self._clock()
        with self._use("add", write=True) as conn:
            # One statement is atomic: insert, or replace only a row that has expired.
            cursor = conn.execute(
                "INSERT INTO entries (key, value, expires) VALUES (?, ?, ?) ON CONFLICT (key)"
                " DO UPDATE SET value = excluded.value, expires = excluded.expires"
                " WHERE entries.expires IS NOT NULL AND entries.expires <= ?",
                (key, value, now + ttl, now),
            )
            return cursor.rowcount == 1

    def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        now = self._clock()
        gone = 0
        with self._transaction("delete") as conn:
            for chunk in _chunks(keys):
                marks = _marks(len(chunk))
                (found,) = conn.execute(
                    f"SELECT COUNT(*) FROM (SELECT key FROM entries WHERE key IN ({marks}) AND {_LIVE}"
                    f" UNION SELECT key FROM counters WHERE key IN ({marks}))",
                    (*chunk, now, *chunk),
                ).fetchone()
                gone += found
                conn.execute(f"DELETE FROM entries WHERE key IN ({marks})", chunk)
                conn.execute(f"DELETE FROM counters WHERE key IN ({marks})", chunk)
        return int(gone)

    def delete_if_equal(self, key: str, value: bytes) -> bool:
        with self._use("delete_if_equal", write=True) as conn:
            cursor = conn.execute(
                f"DELETE FROM entries WHERE key = ? AND value = ? AND {_LIVE}",
                (key, value, self._clock()),
            )
            return cursor.rowcount == 1

    def expire_if_equal(self, key: str, value: bytes, ttl: float) -> bool:
        now = self._clock()
        with self._use("expire_if_equal", write=True) as conn:
            cursor = conn.execute(
                f"UPDATE entries SET expires = ? WHERE key = ? AND value = ? AND {_LIVE}",
                (now + ttl, key, value, now),
            )
            return cursor.rowcount == 1

    def scan(self, pattern: str, count: int = 500) -> Iterator[list[str]]:
        # Keyset pages in key order from the pattern's literal prefix: no read transaction or lock
        # is held between batches, and each key is seen once.
        regex = glob_regex(pattern)
        prefix = _literal_prefix(pattern)
        after, op = prefix, ">="
        while True:
            with self._use("scan") as conn:
                rows = conn.execute(
                    f"SELECT key FROM entries WHERE key {op} ? AND {_LIVE} ORDER BY key LIMIT ?",
                    (after, self._clock(), max(1, count)),
                ).fetchall()
            keys = [key for (key,) in rows]
            in_range = [key for key in keys if key.startswith(prefix)]
            batch = [key for key in in_range if regex.fullmatch(key)]
            if batch:
                yield batch
            if len(in_range) < max(1, count):
                return
            after, op = keys[-1], ">"

    def scan_page(self, pattern: str, cursor: str = "", count: int = 500) -> tuple[str, list[str]]:
        """One page of keys in key order after `cursor` (the last key of the page before)."""
        prefix = _literal_prefix(pattern)
        after, op = (cursor, ">") if cursor else (prefix, ">=")
        with self._use("scan") as conn:
            rows = conn.execute(
                f"SELECT key FROM entries WHERE key {op} ? AND {_LIVE} ORDER BY key LIMIT ?",
                (after, self._clock(), max(1, count)),
            ).fetchall()
        keys = [key for (key,) in rows]
        in_range = [key for key in keys if key.startswith(prefix)]
        regex = glob_regex(pattern)
        page = [key for key in in_range if regex.fullmatch(key)]
        return ("" if len(in_range) < max(1, count) else keys[-1]), page

    def swap(self, key: str, old: bytes, new: bytes) -> bool:
        with self._use("swap", write=True) as conn:
            cursor = conn.execute(
                f"UPDATE entries SET value = ? WHERE key = ? AND value = ? AND {_LIVE}",
                (new, key, old, self._clock()),
            )
            return cursor.rowcount == 1

    def swap_many(self, items: Sequence[tuple[str, bytes, bytes]]) -> list[bool]:
        done: list[bool] = []
        with self._transaction("swap") as conn:
            now = self._clock()
            for key, old, new in items:
                cursor = conn.execute(
                    f"UPDATE entries SET value = ? WHERE key = ? AND value = ? AND {_LIVE}",
                    (new, key, old, now),
                )
                done.append(cursor.rowcount == 1)
        return done

    def heads(self, keys: Sequence[str], size: int) -> list[bytes | None]:
        found: dict[str, bytes] = {}
        with self._use("heads") as conn:
            for chunk in _chunks(keys):
                rows = conn.execute(
                    f"SELECT key, substr(value, 1, ?) FROM entries WHERE key IN ({_marks(len(chunk))})"
                    f" AND {_LIVE}",
                    (max(0, size), *chunk, self._clock()),
                )
                # substr() of an empty blob is NULL, not x''
                found.update((key, bytes(head or b"")) for key, head in rows)
        return [found.get(key) for key in keys]

    def incr(self, key: str, amounts: Counters) -> dict[str, float]:
        if not amounts:
            return {}
        with self._transaction("incr") as conn:
            conn.executemany(
                "INSERT INTO counters (key, name, value) VALUES (?, ?, ?) ON CONFLICT (key, name)"
                " DO UPDATE SET value = value + excluded.value",
                [(key, name, amount) for name, amount in amounts.items()],
            )
            values = dict(
                conn.execute("SELECT name, value FROM counters WHERE key = ?", (key,)).fetchall()
            )
        return {name: float(values[name]) for name in amounts}

    def counters(self, key: str) -> dict[str, float]:
        with self._use("counters") as conn:
            rows = conn.execute("SELECT name, value FROM counters WHERE key = ?", (key,)).fetchall()
        return {name: float(value) for name, value in rows}

    def ping(self) -> None:
        with self._use("ping") as conn:
            conn.execute("SELECT 1").fetchone()

    def close(self) -> None:
        if self._pid != os.getpid() and self._conn is not None:
            _INHERITED.append(self._conn)  # the parent's: not ours to close
            self._conn = None
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None


class AsyncSQLiteStore:
    """The asyncio face of a SQLiteStore: each call runs on one worker thread, off the event loop."""

    def __init__(self, store: SQLiteStore) -> None:
        self.sync = store
        self.url = store.url
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="llmemo-sqlite"
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> AsyncSQLiteStore:
        """As SQLiteStore.from_url (same options)."""
        return cls(SQLiteStore.from_url(url, **options))

    async def _run(self, call: Callable[..., T], *args: object) -> T:
        if self._executor is None:
            raise StoreError(f"sqlite store {self.sync.path!r}: the store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, call, *args)

    async def get(self, key: str, refresh: float | None = None) -> bytes | None:
        return await self._run(self.sync.get, key, refresh)

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        await self._run(self.sync.set, key, value, ttl)

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        return await self._run(self.sync.add, key, value, ttl)

    async def delete(self, keys: Sequence[str]) -> int:
        return await self._run(self.sync.delete, keys)

    async def delete_if_equal(self, key: str, value: bytes) -> bool:
        return await self._run(self.sync.delete_if_equal, key, value)

    async def expire_if_equal(self, key: str, value: bytes, ttl: float) -> bool:
        return await self._run(self.sync.expire_if_equal, key, value, ttl)

    async def scan(self, pattern: str, count: int = 500) -> AsyncIterator[list[str]]:
        batches = self.sync.scan(pattern, count)
        while (batch := await self._run(next, batches, None)) is not None:
            yield batch

    async def scan_page(
        self, pattern: str, cursor: str = "", count: int = 500
    ) -> tuple[str, list[str]]:
        return await self._run(self.sync.scan_page, pattern, cursor, count)

    async def swap(self, key: str, old: bytes, new: bytes) -> bool:
        return await self._run(self.sync.swap, key, old, new)

    async def swap_many(self, items: Sequence[tuple[str, bytes, bytes]]) -> list[bool]:
        return await self._run(self.sync.swap_many, items)

    async def heads(self, keys: Sequence[str], size: int) -> list[bytes | None]:
        return await self._run(self.sync.heads, keys, size)

    async def incr(self, key: str, amounts: Counters) -> dict[str, float]:
        return await self._run(self.sync.incr, key, amounts)

    async def counters(self, key: str) -> dict[str, float]:
        return await self._run(self.sync.counters, key)

    async def purge(self) -> int:
        """Delete every expired row; returns how many went."""
        return await self._run(self.sync.purge)

    async def scrub(self) -> bool:
        """See `SQLiteStore.scrub`."""
        return await self._run(self.sync.scrub)

    async def ping(self) -> None:
        await self._run(self.sync.ping)

    async def close(self) -> None:
        if self._executor is not None:
            await self._run(self.sync.close)
            self._executor.shutdown(wait=False)
            self._executor = None
