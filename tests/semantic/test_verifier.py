"""The opt-in LLM verifier of borderline matches, against the local upstream's `judge` model
(a fixed word-overlap rule, llmemo.testing.answers.judge): yes -> hit, no/unclear/down -> miss."""

from __future__ import annotations

import pytest

from devtools.redis_server import free_port
from llmemo import AsyncCache, Cache
from llmemo.core.semantic import AsyncSemanticLayer, SemanticLayer
from llmemo.core.verify import AsyncLLMVerifier, LLMVerifier
from llmemo.errors import ConfigError
from llmemo.stores.memory import AsyncMemoryStore, MemoryStore
from llmemo.testing.server import UpstreamServer
from tests.core.helpers import Upstream, answer, chat
from tests.semantic.conftest import CountingEmbedder

FRANCE = "What is the capital of France?"
SAME_WORDS = "Which city is the capital of France?"  # the judge says yes (5 of 8 words shared)
FEW_WORDS = "Which city is France's capital?"  # the judge says no (3 of 9 words shared)


def sync_cache(embedder: CountingEmbedder, verifier: LLMVerifier) -> Cache:
    layer = SemanticLayer(embedder, "local", threshold=0.8, verifier=verifier)
    return Cache(MemoryStore(), semantic=layer)


def test_a_yes_lets_a_borderline_match_answer_once(
    embedder: CountingEmbedder, upstream: UpstreamServer
) -> None:
    cache = sync_cache(embedder, LLMVerifier("judge", base_url=upstream.openai_base_url))
    fn = Upstream(answer("Paris."))
    cache.compute(chat(FRANCE), fn)
    hit = cache.compute(chat(SAME_WORDS), fn)
    assert hit.status == "semantic" and fn.calls == 1
    assert cache.compute(chat(SAME_WORDS), fn).status == "hit"  # backfilled: no second check
    counters = cache._stats.peek()
    assert counters["verifier_calls"] == 1 and counters["verifier_tokens"] > 0
    assert upstream.stats().total == 1  # the one verifier call
    cache.close()


def test_a_no_is_a_miss_counted_as_a_verifier_rejection(
    embedder: CountingEmbedder, upstream: UpstreamServer
) -> None:
    cache = sync_cache(embedder, LLMVerifier("judge", base_url=upstream.openai_base_url))
    fn = Upstream(answer("Paris."))
    cache.compute(chat(FRANCE), fn)
    result = cache.compute(chat(FEW_WORDS), fn)
    assert result.status == "miss" and fn.calls == 2
    assert cache._stats.peek()["semantic_rejected:verifier"] == 1
    cache.close()


def test_matches_above_trust_from_are_not_checked(
    embedder: CountingEmbedder, upstream: UpstreamServer
) -> None:
    verifier = LLMVerifier("judge", base_url=upstream.openai_base_url, trust_from=0.8)
    cache = sync_cache(embedder, verifier)
    fn = Upstream(answer("Paris."))
    cache.compute(chat(FRANCE), fn)
    assert cache.compute(chat(FEW_WORDS), fn).status == "semantic"  # trusted: never asked
    assert upstream.stats().total == 0 and "verifier_calls" not in cache._stats.peek()
    cache.close()


def test_an_unreachable_verifier_is_a_miss_not_an_error(embedder: CountingEmbedder) -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"
    cache = sync_cache(embedder, LLMVerifier("judge", base_url=down, timeout=1.0))
    fn = Upstream(answer("Paris."))
    cache.compute(chat(FRANCE), fn)
    assert cache.compute(chat(SAME_WORDS), fn).status == "miss"
    counters = cache._stats.peek()
    assert counters["verifier_errors"] == 1 and counters["semantic_rejected:verifier"] == 1
    cache.close()


def test_an_unclear_answer_is_no_and_a_clear_one_is_remembered(upstream: UpstreamServer) -> None:
    chatty = LLMVerifier("gpt-4o-mini", base_url=upstream.openai_base_url)  # answers prose
    verdict = chatty.verify(FRANCE, SAME_WORDS)
    assert verdict.same is None and verdict.asked and verdict.error is not None
    judge = LLMVerifier("judge", base_url=upstream.openai_base_url)
    first, again = judge.verify(FRANCE, SAME_WORDS), judge.verify(FRANCE, SAME_WORDS)
    assert first.same is True and first.asked and again.same is True and not again.asked
    assert upstream.stats().total == 2
    with pytest.raises(ConfigError):
        LLMVerifier("judge", trust_from=1.5)
    chatty.close()
    judge.close()


@pytest.mark.asyncio
async def test_the_async_layer_asks_the_same_way(
    embedder: CountingEmbedder, upstream: UpstreamServer
) -> None:
    verifier = AsyncLLMVerifier("judge", base_url=upstream.openai_base_url)
    layer = AsyncSemanticLayer(embedder, "local", threshold=0.8, verifier=verifier)
    cache = AsyncCache(AsyncMemoryStore(), semantic=layer)
    fn = Upstream(answer("Paris."))
    await cache.compute(chat(FRANCE), fn)
    assert (await cache.compute(chat(SAME_WORDS), fn)).status == "semantic"
    assert (await cache.compute(chat(FEW_WORDS), fn)).status == "miss"
    assert cache._stats.peek()["verifier_calls"] == 2 and fn.calls == 2
    await cache.close()
