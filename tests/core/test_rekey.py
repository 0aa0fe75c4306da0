"""`rekey` / `async_rekey` (core/rekey.py) on real stores (memory, SQLite, Redis, Redis Cluster,
Upstash REST): a key rotation rewrites every entry and warm record, an interrupted run resumes,
TTLs are kept, what no key opens is left alone and counted, a value changed meanwhile stays."""

from __future__ import annotations

import base64
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis

from devtools.redis_server import RedisServer
from devtools.upstash_gateway import UpstashGateway
from llmemo import AsyncCache
from llmemo.core import entry as entries
from llmemo.core.crypto import Keyring
from llmemo.core.rekey import RekeyReport, async_rekey
from llmemo.stores import keys
from llmemo.stores.memory import AsyncMemoryStore, MemoryStore
from llmemo.stores.protocol import AsyncRewritableStore
from llmemo.warm.runs import Recorded, Runs
from tests.core.helpers import answer, chat

SECRETS = {name: os.urandom(32) for name in ("k1", "k2", "other")}
LONG = "A long answer that is compressed before it is sealed. " * 40  # over 1 KiB
BIG = os.urandom(3000).hex()  # still over 2 KiB once compressed


def ring(*ids: str) -> Keyring:
    return Keyring([(i, SECRETS[i]) for i in ids])


def spec(*ids: str) -> str:
    return ",".join(f"{i}:{base64.b64encode(SECRETS[i]).decode()}" for i in ids)


@pytest.fixture(scope="module")
def gateway(redis_server: RedisServer) -> Iterator[UpstashGateway]:
    with UpstashGateway(redis_server.url) as gateway:
        yield gateway


STORES = ["memory", "sqlite", "redis", "redis-cluster", "upstash"]


@pytest.fixture(params=STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    kind = request.param
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'cache.db'}"
    if kind == "redis":
        return str(request.getfixturevalue("redis_url"))
    if kind == "redis-cluster":
        return str(request.getfixturevalue("redis_cluster_url"))
    gateway: UpstashGateway = request.getfixturevalue("gateway")
    request.getfixturevalue("redis_url")  # emptied
    gateway.reset()
    return str(gateway.store_url)


class Caches:
    """Caches (with any keys) over one store of the test's kind, closed after the test."""

    def __init__(self, url: str, request: pytest.FixtureRequest) -> None:
        self.url = url
        self.request = request
        self.memory = AsyncMemoryStore(MemoryStore())
        self.made: list[AsyncCache] = []

    def __call__(self, encryption: str | None = None) -> AsyncCache:
        if self.url == "memory://":
            cache = AsyncCache(self.memory, encryption=encryption)
        else:
            cache = AsyncCache.from_url(self.url, encryption=encryption)
        self.made.append(cache)
        return cache

    @property
    def store(self) -> AsyncRewritableStore:
        backend = self.made[0].backend if self.made else self().backend
        assert isinstance(backend, AsyncRewritableStore)
        return backend

    def remaining(self, key: str) -> float:
        """Seconds the store will still keep `key`, read from the store itself."""
        if self.url == "memory://":
            deadline = self.memory.sync._data[key][1]
            assert deadline is not None
            return deadline - self.memory.sync._clock()
        if self.url.startswith("sqlite:///"):
            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as conn:
                (expires,) = conn.execute(
                    "SELECT expires FROM entries WHERE key = ?", (key,)
                ).fetchone()
            return float(expires) - time.time()
        if self.url.startswith("redis+cluster://"):
            from redis.cluster import RedisCluster

            nodes = self.request.getfixturevalue("redis_cluster_nodes")
            with RedisCluster(startup_nodes=nodes) as cluster:
                return float(cluster.pttl(key)) / 1000
        server_url = str(self.request.getfixturevalue("redis_url"))  # redis, or behind upstash
        with redis.Redis.from_url(server_url) as client:
            return float(client.pttl(key)) / 1000


