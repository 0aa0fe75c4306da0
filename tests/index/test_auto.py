"""open_index asks the server: RediSearch on Redis Stack, LocalIndex on plain Redis and locally."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmemo.errors import ConfigError
from llmemo.index import (
    AsyncLocalIndex,
    AsyncRediSearchIndex,
    LocalIndex,
    RediSearchIndex,
    open_async_index,
    open_index,
)
from llmemo.index.base import VectorIndexError
from llmemo.index.kinds import modules_have_search
from llmemo.stores import AsyncRedisStore, RedisStore
from llmemo.stores.memory import AsyncMemoryStore, MemoryStore
from llmemo.stores.sqlite import SQLiteStore
from tests.index.conftest import scope


def test_redis_stack_gets_redisearch(redis_stack_url: str) -> None:
    store = RedisStore.from_url(redis_stack_url)
    index = open_index(store, 8)
    assert isinstance(index, RediSearchIndex)
    assert index.client is store.client
    store.close()


def test_plain_redis_gets_local(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    assert isinstance(open_index(store, 8), LocalIndex)
    forced = open_index(store, 8, kind="redisearch")
    with pytest.raises(VectorIndexError, match="unknown command"):
        forced.search([1.0] * 8, scope())  # the server has no FT.* commands
    store.close()


def test_embedded_stores_get_local(tmp_path: Path) -> None:
    assert isinstance(open_index(MemoryStore(), 8), LocalIndex)
    sqlite = SQLiteStore(tmp_path / "x.db")
    index = open_index(sqlite, 8, poll_interval=1.0)
    assert isinstance(index, LocalIndex)
    assert index.poll_interval == 1.0
    index.close()
    sqlite.close()
    with pytest.raises(ConfigError, match="standalone Redis"):
        open_index(MemoryStore(), 8, kind="redisearch")
    with pytest.raises(ConfigError, match="kind"):
        open_index(MemoryStore(), 8, kind="faiss")  # type: ignore[arg-type]


def test_kind_local_is_honoured_on_redis_stack(redis_stack_url: str) -> None:
    store = RedisStore.from_url(redis_stack_url)
    assert isinstance(open_index(store, 8, kind="local"), LocalIndex)
    store.close()


@pytest.mark.asyncio
async def test_async_twins(redis_stack_url: str, redis_url: str) -> None:
    stack = AsyncRedisStore.from_url(redis_stack_url)
    plain = AsyncRedisStore.from_url(redis_url)
    assert isinstance(await open_async_index(stack, 8), AsyncRediSearchIndex)
    assert isinstance(await open_async_index(plain, 8), AsyncLocalIndex)
    assert isinstance(await open_async_index(AsyncMemoryStore(), 8), AsyncLocalIndex)
    await stack.close()
    await plain.close()


def test_module_list_parsing() -> None:
    resp2 = [[b"name", b"search", b"ver", 21005], [b"name", b"ReJSON", b"ver", 20803]]
    resp3 = [{b"name": b"ReJSON", b"ver": 20803}]
    assert modules_have_search(resp2)
    assert not modules_have_search(resp3)
    assert not modules_have_search([])
