"""`scan_page` and `swap` (the RewritableStore protocol `llmemo rekey` walks) on every store:
memory, SQLite, Redis, Redis Cluster and Upstash REST, sync and async faces."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from devtools.redis_server import RedisServer
from devtools.upstash_gateway import UpstashGateway
from llmemo.stores import (
    AsyncRedisClusterStore,
    AsyncRedisStore,
    AsyncUpstashStore,
    RedisClusterStore,
    RedisStore,
    UpstashStore,
)
from llmemo.stores.memory import AsyncMemoryStore, MemoryStore
from llmemo.stores.protocol import AsyncRewritableStore, RewritableStore
from llmemo.stores.sqlite import AsyncSQLiteStore, SQLiteStore
from tests.stores.conftest import Backend, FakeClock

KINDS = ["memory", "sqlite", "redis", "redis-cluster", "upstash"]
PARAMS = [(kind, face) for kind in KINDS for face in ("sync", "async")]


@pytest.fixture(scope="module")
def gateway(redis_server: RedisServer) -> Iterator[UpstashGateway]:
    with UpstashGateway(redis_server.url) as gateway:
        yield gateway


def _raw(request: pytest.FixtureRequest, kind: str, face: str, clock: FakeClock, tmp: Path) -> Any:
    sync = face == "sync"
    if kind == "memory":
        memory = MemoryStore(clock=clock)
        return memory if sync else AsyncMemoryStore(memory)
    if kind == "sqlite":
        sqlite = SQLiteStore(tmp / "store.db", clock=clock)
        return sqlite if sync else AsyncSQLiteStore(sqlite)
    if kind == "redis":
        url = request.getfixturevalue("redis_url")
        return RedisStore.from_url(url) if sync else AsyncRedisStore.from_url(url)
    if kind == "redis-cluster":
        url = request.getfixturevalue("redis_cluster_url")
        return RedisClusterStore.from_url(url) if sync else AsyncRedisClusterStore.from_url(url)
    gateway: UpstashGateway = request.getfixturevalue("gateway")
    request.getfixturevalue("redis_url")  # empties the server behind the gateway
    gateway.reset()
    url = gateway.store_url
    return UpstashStore.from_url(url) if sync else AsyncUpstashStore.from_url(url)


@pytest_asyncio.fixture(params=PARAMS, ids=[f"{kind}-{face}" for kind, face in PARAMS])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    kind, face = request.param
    clock = FakeClock()
    raw = _raw(request, kind, face, clock, tmp_path)

    async def tick(seconds: float) -> None:
        clock.now += seconds

    local = kind in ("memory", "sqlite")
    yield Backend(
        f"{kind}-{face}", raw, raw, 1.0 if local else 0.1, tick if local else asyncio.sleep
    )
    closed = raw.close()
    if inspect.isawaitable(closed):
        await closed


async def call(backend: Backend, method: str, *args: Any) -> Any:
    """A store method on either face."""
    result = getattr(backend.raw, method)(*args)
    return await result if inspect.isawaitable(result) else result


@pytest.mark.asyncio
async def test_implements_the_protocol(backend: Backend) -> None:
    wanted = RewritableStore if backend.name.endswith("-sync") else AsyncRewritableStore
    assert isinstance(backend.raw, wanted)


@pytest.mark.asyncio
async def test_swap_replaces_only_the_value_it_was_given(backend: Backend) -> None:
    await call(backend, "set", "s:a", b"old", None)
    assert not await call(backend, "swap", "s:a", b"other", b"new")
    assert await call(backend, "get", "s:a") == b"old"
    assert await call(backend, "swap", "s:a", b"old", b"new")
    assert await call(backend, "get", "s:a") == b"new"
    assert not await call(backend, "swap", "s:missing", b"old", b"new")
    assert await call(backend, "get", "s:missing") is None


@pytest.mark.asyncio
async def test_swap_many_answers_for_each_key(backend: Backend) -> None:
    await call(backend, "set", "m:{a}", b"a0", None)
    await call(backend, "set", "m:{b}", b"b0", 20 * backend.unit)
    await call(backend, "set", "m:{c}", b"c-newer", None)
    items = [("m:{a}", b"a0", b"a1"), ("m:{b}", b"b0", b"b1"), ("m:{c}", b"c0", b"c1")]
    items.append(("m:{gone}", b"d0", b"d1"))
    assert await call(backend, "swap_many", items) == [True, True, False, False]
    assert await call(backend, "get", "m:{a}") == b"a1"
    assert await call(backend, "get", "m:{b}") == b"b1"
    assert await call(backend, "get", "m:{c}") == b"c-newer"
    assert await call(backend, "get", "m:{gone}") is None
    assert await call(backend, "swap_many", []) == []
    await backend.wait(21)
    assert await call(backend, "get", "m:{b}") is None  # its TTL was kept


@pytest.mark.asyncio
async def test_swap_keeps_the_remaining_ttl(backend: Backend) -> None:
    await call(backend, "set", "s:ttl", b"old", 20 * backend.unit)
    await call(backend, "set", "s:forever", b"old", None)
    await backend.wait(10)
    assert await call(backend, "swap", "s:ttl", b"old", b"new")
    assert await call(backend, "swap", "s:forever", b"old", b"new")
    await backend.wait(5)
    assert await call(backend, "get", "s:ttl") == b"new"  # not expired early
    await backend.wait(7)
    assert await call(backend, "get", "s:ttl") is None  # nor kept past its first TTL
    assert await call(backend, "get", "s:forever") == b"new"


@pytest.mark.asyncio
async def test_scan_page_walks_every_key_from_a_saved_cursor(backend: Backend) -> None:
    wanted = {f"p:{{k{i}}}:x:{i:03d}" for i in range(240)}
    for key in sorted(wanted):
        await call(backend, "set", key, b"v", None)
    for i in range(30):
        await call(backend, "set", f"p:{{k{i}}}:s:{i}", b"v", None)
    seen: list[str] = []
    cursor, pages = "", 0
    while True:  # each page starts from nothing but the cursor string: a resumed walk
        cursor, page = await call(backend, "scan_page", "p:*:x:*", cursor, 50)
        seen += page
        pages += 1
        if not cursor:
            break
    assert set(seen) == wanted
    assert pages > 1


@pytest.mark.asyncio
async def test_a_cursor_from_elsewhere_starts_the_walk_over(backend: Backend) -> None:
    for i in range(5):
        await call(backend, "set", f"w:{i}", b"v", None)
    seen: set[str] = set()
    cursor = "0/garbage"  # from another store, or edited: never an error, no key missed
    while True:
        cursor, page = await call(backend, "scan_page", "w:*", cursor, 2)
        seen.update(page)
        if not cursor:
            break
    assert seen == {f"w:{i}" for i in range(5)}
