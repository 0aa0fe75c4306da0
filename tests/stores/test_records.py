"""Record logs (stores/records.py) on every store: capped, newest first, expiring, removable, found
by name, and a push that also writes an entry. Memory and SQLite on an injected clock, Redis,
Redis Cluster and Upstash (through the local gateway) on real time in tenths of a second."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
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
from llmemo.stores.records import ASYNC_RECORDS, SYNC_RECORDS, records_of
from llmemo.stores.sqlite import AsyncSQLiteStore, SQLiteStore
from tests.stores.conftest import FakeClock

pytestmark = pytest.mark.asyncio


async def maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@pytest.fixture
def upstash_url(redis_url: str, redis_server: RedisServer) -> Iterator[str]:
    with UpstashGateway(redis_server.url) as gateway:
        yield gateway.store_url


class Subject:
    def __init__(self, store: Any, unit: float, advance: Callable[[float], Any]) -> None:
        table = ASYNC_RECORDS if inspect.iscoroutinefunction(store.get) else SYNC_RECORDS
        self.store = store
        self.log = records_of(store, table)
        self.unit = unit
        self.advance = advance

    async def wait(self, units: float) -> None:
        await maybe(self.advance(units * self.unit))

    async def call(self, name: str, *args: Any) -> Any:
        return await maybe(getattr(self.log, name)(*args))


KINDS = [
    (kind, face)
    for kind in ("memory", "sqlite", "redis", "cluster", "upstash")
    for face in ("sync", "async")
]


@pytest_asyncio.fixture(params=KINDS, ids=["-".join(k) for k in KINDS])
async def subject(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Subject]:
    kind, face = request.param
    clock = FakeClock()

    def tick(seconds: float) -> None:
        clock.now += seconds

    store: Any
    if kind == "memory":
        store = MemoryStore(clock=clock) if face == "sync" else AsyncMemoryStore(MemoryStore(clock))
        made = Subject(store, 1.0, tick)
    elif kind == "sqlite":
        sqlite = SQLiteStore(tmp_path / "store.db", clock=clock)
        store = sqlite if face == "sync" else AsyncSQLiteStore(sqlite)
        made = Subject(store, 1.0, tick)
    else:
        url = request.getfixturevalue(
            {"redis": "redis_url", "cluster": "redis_cluster_url", "upstash": "upstash_url"}[kind]
        )
        classes = {
            "redis": (RedisStore, AsyncRedisStore),
            "cluster": (RedisClusterStore, AsyncRedisClusterStore),
            "upstash": (UpstashStore, AsyncUpstashStore),
        }[kind]
        store = classes[face == "async"].from_url(url)
        made = Subject(store, 0.1, asyncio.sleep)
    assert made.log is not None
    yield made
    await maybe(store.close())


async def test_a_log_keeps_the_newest_records_up_to_its_cap(subject: Subject) -> None:
    for n in range(5):
        await subject.call("push", "p:~hits:a", f"r{n}".encode(), 3, 60 * subject.unit)
    assert await subject.call("recent", "p:~hits:a", 10) == [b"r4", b"r3", b"r2"]
    assert await subject.call("recent", "p:~hits:a", 2) == [b"r4", b"r3"]
    assert await subject.call("recent", "p:~hits:a", 0) == []
    assert await subject.call("recent", "p:~hits:other", 10) == []


async def test_records_expire(subject: Subject) -> None:
    await subject.call("push", "p:~hits:a", b"old", 10, 3 * subject.unit, None, "p:~hits-logs")
    assert await subject.call("names", "p:~hits-logs") == ["p:~hits:a"]
    await subject.wait(5)
    assert await subject.call("recent", "p:~hits:a", 10) == []
    assert await subject.call("names", "p:~hits-logs") == []


async def test_records_are_removed_by_value_and_logs_found_in_their_index(subject: Subject) -> None:
    for log in ("p:~hits:a", "p:~hits:b", "p:~wrong:a"):
        index = "p:~" + log.split(":")[1][1:] + "-logs"
        for record in (b"x", b"y", b"x"):
            await subject.call("push", log, record, 10, 60 * subject.unit, None, index)
    assert await subject.call("names", "p:~hits-logs") == ["p:~hits:a", "p:~hits:b"]
    assert await subject.call("names", "p:~wrong-logs") == ["p:~wrong:a"]
    assert await subject.call("names", "p:~other-logs") == []
    assert await subject.call("remove", "p:~hits:a", [b"x"]) == 2
    assert await subject.call("remove", "p:~hits:a", []) == 0
    assert await subject.call("recent", "p:~hits:a", 10) == [b"y"]
    assert await subject.call("recent", "p:~hits:b", 10) == [b"x", b"y", b"x"]


async def test_a_push_also_writes_an_entry(subject: Subject) -> None:
    entry = ("p:default:0:x:{ab}", b"\x00value\xff", 60 * subject.unit)
    await subject.call("push", "p:~hits:default", b"rec", 10, 60 * subject.unit, entry)
    assert await maybe(subject.store.get("p:default:0:x:{ab}")) == b"\x00value\xff"
    assert await subject.call("recent", "p:~hits:default", 1) == [b"rec"]
    forever = ("p:default:0:x:{cd}", b"kept", None)
    await subject.call("push", "p:~hits:default", b"rec2", 10, 60 * subject.unit, forever)
    assert await maybe(subject.store.get("p:default:0:x:{cd}")) == b"kept"


async def test_an_unknown_store_has_no_log() -> None:
    assert records_of(object(), SYNC_RECORDS) is None
