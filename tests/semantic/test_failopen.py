"""Fail-open: an embedder or index failure is a miss (counted, logged), never the caller's error."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy.typing as npt
import pytest

from devtools.redis_server import RedisServer
from llmemo import AsyncCache, Cache, CircuitBreaker
from llmemo.core.semantic import AsyncSemanticLayer, SemanticLayer
from llmemo.index import LocalIndex
from llmemo.index.base import IndexItem, IndexScope, Match, VectorIndexError
from llmemo.stores.memory import AsyncMemoryStore, MemoryStore
from tests.core.helpers import Upstream, answer, chat
from tests.semantic.conftest import CountingEmbedder
from tests.semantic.test_flow import FRANCE, PARAPHRASE


class FlakyIndex:
    """A real LocalIndex that fails on demand, as an unreachable index server would."""

    def __init__(self, inner: LocalIndex) -> None:
        self.inner = inner
        self.fail = False

    @property
    def dim(self) -> int:
        return self.inner.dim

    def _check(self) -> None:
        if self.fail:
            raise VectorIndexError("index down (test)")

    def add(self, item: IndexItem) -> None:
        self._check()
        self.inner.add(item)

    def touch(self, key: str, ttl: float) -> None:
        self._check()
        self.inner.touch(key, ttl)

    def search(
        self, vector: npt.ArrayLike, scope: IndexScope, k: int = 1, min_similarity: float = 0.0
    ) -> list[Match]:
        self._check()
        return self.inner.search(vector, scope, k, min_similarity)

    def delete(self, keys: Sequence[str]) -> int:
        self._check()
        return self.inner.delete(keys)

    def count(self) -> int:
        return self.inner.count()

    def drop(self) -> None:
        self.inner.drop()

    def close(self) -> None:
        self.inner.close()


def test_a_failing_embedder_is_a_counted_miss(
    embedder: CountingEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    cache = Cache(MemoryStore(), semantic=SemanticLayer(embedder, "local", threshold=0.85))
    upstream = Upstream(answer("Paris."))
    assert cache.compute(chat(FRANCE), upstream).status == "miss"
    embedder.fail = True
    with caplog.at_level(logging.WARNING, "llmemo.semantic"):
        result = cache.compute(chat(PARAPHRASE), upstream)
        assert result.status == "miss" and result.response == answer("Paris.")
        assert cache.compute(chat("How tall is Everest?"), upstream).stored  # stored, not indexed
    assert "semantic lookup failed" in caplog.text and "index add failed" in caplog.text
    assert cache._stats.peek()["semantic_errors"] >= 2
    assert cache.compute(chat(FRANCE), upstream).status == "hit"  # exact hits are untouched
    embedder.fail = False
    assert cache.compute(chat("Which city is France's capital?"), upstream).status == "semantic"
    assert upstream.calls == 3


@pytest.mark.asyncio
async def test_a_failing_embedder_is_a_miss_async(embedder: CountingEmbedder) -> None:
    cache = AsyncCache(
        AsyncMemoryStore(), semantic=AsyncSemanticLayer(embedder, "local", threshold=0.85)
    )
    upstream = Upstream(answer("Paris."))
    await cache.compute(chat(FRANCE), upstream.acall)
    embedder.fail = True
    assert (await cache.compute(chat(PARAPHRASE), upstream.acall)).status == "miss"
    assert await cache.lookup(chat("Which city is France's capital?")) is None
    assert cache._stats.peek()["semantic_errors"] == 3  # compute: lookup + add; lookup()
    await cache.close()


def test_a_failing_index_is_a_counted_miss(embedder: CountingEmbedder) -> None:
    store = MemoryStore()
    index = FlakyIndex(LocalIndex(store, embedder.dim))
    cache = Cache(store, semantic=SemanticLayer(embedder, index, threshold=0.85))  # type: ignore[arg-type]
    upstream = Upstream(answer("Paris."))
    cache.compute(chat(FRANCE), upstream)
    index.fail = True
    assert cache.compute(chat(PARAPHRASE), upstream).status == "miss"
    assert cache.compute(chat(FRANCE), upstream).status == "hit"
    index.fail = False
    assert cache.compute(chat("What's the capital city of France?"), upstream).status == "semantic"
    cache.close()


def test_deletions_raise_when_the_index_fails(embedder: CountingEmbedder) -> None:
    store = MemoryStore()
    index = FlakyIndex(LocalIndex(store, embedder.dim))
    cache = Cache(store, semantic=SemanticLayer(embedder, index, threshold=0.85))  # type: ignore[arg-type]
    cache.compute(chat(FRANCE), Upstream())
    index.fail = True
    with pytest.raises(VectorIndexError):  # an explicit deletion that half-worked must say so
        cache.delete(chat(FRANCE))


def test_a_store_that_goes_down_fails_open(
    redis_url: str, redis_server: RedisServer, embedder: CountingEmbedder
) -> None:
    cache = Cache.from_url(
        redis_url,
        semantic=True,
        embedder=embedder,
        threshold=0.85,
        breaker=CircuitBreaker(threshold=2, reset=60),
        version_ttl=0,
    )
    upstream = Upstream(answer("Paris."))
    cache.compute(chat(FRANCE), upstream)
    assert cache.compute(chat(PARAPHRASE), upstream).status == "semantic"
    redis_server.stop()
    statuses = [cache.compute(chat(t), upstream).status for t in (FRANCE, PARAPHRASE, "Other?")]
    assert statuses == ["miss"] * 3
    assert upstream.calls == 4
    cache.close()


@pytest.mark.asyncio
async def test_an_index_whose_server_is_down_fails_open(
    redis_url: str, redis_server: RedisServer, embedder: CountingEmbedder
) -> None:
    """Opening the index asks the server which kind to use: down, that is an index failure (a
    counted miss, retried on the next call), not a redis-py exception."""
    options: dict[str, Any] = {"semantic": True, "embedder": embedder, "threshold": 0.85}
    cache = AsyncCache.from_url(redis_url, **options)
    layer = cache.semantic
    assert layer is not None
    redis_server.stop()
    with pytest.raises(VectorIndexError, match="cannot open the vector index"):
        await layer.open_index()
    call = cache._prepare(chat(FRANCE))
    plan = await layer.lookup(call, 0)
    assert plan.hit is None
    assert plan.counts == [("semantic_errors", 1)]
    assert await layer.remember(call, 0, "k", b"v", None) == [("semantic_errors", 1)]
    redis_server.start()
    assert (await layer.lookup(call, 0)).hit is None  # opens now: an empty index
    assert await layer.open_index() is not None
    await cache.close()
