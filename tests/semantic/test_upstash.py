"""The semantic layer over Upstash (REST, through the test gateway in front of a real redis-server):
LocalIndex, kept in step across processes by a stream log sent as raw REST commands."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.redis_server import RedisServer
from devtools.upstash_gateway import UpstashGateway
from llmemo import AsyncCache, Cache
from llmemo.core.semantic import AsyncSemanticLayer, SemanticLayer
from llmemo.index import AsyncLocalIndex, AsyncUpstashStreamLog, LocalIndex, UpstashStreamLog
from llmemo.stores import AsyncUpstashStore, UpstashStore
from tests.core.helpers import Upstream, answer, chat
from tests.semantic.conftest import CountingEmbedder

FRANCE = "What is the capital of France?"
PARAPHRASE = "Which city is the capital of France?"


@pytest.fixture
def upstash_url(redis_url: str, redis_server: RedisServer) -> Iterator[str]:
    with UpstashGateway(redis_server.url) as gateway:
        yield gateway.store_url


def sync_cache(url: str, embedder: CountingEmbedder) -> Cache:
    """A cache whose index tails the log on every search (the default polls every 0.1 s)."""
    store = UpstashStore.from_url(url)
    index = LocalIndex(store, embedder.dim, poll_interval=0)
    assert isinstance(index.log, UpstashStreamLog)
    return Cache(store, semantic=SemanticLayer(embedder, index, threshold=0.85))


def test_running_processes_see_each_others_vectors(
    upstash_url: str, embedder: CountingEmbedder
) -> None:
    first, second = (sync_cache(upstash_url, embedder) for _ in range(2))
    fn = Upstream(answer("Paris."))
    assert second.compute(chat("warm up the second index"), fn).status == "miss"
    assert first.compute(chat(FRANCE), fn).status == "miss"
    hit = second.compute(chat(PARAPHRASE), fn)  # through the log, not a rebuild
    assert hit.status == "semantic" and hit.response == answer("Paris.")
    later = Cache.from_url(upstash_url, semantic=SemanticLayer(embedder, threshold=0.85))
    assert later.compute(chat("Name the capital city of France."), fn).status == "semantic"
    assert fn.calls == 2
    for cache in (first, second, later):
        cache.close()


@pytest.mark.asyncio
async def test_the_async_twin_over_upstash(upstash_url: str, embedder: CountingEmbedder) -> None:
    caches = []
    for _ in range(2):
        store = AsyncUpstashStore.from_url(upstash_url)
        index = AsyncLocalIndex(store, embedder.dim, poll_interval=0)
        assert isinstance(index.log, AsyncUpstashStreamLog)
        layer = AsyncSemanticLayer(embedder, index, threshold=0.85)
        caches.append(AsyncCache(store, semantic=layer))
    first, second = caches
    fn = Upstream(answer("Paris."))
    assert (await second.compute(chat("warm up the second index"), fn)).status == "miss"
    assert (await first.compute(chat(FRANCE), fn)).status == "miss"
    assert (await second.compute(chat(PARAPHRASE), fn)).status == "semantic"
    assert fn.calls == 2
    for cache in caches:
        await cache.close()
