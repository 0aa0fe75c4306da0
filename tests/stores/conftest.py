"""Every store behind one async face, so the contract cases are written once.

A sync store is wrapped in `Awaited` (its calls made directly inside the coroutine); an async store
is used as it is. Memory and SQLite get an injected clock that `advance` moves; Redis gets real time,
in units of 0.1 s, because its expiry runs inside the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from llmemo.stores import AsyncRedisStore, AsyncStore, RedisStore
from llmemo.stores.memory import AsyncMemoryStore, DirectAsyncStore, MemoryStore
from llmemo.stores.sqlite import AsyncSQLiteStore, SQLiteStore


class FakeClock:
    """A wall clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


Awaited = DirectAsyncStore  # a sync Store seen through the AsyncStore protocol


@dataclass
class Backend:
    """One store under test: `store` is the async face, `raw` the object built."""

    name: str
    raw: Any
    store: AsyncStore
    unit: float  # seconds of TTL per test time unit
    advance: Callable[[float], Awaitable[None]]  # move time on by that many seconds

    async def wait(self, units: float) -> None:
        await self.advance(units * self.unit)


def _build(kind: str, face: str, clock: FakeClock, tmp_path: Path, redis_url: str | None) -> Any:
    if kind == "memory":
        memory = MemoryStore(clock=clock)
        return memory if face == "sync" else AsyncMemoryStore(memory)
    if kind == "sqlite":
        sqlite = SQLiteStore(tmp_path / "store.db", clock=clock)
        return sqlite if face == "sync" else AsyncSQLiteStore(sqlite)
    assert redis_url is not None
    return RedisStore.from_url(redis_url) if face == "sync" else AsyncRedisStore.from_url(redis_url)


BACKENDS = [(kind, face) for kind in ("memory", "sqlite", "redis") for face in ("sync", "async")]


@pytest.fixture(params=BACKENDS, ids=[f"{kind}-{face}" for kind, face in BACKENDS])
def built(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    kind, face = request.param
    redis_url = request.getfixturevalue("redis_url") if kind == "redis" else None
    clock = FakeClock()
    raw = _build(kind, face, clock, tmp_path, redis_url)
    store: AsyncStore = Awaited(raw) if face == "sync" else raw

    async def tick(seconds: float) -> None:
        clock.now += seconds

    if kind == "redis":
        return Backend(f"{kind}-{face}", raw, store, 0.1, asyncio.sleep)
    return Backend(f"{kind}-{face}", raw, store, 1.0, tick)


@pytest_asyncio.fixture
async def backend(built: Backend) -> AsyncIterator[Backend]:
    yield built
    await built.store.close()
