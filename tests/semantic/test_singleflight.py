"""Misses of a semantic cache go through the exact cache's single-flight."""

from __future__ import annotations

import threading

from llmemo import Cache
from tests.core.helpers import Upstream, answer, chat
from tests.semantic.conftest import CountingEmbedder
from tests.semantic.test_flow import FRANCE, PARAPHRASE


def test_paraphrase_misses_share_one_upstream_call(
    redis_url: str, embedder: CountingEmbedder
) -> None:
    cache = Cache.from_url(redis_url, semantic=True, embedder=embedder, threshold=0.85)
    upstream = Upstream(answer("Paris."), delay=0.3)
    results: list[str] = []

    def ask() -> None:
        results.append(cache.compute(chat(FRANCE), upstream).status)

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert upstream.calls == 1
    # One leader; a follower that missed the exact read just before the leader stored may find
    # the leader's own vector instead (a semantic hit at similarity 1.0): either way, no call.
    assert results.count("miss") == 1
    assert set(results) <= {"miss", "hit", "semantic"}
    assert cache.compute(chat(PARAPHRASE), upstream).status == "semantic"
    cache.close()