@pytest_asyncio.fixture
async def caches(url: str, request: pytest.FixtureRequest) -> AsyncIterator[Caches]:
    made = Caches(url, request)
    yield made
    for cache in made.made:
        await cache.close()


async def entry_keys(store: AsyncRewritableStore) -> list[str]:
    found: list[str] = []
    async for batch in store.scan(keys.entry_pattern("llmemo")):
        found += batch
    return sorted(found)


async def sealed_with(store: AsyncRewritableStore, key: str) -> str | None:
    value = await store.get(key)
    assert value is not None
    return entries.sealed_with(value)


@pytest.mark.asyncio
async def test_a_rotation_rewrites_every_entry_and_warm_record(caches: Caches) -> None:
    old, plain = caches(spec("k1")), caches(None)
    for i in range(6):
        await old.store(chat(f"question {i}"), answer(LONG if i % 2 else f"answer {i}"))
    await plain.store(chat("written before keys"), answer("in clear"))
    await old.store(chat("a long one"), answer(BIG))  # over a head read: read again in full
    store = caches.store
    runs = Runs(store, "llmemo", record_ttl=600, keyring=ring("k1"))
    await runs.record("run-1", "d", 200, {"answer": "warm answer"})
    await runs.save_job("job-1", b'{"results": []}')

    report = await async_rekey(store, ring("k2", "k1"))
    assert (report.rewritten, report.current, report.undecryptable, report.skipped) == (10, 0, 0, 0)
    assert report.done and not report.resumed
    assert {await sealed_with(store, key) for key in await entry_keys(store)} == {"k2"}
    only_new = caches(spec("k2"))
    for i in range(6):
        hit = await only_new.lookup(chat(f"question {i}"))
        assert hit is not None and hit.response == answer(LONG if i % 2 else f"answer {i}")
    hit = await only_new.lookup(chat("written before keys"))
    assert hit is not None and hit.response == answer("in clear")
    hit = await only_new.lookup(chat("a long one"))
    assert hit is not None and hit.response == answer(BIG)
    new_runs = Runs(store, "llmemo", record_ttl=600, keyring=ring("k2"))
    assert await new_runs.recorded("run-1", "d") == Recorded(200, {"answer": "warm answer"})
    assert await new_runs.job("job-1") == b'{"results": []}'
    assert await store.get(keys.rekey_state("llmemo")) is None  # a finished run leaves no state

    again = await async_rekey(store, ring("k2", "k1"))
    assert (again.rewritten, again.current) == (0, 10)


@pytest.mark.asyncio
async def test_the_remaining_ttl_is_kept(caches: Caches) -> None:
    cache = caches(spec("k1"))
    await cache.store(chat(), answer(), ttl=3600)
    (key,) = await entry_keys(caches.store)
    value = await caches.store.get(key)
    assert value is not None
    await caches.store.set(key, value, 1000)  # as if 2600 s had passed
    await async_rekey(caches.store, ring("k2", "k1"))
    assert await sealed_with(caches.store, key) == "k2"
    assert 900 < caches.remaining(key) <= 1000  # not the entry's 3600 s again


class Interrupted(Exception):
    pass


@pytest.mark.asyncio
async def test_an_interrupted_run_resumes_where_it_stopped(caches: Caches) -> None:
    cache = caches(spec("k1"))
    for i in range(40):
        await cache.store(chat(f"question {i}"), answer(f"answer {i}"))
    store = caches.store
    pages: list[int] = []

    def stop_after_two(report: RekeyReport) -> None:
        pages.append(report.seen)
        if len(pages) == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        await async_rekey(store, ring("k2", "k1"), batch=5, progress=stop_after_two)
    assert 0 < pages[-1] < 40
    assert await store.get(keys.rekey_state("llmemo")) is not None
    sealed = [await sealed_with(store, key) for key in await entry_keys(store)]
    assert sealed.count("k2") == pages[-1] and sealed.count("k1") == 40 - pages[-1]

    resumed = await async_rekey(store, ring("k2", "k1"), batch=5)
    assert resumed.resumed and resumed.done
    assert (resumed.rewritten, resumed.current, resumed.skipped) == (40, 0, 0)  # none done twice
    assert {await sealed_with(store, key) for key in await entry_keys(store)} == {"k2"}
    assert await store.get(keys.rekey_state("llmemo")) is None


