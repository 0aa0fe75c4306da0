"""SQLiteStore beyond the contract: many processes and threads on one file, purge, errors, URLs."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from llmemo.errors import ConfigError, StoreError
from llmemo.stores.sqlite import AsyncSQLiteStore, SQLiteStore
from tests.stores.conftest import FakeClock

LEASES = 150


def rows(path: Path, table: str = "entries") -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _worker(path: str, name: str, barrier: Barrier, results: Any) -> None:
    """One process: race for every lease, then mix writes and reads of shared keys."""
    won: list[str] = []
    errors: list[str] = []
    try:
        store = SQLiteStore(path)
        for i in range(LEASES):
            barrier.wait(timeout=30)  # all four ask for each lease at the same moment
            if store.add(f"lease:{i}", name.encode(), 60):
                won.append(f"lease:{i}")
        for i in range(200):
            store.set(f"shared:{i % 20}", f"{name}:{i}".encode(), 60)
            value = store.get(f"shared:{(i * 7) % 20}", refresh=60)
            assert value is None or value.startswith(b"p")
            store.incr("stats", {"ops": 1})
        store.close()
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    results.put((name, won, errors))


def test_four_processes_share_one_file(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(path, f"p{n}", barrier, results)) for n in range(4)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    assert [errors for _, _, errors in outcomes] == [[], [], [], []]
    winners = [key for _, won, _ in outcomes for key in won]
    assert len(winners) == len(set(winners)) == LEASES  # exactly one winner per lease
    store = SQLiteStore(path)
    assert store.counters("stats") == {"ops": 800}
    owners = {key: store.get(key) for key in winners}
    assert all(owners[key] == name.encode() for name, won, _ in outcomes for key in won)
    store.close()


def test_threads_share_one_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "threads.db")
    errors: list[BaseException] = []
    wins: list[str] = []

    def work(n: int) -> None:
        try:
            for i in range(100):
                store.set(f"k:{n}:{i}", b"v", 60)
                assert store.get(f"k:{n}:{i}") == b"v"
                if store.add(f"lease:{i}", str(n).encode(), 60):
                    wins.append(f"lease:{i}")
                list(store.scan(f"k:{n}:*", 10))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(wins) == sorted(f"lease:{i}" for i in range(100))
    store.close()


def test_fork_reopens_the_connection(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "fork.db")
    store.set("parent", b"p", None)
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_child_after_fork, args=(store,))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    assert store.get("child") == b"c"
    store.close()


def _child_after_fork(store: SQLiteStore) -> None:
    assert store.get("parent") == b"p"
    store.set("child", b"c", None)
    store.close()


def test_purge_removes_expired_rows(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "purge.db"
    store = SQLiteStore(path, clock=clock)
    for i in range(2500):
        store.set(f"old:{i}", b"v", 10)
    for i in range(5):
        store.set(f"new:{i}", b"v", None)
    clock.now += 11
    assert rows(path) == 2505  # expired rows are misses but still on disk...
    assert store.get("old:1") is None
    assert store.purge() == 2500  # ...until purged (in several batches)
    assert rows(path) == 5
    assert store.purge() == 0
    store.close()


def test_purge_every_n_writes_and_on_open(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "auto.db"
    store = SQLiteStore(path, clock=clock, purge_every=10)
    for i in range(5):
        store.set(f"old:{i}", b"v", 1)
    clock.now += 2
    for i in range(4):
        store.set(f"new:{i}", b"v", None)
    assert rows(path) == 9
    store.set("new:4", b"v", None)  # the 10th write purges
    assert rows(path) == 5
    for i in range(3):
        store.set(f"later:{i}", b"v", 1)
    clock.now += 2
    store.close()
    assert rows(path) == 8
    SQLiteStore(path, clock=clock).close()  # opening purges
    assert rows(path) == 5


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "cache.db"
    with pytest.raises(ConfigError, match="does not exist") as caught:
        SQLiteStore(path)
    assert str(path) in str(caught.value)
    with pytest.raises(ConfigError, match="does not exist"):
        SQLiteStore.from_url(f"sqlite:///{path}")
    assert not (tmp_path / "no").exists()  # never created behind the user's back


def test_unopenable_paths_are_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="open failed") as caught:
        SQLiteStore(tmp_path)  # a directory
    assert "\n" not in str(caught.value)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreError, match="not a database"):
        SQLiteStore(garbage)


def test_a_locked_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = SQLiteStore(path, busy_timeout=0.05)
    store.set("k", b"v", None)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="set failed: database is locked"):
            store.set("k", b"w", None)
        with pytest.raises(StoreError, match="incr failed: database is locked"):
            store.incr("stats", {"n": 1})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.incr("stats", {"n": 1})  # no transaction was left open
    assert store.counters("stats") == {"n": 1}
    store.close()


def test_a_closed_store_raises_store_error(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "closed.db")
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get("k")


@pytest.mark.asyncio
async def test_a_closed_async_store_raises_store_error(tmp_path: Path) -> None:
    store = AsyncSQLiteStore.from_url(f"sqlite:///{tmp_path / 'closed.db'}")
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.get("k")


def test_from_url_paths_and_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = SQLiteStore.from_url("sqlite:///relative.db?busy_timeout=0.5&purge_every=50")
    assert relative.path == "relative.db"
    assert relative.url == "sqlite:///relative.db?busy_timeout=0.5&purge_every=50"
    assert (tmp_path / "relative.db").exists()
    relative.close()
    absolute = SQLiteStore.from_url(f"sqlite:///{tmp_path / 'abs.db'}")
    assert absolute.path == str(tmp_path / "abs.db")
    assert os.path.isabs(absolute.path)
    absolute.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://host/cache.db", "not a sqlite store URL"),
        ("sqlite://", "not a sqlite store URL"),
        ("sqlite:///x.db?journal=off", "unknown option"),
        ("sqlite:///x.db?busy_timeout=soon", "bad option value"),
    ],
)
def test_from_url_rejects(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SQLiteStore.from_url(url)


@pytest.mark.asyncio
async def test_async_store_runs_off_the_event_loop(tmp_path: Path) -> None:
    clock = FakeClock()
    sync = SQLiteStore(tmp_path / "async.db", clock=clock)
    threads: list[int] = []
    original = sync.set

    def spy(key: str, value: bytes, ttl: float | None) -> None:
        threads.append(threading.get_ident())
        original(key, value, ttl)

    sync.set = spy  # type: ignore[method-assign]
    store = AsyncSQLiteStore(sync)
    await store.set("old", b"v", 1)
    assert threads and threading.get_ident() not in threads
    clock.now += 2
    assert await store.purge() == 1
    await store.close()


def _open_new_file(path: str, start: Any, out: Any) -> None:
    start.wait(timeout=60)
    try:
        store = SQLiteStore(path)
        store.set("k", b"v", None)
        out.put(store.get("k"))
        store.close()
    except Exception as exc:  # reported to the parent, which asserts on it
        out.put(repr(exc))


def test_many_processes_opening_a_new_file_at_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    for attempt in range(3):  # the race is on creating the file: a fresh file each time
        path = str(tmp_path / f"race{attempt}.db")
        start, out = ctx.Barrier(8), ctx.Queue()
        procs = [ctx.Process(target=_open_new_file, args=(path, start, out)) for _ in range(8)]
        for p in procs:
            p.start()
        results = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        assert results == [b"v"] * 8
