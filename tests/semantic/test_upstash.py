"""The semantic layer over Upstash (REST, through the test gateway in front of a real redis-server):
LocalIndex, rebuilt from the records when a process starts (no change log over REST yet)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmemo import AsyncCache, Cache
from llmemo.core.semantic import AsyncSemanticLayer, SemanticLayer
from llmemo.testing.redis_server import RedisServer
from llmemo.testing.upstash_gateway import UpstashGateway
from tests.core.helpers import Upstream, answer, chat
from tests.semantic.conftest import CountingEmbedder

FRANCE = "What is the capital of France?"
PARAPHRASE = "Which city is the capital of France?"


@pytest.fixture
def upstash_url(redis_url: str, redis_server: RedisServer) -> Iterator[str]:
    with UpstashGateway(redis_server.url) as gateway:
        yield gateway.store_url


def test_paraphrases_hit_and_a_new_process_sees_earlier_vectors(
    upstash_url: str, embedder: CountingEmbedder
) -> None:
    fn = Upstream(answer("Paris."))
    first = Cache.from_url(upstash_url, semantic=SemanticLayer(embedder, threshold=0.85))
    assert first.compute(chat(FRANCE), fn).status == "miss"
    assert first.compute(chat(PARAPHRASE), fn).status == "semantic"
    later = Cache.from_url(upstash_url, semantic=SemanticLayer(embedder, threshold=0.85))
    found = later.compute(chat("Name the capital city of France."), fn)
    assert found.status == "semantic" and fn.calls == 1  # rebuilt from the records at start
    first.close()
    later.close()


@pytest.mark.asyncio
async def test_the_async_twin_over_upstash(upstash_url: str, embedder: CountingEmbedder) -> None:
    fn = Upstream(answer("Paris."))
    cache = AsyncCache.from_url(upstash_url, semantic=AsyncSemanticLayer(embedder, threshold=0.85))
    assert (await cache.compute(chat(FRANCE), fn)).status == "miss"
    assert (await cache.compute(chat(PARAPHRASE), fn)).status == "semantic"
    assert fn.calls == 1
    await cache.close()
