"""Verified semantic hits (`max_error`) through real caches, on every store and both indexes: a
candidate the bound does not cover goes upstream and its fresh answer is what the caller gets and
what is judged; the evidence lives in the store, so another process decides with it."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import llmemo
from llmemo import AsyncCache, Cache
from llmemo.core.semantic import SemanticLayer
from llmemo.core.verified import BINS, EntryState, Verified
from llmemo.core.verify import LLMVerifier
from llmemo.errors import ConfigError
from llmemo.index import AsyncLocalIndex, LocalIndex
from llmemo.stores import (
    AsyncRedisClusterStore,
    AsyncUpstashStore,
    RedisClusterStore,
    UpstashStore,
    keys,
)
from llmemo.stores.memory import MemoryStore
from llmemo.stores.sqlite import SQLiteStore
from llmemo.testing.server import UpstreamServer
from tests.core.helpers import Upstream, answer, chat
from tests.semantic.conftest import CountingEmbedder, Make, Twin, cosine
from tests.semantic.test_upstash import upstash_url  # noqa: F401  (the fixture)

FRANCE = "What is the capital of France?"
CLOSE = "What is the capital city of France?"  # cos 0.96 with FRANCE
FAR = "Which city is the capital of France?"  # cos 0.94
NEAR = "What's the capital of France?"  # cos 0.99
COVERED = {f"ok:{b}": 500 for b in range(80, BINS + 1)}  # evidence: safe from 0.80 up


async def run(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def seed(twin: Twin, namespace: str = "default") -> None:
    """What other processes learned: 500 same answers in every bin from 0.80 up."""
    key = keys.verified_key(twin.cache.prefix, namespace, twin.layer.space)
    await run(twin.cache.backend.incr(key, COVERED))


async def state_of(twin: Twin, request: dict[str, Any]) -> EntryState:
    entry = await run(twin.cache.entry_key(request))
    data = await run(twin.cache.backend.get(keys.entry_state_key(twin.cache.prefix, entry)))
    return EntryState.decode(data)


async def counters(twin: Twin) -> dict[str, float]:
    """The cache's counters, flushed to the store (a flush can come at any time on a busy machine)."""
    await run(twin.cache.flush())
    found: dict[str, float] = await run(
        twin.cache.backend.counters(keys.stats_key(twin.cache.prefix, twin.cache.namespace))
    )
    return found


def counted(cache: Cache) -> dict[str, float]:
    cache.flush()
    return cache.backend.counters(keys.stats_key(cache.prefix, cache.namespace))


def content(response: dict[str, Any]) -> str:
    return str(response["choices"][0]["message"]["content"])


@pytest.mark.asyncio
async def test_a_candidate_the_bound_does_not_cover_is_a_miss_whose_answer_is_judged(
    make: Make, embedder: CountingEmbedder
) -> None:
    twin = make(threshold=0.8, max_error=Verified(0.05, seed=1))
    await twin.compute(chat(FRANCE), "Paris.")
    result = await twin.compute(chat(CLOSE), "Lyon.")
    assert result.status == "miss" and content(result.response) == "Lyon."  # the fresh answer
    seen = await counters(twin)
    assert seen["verified_refused_by_bound"] == 1 and seen["verified_differ"] == 1
    state = await state_of(twin, chat(FRANCE))
    assert state.bad == 1 and state.worst == pytest.approx(
        cosine(embedder, FRANCE, CLOSE), abs=2e-3
    )
    evidence = await run(
        twin.cache.backend.counters(keys.verified_key("llmemo", "default", twin.layer.space))
    )
    assert evidence == {"bad:96": 1}
    assert await twin.delete(chat(FRANCE))  # the entry's state goes with it
    assert await state_of(twin, chat(FRANCE)) == EntryState()


@pytest.mark.asyncio
async def test_served_once_the_evidence_covers_the_similarity(make: Make) -> None:
    twin = make(threshold=0.8, max_error=Verified(0.05, seed=1))
    await twin.compute(chat(FRANCE), "Paris.")
    await seed(twin)
    result = await twin.compute(chat(CLOSE), "Lyon.")
    assert result.status == "semantic" and content(result.response) == "Paris."
    assert (await counters(twin))["verified_served"] == 1


@pytest.mark.asyncio
async def test_an_entry_seen_wrong_refuses_at_that_similarity_though_the_namespace_allows(
    make: Make, embedder: CountingEmbedder
) -> None:
    assert (
        cosine(embedder, FRANCE, FAR)
        < cosine(embedder, FRANCE, CLOSE)
        < cosine(embedder, FRANCE, NEAR)
    )
    twin = make(threshold=0.8, max_error=Verified(0.05, seed=1))
    await twin.compute(chat(FRANCE), "Paris.")
    await twin.compute(chat(CLOSE), "Lyon.", no_store=True)  # judged different at 0.96
    await seed(twin)
    twin.layer.verification._priors.clear()  # type: ignore[union-attr]  # read the seed now
    far = await twin.compute(chat(FAR), "Lyon.", no_store=True)
    assert far.status == "miss" and content(far.response) == "Lyon."
    assert (await counters(twin))["verified_refused_by_bound"] == 2
    near = await twin.compute(chat(NEAR), "Lyon.")  # above where the entry was wrong
    assert near.status == "semantic" and content(near.response) == "Paris."


