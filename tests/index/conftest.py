"""Every vector index behind one async face, so the contract cases are written once.

A sync index is wrapped in `Awaited` (its calls made directly inside the coroutine); an async
index is used as it is. LocalIndex gets an injected clock that `advance` moves (its store too,
where the store has a clock); RediSearch gets real time, because expiry runs inside the server.
An item's payload is also written at its key where the backend reads it from there (RediSearch),
as the cache does: it stores the entry, then indexes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import pytest_asyncio
import redis
import redis.asyncio

from llmemo.index import AsyncLocalIndex, AsyncRediSearchIndex, LocalIndex, RediSearchIndex
from llmemo.index.base import AsyncVectorIndex, IndexItem, IndexScope, Match, VectorIndex
from llmemo.stores import AsyncRedisStore, RedisStore
from llmemo.stores.memory import AsyncMemoryStore, MemoryStore
from llmemo.stores.sqlite import AsyncSQLiteStore, SQLiteStore

DIM = 16


class FakeClock:
    """A wall clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def scope(**changes: Any) -> IndexScope:
    """The default test scope with some fields changed."""
    fields: dict[str, Any] = {
        "namespace": "default",
        "version": 1,
        "tenant": None,
        "fingerprint": "c0ffee" * 10,
        "model": "minilm:all-MiniLM-L6-v2",
    }
    fields.update(changes)
    return IndexScope(**fields)


def basis(i: int, dim: int = DIM) -> npt.NDArray[np.float32]:
    """The i-th unit vector: basis(i) and basis(j) are orthogonal for i != j."""
    v = np.zeros(dim, dtype=np.float32)
    v[i] = 1.0
    return v


def random_unit(rng: np.random.Generator, n: int, dim: int = DIM) -> npt.NDArray[np.float32]:
    m = rng.standard_normal((n, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


class Awaited:
    """A sync VectorIndex seen through the AsyncVectorIndex protocol."""

    def __init__(self, index: VectorIndex) -> None:
        self.sync = index

    @property
    def dim(self) -> int:
        return self.sync.dim

    async def add(self, item: IndexItem) -> None:
        self.sync.add(item)

    async def touch(self, key: str, ttl: float) -> None:
        self.sync.touch(key, ttl)

    async def search(
        self, vector: npt.ArrayLike, scope: IndexScope, k: int = 1, min_similarity: float = 0.0
    ) -> list[Match]:
        return self.sync.search(vector, scope, k, min_similarity)

    async def delete(self, keys: Sequence[str]) -> int:
        return self.sync.delete(keys)

    async def count(self) -> int:
        return self.sync.count()

    async def drop(self) -> None:
        self.sync.drop()

    async def close(self) -> None:
        self.sync.close()


@dataclass
class Harness:
    """An index under test, what it promises, and how to let time pass for it."""

    name: str
    index: AsyncVectorIndex
    advance: Callable[[float], Awaitable[None]]
    returns_payload: bool
    tolerance: float  # float16 rounding of stored vectors moves similarities a little
    keep_entry: Callable[[str, bytes, float | None], Awaitable[None]] | None = None

    async def add(
        self,
        key: str,
        vector: npt.ArrayLike,
        where: IndexScope | None = None,
        payload: bytes | None = None,
        ttl: float | None = None,
    ) -> None:
        item = IndexItem(key, np.asarray(vector, dtype=np.float32), where or scope(), payload, ttl)
        if payload is not None and self.keep_entry is not None:
            await self.keep_entry(key, payload, ttl)
        await self.index.add(item)

    async def search(
        self, vector: npt.ArrayLike, where: IndexScope | None = None, k: int = 1, **kw: Any
    ) -> list[Match]:
        return await self.index.search(vector, where or scope(), k, **kw)


BACKENDS = [
    "redisearch-f16",
    "redisearch-f32",
    "local-memory",
    "local-sqlite-f32",
    "local-redis",
]


async def _real_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def _clock_advance(clock: FakeClock) -> Callable[[float], Awaitable[None]]:
    async def advance(seconds: float) -> None:
        clock.now += seconds

    return advance


@pytest_asyncio.fixture(params=["sync", "async"])
async def face(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture(params=BACKENDS)
async def harness(
    request: pytest.FixtureRequest, face: str, tmp_path: Path
) -> AsyncIterator[Harness]:
    """Each backend, sync and async, emptied, with DIM-dimensional vectors."""
    backend = str(request.param)
    is_async = face == "async"
    cleanup: list[Callable[[], Awaitable[None]]] = []
    if backend.startswith("redisearch"):
        url = request.getfixturevalue("redis_stack_url")
        dtype = "float16" if backend.endswith("f16") else "float32"
        index: Any
        entries = redis.asyncio.Redis.from_url(url)
        cleanup.append(entries.aclose)

        async def keep_entry(key: str, payload: bytes, ttl: float | None) -> None:
            await entries.set(key, payload, px=None if ttl is None else round(ttl * 1000))

        if is_async:
            aclient = redis.asyncio.Redis.from_url(url)
            index = AsyncRediSearchIndex(aclient, DIM, dtype=dtype)
            cleanup.append(aclient.aclose)
        else:
            client = redis.Redis.from_url(url)
            index = Awaited(RediSearchIndex(client, DIM, dtype=dtype))

            async def close_client() -> None:
                client.close()

            cleanup.append(close_client)
        tolerance = 2e-3 if dtype == "float16" else 1e-5
        h = Harness(backend, index, _real_sleep, True, tolerance, keep_entry)
    else:
        clock = FakeClock()
        dtype = "float32" if backend.endswith("f32") else "float16"
        store: Any
        if backend.startswith("local-memory"):
            memory = MemoryStore(clock=clock)
            store = AsyncMemoryStore(memory) if is_async else memory
        elif backend.startswith("local-sqlite"):
            sqlite = SQLiteStore(tmp_path / "index.db", clock=clock)
            store = AsyncSQLiteStore(sqlite) if is_async else sqlite
        else:
            url = request.getfixturevalue("redis_url")
            store = AsyncRedisStore.from_url(url) if is_async else RedisStore.from_url(url)
        if is_async:
            index = AsyncLocalIndex(store, DIM, dtype=dtype, clock=clock, poll_interval=0)
            cleanup.append(store.close)
        else:
            index = Awaited(LocalIndex(store, DIM, dtype=dtype, clock=clock, poll_interval=0))

            async def close_store() -> None:
                store.close()

            cleanup.append(close_store)
        tolerance = 2e-3 if dtype == "float16" else 1e-5
        h = Harness(backend, index, _clock_advance(clock), False, tolerance)
    yield h
    await h.index.close()
    for close in cleanup:
        await close()
