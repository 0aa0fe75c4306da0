"""LocalIndex snapshots: a restart loads the saved vectors and replays only the log after them,
consistent with what other writers changed meanwhile; a corrupt, mismatched or too old snapshot
is ignored (logged) and the index rebuilds from the store."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import redis

from llmemo.index import AsyncLocalIndex, LocalIndex
from llmemo.index.ann import GraphParams, Vectors
from llmemo.index.base import IndexItem, IndexScope, record_key
from llmemo.index.snapshot import MAGIC, Shape, SnapshotError, load, save
from llmemo.stores import AsyncRedisStore, RedisStore
from llmemo.stores.sqlite import AsyncSQLiteStore, SQLiteStore
from tests.index.conftest import DIM, random_unit, scope

GRAPH_FROM = 16  # the big scope is a usearch graph, the small one an exact matrix
BIG, SMALL = scope(), scope(tenant="t")

Opener = Callable[..., LocalIndex]


@pytest.fixture(params=["redis", "sqlite"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """A LocalIndex on a fresh store client (Redis stream log, or SQLite table log)."""

    def open_index(**options: Any) -> LocalIndex:
        if request.param == "redis":
            store: Any = RedisStore.from_url(request.getfixturevalue("redis_url"))
        else:
            store = SQLiteStore(tmp_path / "cache.db")
        options.setdefault("snapshot", tmp_path / "index.snapshot")
        return LocalIndex(store, DIM, graph_from=GRAPH_FROM, poll_interval=0, **options)

    return open_index


def vectors(n: int, seed: int = 7) -> npt.NDArray[np.float32]:
    return random_unit(np.random.default_rng(seed), n)


def fill(
    index: LocalIndex, rows: npt.NDArray[np.float32], prefix: str, where: IndexScope, start: int = 0
) -> None:
    for i, v in enumerate(rows, start=start):
        index.add(IndexItem(f"{prefix}{i}", v, where, ttl=3600))


def nearest(index: LocalIndex, v: npt.NDArray[np.float32], where: IndexScope = BIG) -> list[str]:
    return [m.key for m in index.search(v, where, k=3)]


def close(*indexes: LocalIndex) -> None:
    for index in indexes:
        index.close()
        index.store.close()


def test_restart_loads_the_snapshot_and_replays_changes_made_while_down(opener: Opener) -> None:
    old, new, few = vectors(60), vectors(20, seed=8), vectors(3, seed=9)
    first = opener()
    fill(first, old, "old", BIG)
    fill(first, few, "few", SMALL)
    first.close()  # saves: 63 vectors >= graph_from
    assert first.snapshot is not None and first.snapshot.read_bytes().startswith(MAGIC)
    first.store.close()

    writer = opener(snapshot=None)  # another process, while the first one is down
    fill(writer, new, "new", BIG)
    writer.delete(["old0", "old1", "few0"])
    writer.add(IndexItem("old2", few[1], SMALL))  # moves to the other scope

    second = opener()
    assert "new4" in nearest(second, new[4])
    assert second.resumed  # from the file, not by a rebuild
    assert "old0" not in nearest(second, old[0])
    assert "few0" not in nearest(second, few[0], SMALL)
    assert nearest(second, few[1], SMALL)[:2] == sorted(["old2", "few1"])
    assert "old2" not in nearest(second, old[2])
    assert "old30" in nearest(second, old[30])
    rebuilt = opener(snapshot=None)
    assert second.count() == rebuilt.count() == 60 - 2 + 20 + 2
    # Both hold the same vectors. Both are HNSW graphs, approximate: a small graph with deletes
    # misses an exact vector now and then (about 1 check in 70 with or without a snapshot), so
    # each must find all but at most two of the 16 in its top 10.
    kept = [(f"old{i}", old[i]) for i in range(7, 60, 7)]
    kept += [(f"new{i}", new[i]) for i in range(0, 20, 3)]
    for index in (second, rebuilt):
        found = [key in [m.key for m in index.search(v, BIG, k=10)] for key, v in kept]
        assert sum(found) >= len(kept) - 2, found
    close(writer, second, rebuilt)


def test_adds_after_a_restore_never_reuse_a_removed_label(opener: Opener) -> None:
    rows = vectors(40)
    first = opener()
    fill(first, rows, "k", BIG)
    first.delete(["k39", "k38"])  # the graph's highest labels are now free, but used
    close(first)
    second = opener()
    second.add(IndexItem("late", rows[39], BIG))
    assert second.resumed
    assert nearest(second, rows[39])[0] == "late"
    assert nearest(second, rows[0])[0] == "k0"
    assert second.count() == 39
    close(second)


def saved(opener: Opener, rows: npt.NDArray[np.float32]) -> Path:
    index = opener()
    fill(index, rows, "k", BIG)
    path = index.save_snapshot()
    assert path is not None and path.exists()
    close(index)
    return path


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "empty"])
def test_a_corrupt_snapshot_is_ignored_and_the_index_rebuilds(
    opener: Opener, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    rows = vectors(30)
    path = saved(opener, rows)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x40
    elif damage == "truncate":
        data = data[: len(data) - 100]
    elif damage == "garbage":
        data = bytearray(b"x" * 100)
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="llmemo.index"):
        index = opener()
        assert index.count() == 30
    assert not index.resumed
    assert "ignored" in caplog.text
    assert index.count() == 30
    close(index)


def test_a_snapshot_of_another_index_is_ignored(
    opener: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    rows = vectors(30)
    saved(opener, rows)
    with caplog.at_level(logging.WARNING, logger="llmemo.index"):
        other = opener(prefix="other")  # same file, another index name
        assert other.count() == 0
        wider = opener(graph=GraphParams(connectivity=32))  # same index, more links per node
        assert wider.count() == 30  # rebuilt from the records
    assert not other.resumed and not wider.resumed
    assert "name is 'llmemo:~vec:f16:16'" in caplog.text
    assert "connectivity is 16" in caplog.text
    caplog.clear()
    searching = opener(graph=GraphParams(expansion_add=64, expansion_search=256))
    assert searching.count() == 30
    assert searching.resumed  # effort settings are not in the graph: the snapshot serves
    close(other, wider, searching)


def test_a_snapshot_of_an_emptied_store_is_ignored(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "index.snapshot"
    first = LocalIndex(RedisStore.from_url(redis_url), DIM, graph_from=GRAPH_FROM, snapshot=path)
    fill(first, vectors(30), "k", BIG)
    close(first)
    redis.Redis.from_url(redis_url).flushdb()  # the records, the log and the identity are gone
    with caplog.at_level(logging.WARNING, logger="llmemo.index"):
        second = LocalIndex(
            RedisStore.from_url(redis_url), DIM, graph_from=GRAPH_FROM, snapshot=path
        )
        assert second.count() == 0
    assert not second.resumed
    assert "store is" in caplog.text
    close(second)


def test_a_log_trimmed_past_the_snapshot_means_a_rebuild(
    opener: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    rows = vectors(200)
    first = opener(log_maxlen=10)
    fill(first, rows[:30], "k", BIG)
    close(first)
    writer = opener(log_maxlen=10, snapshot=None)
    fill(writer, rows[30:], "k", BIG, start=30)  # 170 adds: far more than the log keeps
    writer.delete(["k0"])
    with caplog.at_level(logging.WARNING, logger="llmemo.index"):
        second = opener(log_maxlen=10)
        assert nearest(second, rows[150])[0] == "k150"
    assert not second.resumed
    assert "trimmed past the snapshot" in caplog.text
    assert second.count() == 199
    assert "k0" not in nearest(second, rows[0])
    close(writer, second)


def test_small_indexes_and_unchanged_ones_are_not_saved(opener: Opener) -> None:
    small = opener()
    fill(small, vectors(GRAPH_FROM - 1), "k", BIG)
    close(small)
    assert small.snapshot is not None and not small.snapshot.exists()  # a rebuild is quick
    path = saved(opener, vectors(30))
    before = path.stat().st_mtime_ns
    path.touch()
    touched = path.stat().st_mtime_ns
    again = opener()
    assert again.count() == 30 and again.resumed
    close(again)  # nothing changed since the snapshot: not rewritten
    assert path.stat().st_mtime_ns == touched >= before


def test_snapshot_every_saves_on_a_background_thread(opener: Opener) -> None:
    index = opener(snapshot_every=1e-9)
    fill(index, vectors(30), "k", BIG)
    index.search(vectors(1)[0], BIG)  # due: sync, then a save on its own thread
    assert index._saver is not None
    index._saver.join()
    assert index.snapshot is not None and index.snapshot.exists()
    assert opener().count() == 30
    close(index)


def test_auto_snapshot_sits_next_to_the_sqlite_file_and_names_the_store(tmp_path: Path) -> None:
    first = LocalIndex(SQLiteStore(tmp_path / "a.db"), DIM, graph_from=GRAPH_FROM)
    other = LocalIndex(SQLiteStore(tmp_path / "b.db"), DIM, graph_from=GRAPH_FROM)
    assert first.count() == other.count() == 0
    assert first.snapshot is not None and other.snapshot is not None
    assert first.snapshot.parent == tmp_path == other.snapshot.parent
    assert first.snapshot != other.snapshot  # two stores: two identities, two files
    assert first.snapshot.name.startswith("llmemo-index-")
    close(first, other)


def test_no_log_no_snapshot() -> None:
    from llmemo.stores.memory import MemoryStore

    index = LocalIndex(MemoryStore(), DIM, graph_from=GRAPH_FROM)
    fill(index, vectors(30), "k", BIG)
    assert index.save_snapshot() is None
    assert not index.resumed


@pytest.mark.asyncio
@pytest.mark.parametrize("backend", ["redis", "sqlite"])
async def test_async_index_restarts_from_its_snapshot(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    def store() -> Any:
        if backend == "redis":
            return AsyncRedisStore.from_url(request.getfixturevalue("redis_url"))
        return AsyncSQLiteStore(SQLiteStore(tmp_path / "cache.db"))

    path, rows = tmp_path / "a.snapshot", vectors(40)
    first = AsyncLocalIndex(store(), DIM, graph_from=GRAPH_FROM, snapshot=path)
    for i, v in enumerate(rows[:30]):
        await first.add(IndexItem(f"k{i}", v, BIG))
    await first.close()
    await first.store.close()
    writer = AsyncLocalIndex(store(), DIM, graph_from=GRAPH_FROM, snapshot=None)
    for i, v in enumerate(rows[30:], start=30):
        await writer.add(IndexItem(f"k{i}", v, BIG))
    await writer.delete(["k5"])
    second = AsyncLocalIndex(store(), DIM, graph_from=GRAPH_FROM, snapshot=path)
    assert (await second.search(rows[35], BIG))[0].key == "k35"
    assert second.resumed
    assert [m.key for m in await second.search(rows[5], BIG, k=40)].count("k5") == 0
    assert await second.count() == 39
    for index in (writer, second):
        await index.close()
        await index.store.close()


def test_a_snapshot_round_trips_graphs_matrices_and_deadlines(tmp_path: Path) -> None:
    rows = vectors(50)
    before = Vectors(DIM, "float16", GRAPH_FROM, GraphParams())
    for i, v in enumerate(rows):
        before.put(f"g{i}", BIG, v, 1e12 + i if i % 2 else None)
    before.put("m0", SMALL, rows[0], 5.0)
    before.remove(["g3"])
    shape = Shape("n", "l", "id", DIM, "float16", GRAPH_FROM, 16)
    path = tmp_path / "s"
    assert save(path, shape, ("12-0", 12), before.states()) == path.stat().st_size
    after = Vectors(DIM, "float16", GRAPH_FROM, GraphParams())
    assert load(path, shape, after) == ("12-0", 12)
    assert len(after) == 50
    assert after.search(rows[0], SMALL, 1, 0.0, now=1.0)[0].key == "m0"
    assert after.expire(now=10.0) == 1  # m0's deadline came back
    assert after.search(rows[7], BIG, 1, 0.0, now=10.0)[0].key == "g7"
    with pytest.raises(SnapshotError, match="dim is 16"):
        load(path, Shape("n", "l", "id", 8, "float16", GRAPH_FROM, 16), after)
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed
    assert record_key("n", "k") == "n:k"
