"""The semantic layer on a Redis Cluster store: LocalIndex (RediSearch on an open-source cluster
searches one shard), kept in step across processes by the stream log, which lives in one slot."""

from __future__ import annotations

import pytest

from llmemo import AsyncCache, Cache
from llmemo.core.semantic import AsyncSemanticLayer, SemanticLayer
from llmemo.index import AsyncLocalIndex, LocalIndex
from llmemo.stores import AsyncRedisClusterStore, RedisClusterStore
from tests.core.helpers import Upstream, answer, chat
from tests.semantic.conftest import CountingEmbedder

FRANCE = "What is the capital of France?"
PARAPHRASE = "Which city is the capital of France?"


def sync_cache(url: str, embedder: CountingEmbedder) -> Cache:
    """A cache whose index tails the log on every search (the default polls once a second)."""
    store = RedisClusterStore.from_url(url)
    index = LocalIndex(store, embedder.dim, poll_interval=0)
    return Cache(store, semantic=SemanticLayer(embedder, index, threshold=0.85))


def async_cache(url: str, embedder: CountingEmbedder) -> AsyncCache:
    store = AsyncRedisClusterStore.from_url(url)
    index = AsyncLocalIndex(store, embedder.dim, poll_interval=0)
    return AsyncCache(store, semantic=AsyncSemanticLayer(embedder, index, threshold=0.85))


def test_a_paraphrase_hits_across_processes_on_a_cluster(
    redis_cluster_url: str, embedder: CountingEmbedder
) -> None:
    # two caches with their own LocalIndex: what two processes sharing the cluster have
    first, second = (sync_cache(redis_cluster_url, embedder) for _ in range(2))
    fn = Upstream(answer("Paris."))
    assert second.compute(chat("warm up the second index"), fn).status == "miss"
    assert first.compute(chat(FRANCE), fn).status == "miss"
    hit = second.compute(chat(PARAPHRASE), fn)  # found through the stream log, not a rebuild
    assert hit.status == "semantic" and hit.response == answer("Paris.")
    assert isinstance(second.semantic.open_index() if second.semantic else None, LocalIndex)
    assert fn.calls == 2
    first.close()
    second.close()


@pytest.mark.asyncio
async def test_the_async_twin_on_a_cluster(
    redis_cluster_url: str, embedder: CountingEmbedder
) -> None:
    first, second = (async_cache(redis_cluster_url, embedder) for _ in range(2))
    fn = Upstream(answer("Paris."))
    assert (await second.compute(chat("warm up the second index"), fn)).status == "miss"
    assert (await first.compute(chat(FRANCE), fn)).status == "miss"
    assert (await second.compute(chat(PARAPHRASE), fn)).status == "semantic"
    assert second.semantic is not None
    assert isinstance(await second.semantic.open_index(), AsyncLocalIndex)
    await first.close()
    await second.close()
