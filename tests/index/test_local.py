"""LocalIndex beyond the contract: processes converge through the log, restarts rebuild from the
store, a reader that fell behind the capped log rebuilds, scopes turn into graphs when large."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devtools.redis_server import RedisServer
from devtools.upstash_gateway import UpstashGateway
from llmemo.index import AsyncLocalIndex, LocalIndex, RedisStreamLog
from llmemo.index.ann import GraphParams, ScopeVectors
from llmemo.index.base import IndexItem, record_key
from llmemo.index.changelog import decode, encode_add, encode_delete, encode_drop
from llmemo.index.local_base import record_pattern
from llmemo.stores import AsyncRedisStore, RedisStore, UpstashStore
from llmemo.stores.memory import MemoryStore
from llmemo.stores.sqlite import SQLiteStore
from tests.index.conftest import DIM, FakeClock, basis, random_unit, scope


def keys(index: LocalIndex, i: int, k: int = 10, **where: Any) -> list[str]:
    return [m.key for m in index.search(basis(i), scope(**where), k=k)]


def _peer(url: str, commands: Queue[tuple[Any, ...]], replies: Queue[Any]) -> None:
    """Another process with its own LocalIndex on the same Redis, driven by the test."""
    index = LocalIndex(RedisStore.from_url(url), DIM, poll_interval=0)
    while True:
        op, *args = commands.get(timeout=60)
        if op == "add":
            index.add(IndexItem(args[0], basis(args[1]), scope()))
            replies.put("ok")
        elif op == "delete":
            replies.put(index.delete([args[0]]))
        elif op == "search":
            replies.put(keys(index, args[0]))
        else:
            replies.put("bye")
            return


def test_two_processes_converge_through_the_stream(redis_url: str) -> None:
    here = LocalIndex(RedisStore.from_url(redis_url), DIM, poll_interval=0)
    here.add(IndexItem("before", basis(0), scope()))  # in the store before the peer starts
    ctx = multiprocessing.get_context("spawn")
    commands: Queue[tuple[Any, ...]] = ctx.Queue()
    replies: Queue[Any] = ctx.Queue()
    peer = ctx.Process(target=_peer, args=(redis_url, commands, replies))
    peer.start()
    try:

        def ask(*command: Any) -> Any:
            commands.put(command)
            return replies.get(timeout=60)

        assert ask("search", 0) == ["before"]  # rebuilt from the store at start
        assert ask("add", "theirs", 1) == "ok"
        assert keys(here, 1) == ["theirs", "before"]  # insert in B -> visible in A
        here.add(IndexItem("mine", basis(2), scope()))
        assert ask("search", 2)[0] == "mine"  # insert in A -> visible in B
        assert here.delete(["before"]) == 1
        assert "before" not in ask("search", 0)  # delete in A -> gone in B
        assert ask("delete", "theirs") == 1
        assert keys(here, 1) == ["mine"]  # delete in B -> gone in A
        assert ask("stop") == "bye"
    finally:
        peer.join(timeout=30)
    assert peer.exitcode == 0


def test_polling_is_throttled_and_sync_applies_now(redis_url: str) -> None:
    writer = LocalIndex(RedisStore.from_url(redis_url), DIM)
    reader = LocalIndex(RedisStore.from_url(redis_url), DIM, poll_interval=3600)
    assert keys(reader, 0) == []  # started: rebuilt, polled
    writer.add(IndexItem("new", basis(0), scope()))
    assert keys(reader, 0) == []  # not due yet: no round trip on this search
    reader.sync()
    assert keys(reader, 0) == ["new"]


@pytest.mark.asyncio
async def test_async_twins_converge(redis_url: str) -> None:
    a_store, b_store = AsyncRedisStore.from_url(redis_url), AsyncRedisStore.from_url(redis_url)
    a = AsyncLocalIndex(a_store, DIM, poll_interval=0)
    b = AsyncLocalIndex(b_store, DIM, poll_interval=0)
    await a.add(IndexItem("x", basis(0), scope()))
    assert [m.key for m in await b.search(basis(0), scope())] == ["x"]
    await b.delete(["x"])
    assert await a.search(basis(0), scope()) == []
    await a_store.close()
    await b_store.close()


def test_restart_rebuilds_from_the_store(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SQLiteStore(tmp_path / "cache.db", clock=clock)
    first = LocalIndex(store, DIM, clock=clock)
    first.add(IndexItem("kept", basis(0), scope(), ttl=100))
    first.add(IndexItem("deleted", basis(0), scope()))
    first.add(IndexItem("expiring", basis(0), scope(), ttl=5))
    first.add(IndexItem("elsewhere", basis(0), scope(tenant="t")))
    first.delete(["deleted"])
    store.set(record_key(first.name, "junk"), b"not an event", None)  # skipped, not fatal
    first.close()
    clock.now += 10
    second = LocalIndex(SQLiteStore(tmp_path / "cache.db", clock=clock), DIM, clock=clock)
    assert keys(second, 0) == ["kept"]
    assert keys(second, 0, tenant="t") == ["elsewhere"]
    assert second.count() == 2


@pytest.fixture
def upstash_url(redis_url: str, redis_server: RedisServer) -> Iterator[str]:
    with UpstashGateway(redis_server.url) as gateway:
        yield gateway.store_url


@pytest.mark.parametrize("backend", ["redis", "sqlite", "upstash"])
def test_a_reader_behind_the_capped_log_rebuilds(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    def store() -> Any:
        if backend == "redis":
            return RedisStore.from_url(request.getfixturevalue("redis_url"))
        if backend == "upstash":
            return UpstashStore.from_url(request.getfixturevalue("upstash_url"))
        return SQLiteStore(tmp_path / "cache.db")

    writer = LocalIndex(store(), DIM, log_maxlen=10)
    reader = LocalIndex(store(), DIM, log_maxlen=10, poll_interval=3600)
    assert reader.count() == 0
    vectors = random_unit(np.random.default_rng(1), 400)
    for i, v in enumerate(vectors):
        writer.add(IndexItem(f"k{i}", v, scope()))
    writer.delete(["k0"])
    assert writer.log is not None
    events, _, complete = writer.log.read(("0", 0) if backend == "sqlite" else ("0-0", 0))
    assert not complete and len(events) < 400  # the log really was trimmed
    assert reader.count() == 399  # rebuilt from the records
    assert keys(reader, 0, k=1) != ["k0"]
    assert reader.search(vectors[5], scope())[0].key == "k5"
    for index in (writer, reader):
        index.store.close()


def test_sqlite_processes_share_a_table_log(tmp_path: Path) -> None:
    a = LocalIndex(SQLiteStore(tmp_path / "c.db"), DIM, poll_interval=0)
    b = LocalIndex(SQLiteStore(tmp_path / "c.db"), DIM, poll_interval=0)
    a.add(IndexItem("x", basis(0), scope()))
    assert keys(b, 0) == ["x"]
    b.drop()
    assert keys(a, 0) == []
    a.close()
    b.close()


def test_stream_key_has_its_own_hash_tag(redis_url: str) -> None:
    index = LocalIndex(RedisStore.from_url(redis_url), DIM)
    assert isinstance(index.log, RedisStreamLog)
    assert index.log.key == "llmemo:~vlog:f16:16:{llmemo-index}"
    index.add(IndexItem("x", basis(0), scope()))
    client = index.log.client
    assert client.type(index.log.key) == b"stream"
    assert [k.decode() for k in client.keys(record_pattern(index.name))] == [
        record_key(index.name, "x")
    ]


def test_memory_store_needs_no_log() -> None:
    index = LocalIndex(MemoryStore(), DIM)
    assert index.log is None
    index.sync()  # nothing to do
    index.add(IndexItem("x", basis(0), scope()))
    assert keys(index, 0) == ["x"]


def test_large_scopes_become_graphs_and_stay_exactly_scoped() -> None:
    index = LocalIndex(MemoryStore(), DIM, graph_from=64)
    vectors = random_unit(np.random.default_rng(2), 300)
    for i, v in enumerate(vectors):
        index.add(IndexItem(f"k{i}", v, scope()))
    index.add(IndexItem("other", vectors[7], scope(tenant="t")))
    for i in (0, 7, 150, 299):
        [best] = index.search(vectors[i], scope())
        assert best.key == f"k{i}"
        assert best.similarity == pytest.approx(1.0, abs=2e-3)
    assert index.delete(["k7"]) == 1
    assert index.search(vectors[7], scope())[0].key != "k7"
    assert [m.key for m in index.search(vectors[7], scope(tenant="t"), k=5)] == ["other"]
    index.add(IndexItem("k7", vectors[7], scope()))  # re-added after a delete in graph mode
    assert index.search(vectors[7], scope())[0].key == "k7"


def test_scope_vectors_switch_keeps_every_key() -> None:
    part = ScopeVectors(DIM, "float32", graph_from=8, params=GraphParams())
    vectors = random_unit(np.random.default_rng(4), 20)
    for i, v in enumerate(vectors):
        part.put(f"k{i}", v)
    assert len(part) == 20
    assert {key for key, _ in part.search(vectors[0], 20)} == {f"k{i}" for i in range(20)}
    assert part.remove("k3") and not part.remove("k3")


def test_event_codec_round_trip() -> None:
    where = scope(tenant="acme,inc\n", model="m")
    vector = random_unit(np.random.default_rng(5), 1)[0]
    for dtype in ("float16", "float32"):
        event = decode(encode_add("key\n", where, vector, 12.5, dtype), DIM, dtype)  # type: ignore[arg-type]
        assert (event.op, event.key, event.scope, event.deadline) == ("add", "key\n", where, 12.5)
        assert event.vector is not None
        assert float(event.vector @ vector) == pytest.approx(1.0, abs=1e-3)
    assert decode(encode_delete("k"), DIM, "float16").key == "k"
    assert decode(encode_drop(), DIM, "float16").op == "drop"
    with pytest.raises(ValueError, match="unknown"):
        decode(b"zzz", DIM, "float16")
    with pytest.raises(ValueError, match="expected"):
        decode(encode_add("k", where, vector, None, "float32"), DIM, "float16")