@pytest.mark.asyncio
async def test_exploration_returns_the_fresh_answer_and_refreshes_the_entry(make: Make) -> None:
    twin = make(threshold=0.8, max_error=Verified(0.05, min_explore=1.0, seed=1))
    await twin.compute(chat(FRANCE), "Paris.")
    await seed(twin)
    explored = await twin.compute(chat(CLOSE), "Lyon.")  # covered, but checked this time
    assert explored.status == "miss" and content(explored.response) == "Lyon."
    seen = await counters(twin)
    assert seen["verified_explored"] == 1 and seen["verified_differ"] == 1
    again = await twin.compute(chat(CLOSE), "Marseille.")
    assert again.status == "hit" and content(again.response) == "Lyon."  # its own entry now
    assert (await state_of(twin, chat(FRANCE))).bad == 1


@pytest.mark.asyncio
async def test_lookup_then_store_explores_and_judges_like_compute(make: Make) -> None:
    # the LangChain and streamed-wrap path: lookup, the caller asks the upstream, store
    twin = make(threshold=0.8, max_error=Verified(0.05, min_explore=1.0, seed=1))
    await twin.compute(chat(FRANCE), "Paris.")
    await seed(twin)
    assert await twin.lookup(chat(CLOSE)) is None  # explored: the caller's upstream answers
    assert "verified_differ" not in (await counters(twin))
    assert await twin.store(chat(CLOSE), answer("Lyon."))
    assert (await counters(twin))["verified_differ"] == 1
    assert (await state_of(twin, chat(FRANCE))).bad == 1


PROCESS = """
import sys
from llmemo import Cache
from llmemo.core.semantic import SemanticLayer
from llmemo.core.verified import Verified
from llmemo.embed.minilm import MiniLMEmbedder
from tests.core.helpers import Upstream, answer, chat

layer = SemanticLayer(MiniLMEmbedder(), threshold=0.8, max_error=Verified(0.05, seed=1))
cache = Cache.from_url(sys.argv[1], semantic=layer, namespace="shared")
cache.compute(chat(sys.argv[2]), Upstream(answer("Paris.")))
result = cache.compute(chat(sys.argv[3]), Upstream(answer("Lyon.")), no_store=True)
assert result.status == "miss", result.status
cache.close()
"""


def test_the_evidence_and_entry_state_persist_across_processes(
    redis_url: str, embedder: CountingEmbedder
) -> None:
    root = Path(__file__).resolve().parents[2]
    path = os.pathsep.join([str(Path(llmemo.__file__).parents[1]), str(root)])
    subprocess.run(
        [sys.executable, "-c", PROCESS, redis_url, FRANCE, CLOSE],
        check=True,
        env={**os.environ, "PYTHONPATH": path},
        cwd=root,
        timeout=120,
    )
    layer = SemanticLayer(embedder, threshold=0.8, max_error=Verified(0.05, seed=1))
    cache = Cache.from_url(redis_url, semantic=layer, namespace="shared")
    assert layer.verification is not None
    cache.backend.incr(keys.verified_key("llmemo", "shared", layer.space), COVERED)
    assert layer.verification.prior("shared").bad[96] == 1  # the other process's verdict
    result = cache.compute(chat(FAR), Upstream(answer("Lyon.")))
    assert result.status == "miss"  # its entry was seen wrong at 0.96: not served at 0.94
    assert counted(cache)["verified_refused_by_bound"] == 2  # one in each process
    cache.close()


def cluster_cache(url: str, embedder: CountingEmbedder) -> Cache:
    store = RedisClusterStore.from_url(url)
    index = LocalIndex(store, embedder.dim, poll_interval=0)
    return Cache(store, semantic=SemanticLayer(embedder, index, threshold=0.8, max_error=0.05))


def upstash_cache(url: str, embedder: CountingEmbedder) -> Cache:
    store = UpstashStore.from_url(url)
    index = LocalIndex(store, embedder.dim, poll_interval=0)
    return Cache(store, semantic=SemanticLayer(embedder, index, threshold=0.8, max_error=0.05))


def sqlite_cache(url: str, embedder: CountingEmbedder) -> Cache:
    store = SQLiteStore.from_url(url)
    index = LocalIndex(store, embedder.dim, poll_interval=0)
    return Cache(store, semantic=SemanticLayer(embedder, index, threshold=0.8, max_error=0.05))


