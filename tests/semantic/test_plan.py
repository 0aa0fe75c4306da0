"""The semantic layer decides, the cache writes: a lookup returns a plan (the hit, what to count,
the backfill write, the lease to renew) and writes nothing itself."""

from __future__ import annotations

from llmemo import Cache
from llmemo.core.semantic import SemanticLayer
from llmemo.stores.memory import MemoryStore
from tests.core.helpers import Upstream, answer, chat
from tests.semantic.conftest import CountingEmbedder

FRANCE = "What is the capital of France?"
PARAPHRASE = "Which city is the capital of France?"


def test_a_lookup_returns_a_plan_and_writes_nothing(embedder: CountingEmbedder) -> None:
    store = MemoryStore()
    layer = SemanticLayer(embedder, "local", threshold=0.85)
    cache = Cache(store, semantic=layer)
    assert cache.compute(chat(FRANCE), Upstream(answer("Paris."))).status == "miss"
    original = cache.entry_key(chat(FRANCE))
    call = cache._prepare(chat(PARAPHRASE))
    exact = cache._key_of(call, 0)

    plan = layer.lookup(call, 0, rolling=60.0)
    assert plan.hit is not None and plan.hit.kind == "semantic"
    assert plan.hit.key == original
    assert plan.backfill is not None and plan.backfill[1] == 60.0  # the lease the hit gives
    assert plan.renew == (original, 60.0)
    assert plan.counts == [] and plan.errors == []
    assert store.get(exact) is None  # the plan is the cache's to carry out
    assert cache.local_stats().semantic_hits == 0

    assert layer.lookup(call, 0, backfill=False).backfill is None  # no-store: no backfill
    assert layer.lookup(call, 0).renew is None  # no rolling TTL: no lease to renew
    hit = cache.lookup(chat(PARAPHRASE))  # carried out: counted, backfilled
    assert hit is not None and hit.kind == "semantic"
    assert store.get(exact) is not None
    assert cache.local_stats().semantic_hits == 1
    cache.close()