@pytest.mark.asyncio
async def test_a_saved_position_for_another_key_or_restart_starts_over(caches: Caches) -> None:
    cache = caches(spec("k1"))
    for i in range(3):
        await cache.store(chat(f"question {i}"), answer())
    store = caches.store
    await store.set(keys.rekey_state("llmemo"), b'{"key": "k9", "target": 2, "cursor": "x"}', 60)
    report = await async_rekey(store, ring("k2", "k1"))
    assert not report.resumed and report.rewritten == 3
    await store.set(keys.rekey_state("llmemo"), b'{"key": "k2", "target": 3, "cursor": ""}', 60)
    assert (await async_rekey(store, ring("k2", "k1"))).seen == 0  # resumed past the end
    assert (await async_rekey(store, ring("k2", "k1"), restart=True)).current == 3


@pytest.mark.asyncio
async def test_a_wrong_key_leaves_the_record_and_counts_it(caches: Caches) -> None:
    stranger = Keyring([("k1", SECRETS["other"])])  # same id, another key
    await caches(None).store(chat("mine"), answer("mine"))
    cache = AsyncCache(caches.store, encryption=stranger)
    await cache.store(chat("theirs"), answer("theirs"))
    store = caches.store
    before = {key: await store.get(key) for key in await entry_keys(store)}
    report = await async_rekey(store, ring("k2", "k1"))
    assert (report.rewritten, report.undecryptable) == (1, 1)
    after = {key: await store.get(key) for key in await entry_keys(store)}
    unchanged = [key for key in before if before[key] == after[key]]
    assert len(unchanged) == 1
    assert entries.sealed_with(after[unchanged[0]] or b"") == "k1"


@pytest.mark.asyncio
async def test_dry_run_counts_and_writes_nothing(caches: Caches) -> None:
    cache = caches(spec("k1"))
    for i in range(3):
        await cache.store(chat(f"question {i}"), answer())
    store = caches.store
    report = await async_rekey(store, ring("k2", "k1"), dry_run=True)
    assert (report.rewritten, report.dry_run) == (3, True)
    assert {await sealed_with(store, key) for key in await entry_keys(store)} == {"k1"}
    assert await store.get(keys.rekey_state("llmemo")) is None


class RacingStore:
    """A real store where another writer refreshes each value right after rekey reads it whole."""

    def __init__(self, store: AsyncRewritableStore) -> None:
        self.store = store
        self.newer: dict[str, bytes] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def heads(self, keys: list[str], size: int) -> list[bytes | None]:
        values = await self.store.heads(keys, size)
        for key, value in zip(keys, values, strict=True):
            if value is not None and size > entries.HEAD_BYTES:
                self.newer[key] = value + b" "  # any other bytes: a newer answer
                await self.store.set(key, self.newer[key], 600)
        return values


@pytest.mark.asyncio
async def test_a_value_changed_meanwhile_is_left_as_the_other_writer_left_it(
    caches: Caches,
) -> None:
    cache = caches(spec("k1"))
    await cache.store(chat(), answer(BIG))  # over a head read: read in full
    racing = RacingStore(caches.store)
    report = await async_rekey(racing, ring("k2", "k1"))  # type: ignore[arg-type]
    assert (report.rewritten, report.skipped) == (0, 1)
    assert len(racing.newer) == 1
    for key, value in racing.newer.items():
        assert await caches.store.get(key) == value