@pytest.mark.parametrize("kind", ["cluster", "upstash", "sqlite"])
def test_the_state_lives_in_a_cluster_upstash_and_sqlite(
    kind: str, request: pytest.FixtureRequest, embedder: CountingEmbedder, tmp_path: Path
) -> None:
    if kind == "sqlite":
        url, build = f"sqlite:///{tmp_path / 'cache.db'}", sqlite_cache
    else:
        url = request.getfixturevalue("redis_cluster_url" if kind == "cluster" else "upstash_url")
        build = cluster_cache if kind == "cluster" else upstash_cache
    first, second = build(url, embedder), build(url, embedder)
    first.compute(chat(FRANCE), Upstream(answer("Paris.")))
    assert first.compute(chat(CLOSE), Upstream(answer("Lyon.")), no_store=True).status == "miss"
    assert second.semantic is not None and second.semantic.verification is not None
    second.backend.incr(keys.verified_key("llmemo", "default", second.semantic.space), COVERED)
    assert second.compute(chat(FAR), Upstream(answer("Lyon."))).status == "miss"  # entry state
    assert second.compute(chat(NEAR), Upstream(answer("Lyon."))).status == "semantic"
    first.close()
    second.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["cluster", "upstash"])
async def test_the_async_twin_on_a_cluster_and_upstash(
    kind: str, request: pytest.FixtureRequest, embedder: CountingEmbedder
) -> None:
    from llmemo.core.semantic import AsyncSemanticLayer

    url = request.getfixturevalue("redis_cluster_url" if kind == "cluster" else "upstash_url")
    store = (AsyncRedisClusterStore if kind == "cluster" else AsyncUpstashStore).from_url(url)
    index = AsyncLocalIndex(store, embedder.dim, poll_interval=0)
    layer = AsyncSemanticLayer(embedder, index, threshold=0.8, max_error=0.05)
    cache = AsyncCache(store, semantic=layer)
    await cache.compute(chat(FRANCE), Upstream(answer("Paris.")).acall)
    result = await cache.compute(chat(CLOSE), Upstream(answer("Lyon.")).acall, no_store=True)
    assert result.status == "miss" and content(result.response) == "Lyon."
    await cache.flush()
    assert (await store.counters(keys.stats_key("llmemo", "default")))["verified_differ"] == 1
    await cache.close()


def test_the_embedding_judge_tells_a_reworded_answer_from_another(
    embedder: CountingEmbedder,
) -> None:
    layer = SemanticLayer(embedder, "local", threshold=0.8, max_error=0.05, judge="embedding:0.9")
    cache = Cache(MemoryStore(), semantic=layer)
    cache.compute(chat(FRANCE), Upstream(answer("The capital of France is Paris.")))
    cache.compute(chat(CLOSE), Upstream(answer("Paris is the capital of France.")), no_store=True)
    assert counted(cache)["verified_same"] == 1
    cache.compute(chat(FAR), Upstream(answer("Bananas are rich in potassium.")), no_store=True)
    assert counted(cache)["verified_differ"] == 1
    cache.close()


def test_the_llm_judge_asks_the_layers_verifier(
    embedder: CountingEmbedder, upstream: UpstreamServer
) -> None:
    verifier = LLMVerifier("judge", base_url=upstream.openai_base_url, trust_from=0.0)
    layer = SemanticLayer(
        embedder, "local", threshold=0.8, verifier=verifier, max_error=0.05, judge="llm"
    )
    cache = Cache(MemoryStore(), semantic=layer)
    cache.compute(chat(FRANCE), Upstream(answer("Paris.")))
    cache.compute(chat(CLOSE), Upstream(answer("Lyon.")), no_store=True)  # 6 of 7 words shared
    assert counted(cache)["verified_same"] == 1 and upstream.stats().total == 1
    cache.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_error": 1.5}, r"max_error must be the share of wrong semantic hits .* got 1.5"),
        ({"max_error": "2%"}, "max_error must be"),
        ({"judge": "exact"}, "judge only applies with max_error"),
        ({"max_error": 0.02, "judge": "llm"}, "judge='llm' needs the layer's verifier"),
        ({"max_error": Verified(0.02), "judge": "exact"}, "pass judge= to Verified"),
    ],
)
def test_bad_options_are_one_line_errors(
    options: dict[str, Any], message: str, embedder: CountingEmbedder
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Cache(MemoryStore(), semantic=SemanticLayer(embedder, "local", **options))
    assert "\n" not in str(caught.value)


def test_from_url_hands_max_error_to_the_layer(embedder: CountingEmbedder) -> None:
    cache = Cache.from_url("memory://", semantic=True, embedder=embedder, max_error=0.02)
    assert cache.semantic is not None and cache.semantic.verification is not None
    assert cache.semantic.verification.config.max_error == 0.02
    cache.close()
    with pytest.raises(ConfigError, match="only apply with semantic=True"):
        Cache.from_url("memory://", max_error=0.02)
