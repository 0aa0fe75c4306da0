"""The rollups on every shared store (SQLite, Redis, Redis Cluster, Upstash REST): two instances'
writes read back as their sum, in every window."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from devtools.redis_server import RedisServer
from devtools.upstash_gateway import UpstashGateway
from llmemo.service.rollup_report import WINDOWS
from llmemo.service.rollups import Rollups, read_stats
from llmemo.stores import (
    AsyncRedisClusterStore,
    AsyncRedisStore,
    AsyncStore,
    AsyncUpstashStore,
    keys,
)
from llmemo.stores.sqlite import AsyncSQLiteStore, SQLiteStore

pytestmark = pytest.mark.asyncio
KINDS = ["sqlite", "redis", "redis-cluster", "upstash"]


@pytest.fixture(scope="module")
def gateway(redis_server: RedisServer) -> Iterator[UpstashGateway]:
    with UpstashGateway(redis_server.url) as gateway:
        yield gateway


@pytest_asyncio.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncStore]:
    kind = request.param
    made: AsyncStore
    if kind == "sqlite":
        made = AsyncSQLiteStore(SQLiteStore(tmp_path / "cache.db"))
    elif kind == "redis":
        made = AsyncRedisStore.from_url(request.getfixturevalue("redis_url"))
    elif kind == "redis-cluster":
        made = AsyncRedisClusterStore.from_url(request.getfixturevalue("redis_cluster_url"))
    else:
        request.getfixturevalue("redis_url")  # emptied
        made = AsyncUpstashStore.from_url(request.getfixturevalue("gateway").store_url)
    yield made
    await made.close()


async def test_two_instances_add_up_on_every_store(store: AsyncStore) -> None:
    prefix = f"t{os.urandom(4).hex()}"  # the cluster is shared by the session
    one, two = Rollups(instance="one"), Rollups(instance="two")
    for rollups in (one, two):
        rollups.bind(store, prefix, lambda: "closed")
    for _ in range(3):
        one.answered("hit", None, "gpt-4o-mini", "t1", 0.001, (10, 0.01))
    two.answered("miss", "faq", "gpt-4o", "t2", 0.5, spent=0.2)
    two.answered("semantic", "faq", "gpt-4o", "t2", 0.02, (5, 0.005))
    assert await one.flush() and await two.flush()
    assert {one.lane, two.lane} == {0, 1}
    for window in ("hour", "day", "week"):
        got = await read_stats(store, prefix, WINDOWS[window], one.clock())
        totals = got["totals"]
        assert (totals["exact"], totals["semantic"], totals["miss"]) == (3, 1, 1), window
        assert totals["tokens_saved"] == 35 and got["instances"] == 2
        assert totals["dollars_spent"] == pytest.approx(0.2)
    record = await store.get(keys.rollup_current(prefix, 0))
    assert (record is not None and b'"exact":3' in record) or b'"miss":1' in (record or b"")
