"""Rolling TTL with the semantic layer: a hit renews the entry's lease and its vector's, so an
answer kept alive by its hits keeps answering paraphrases (every backend, both twins)."""

from __future__ import annotations

import asyncio

import pytest

from llmemo import TtlPolicy
from tests.core.helpers import Upstream, answer, chat
from tests.semantic.conftest import Make

pytestmark = pytest.mark.asyncio

FRANCE = "What is the capital of France?"
TTL = 1.2  # seconds; every step below leaves at least 0.5 s of margin


async def test_hits_keep_the_vector_alive_past_its_first_ttl(make: Make) -> None:
    twin = make(threshold=0.85, ttl=TtlPolicy.build(TTL, jitter=0.0, rolling=True))
    upstream = Upstream(answer("Paris."))
    assert (await twin.compute(chat(FRANCE), upstream=upstream)).status == "miss"
    for _ in range(2):  # exact hits at +0.5 s and +1.0 s renew the entry, and its vector
        await asyncio.sleep(0.5)
        assert (await twin.compute(chat(FRANCE), upstream=upstream)).status == "hit"
    await asyncio.sleep(0.5)  # +1.5 s: past the first TTL
    paraphrase = await twin.compute(chat("Which city is the capital of France?"), upstream=upstream)
    assert paraphrase.status == "semantic"  # the vector outlived its first TTL
    await asyncio.sleep(0.9)  # +2.4 s: past the lease the exact hits gave (+2.2 s)
    again = await twin.compute(chat("Name the capital city of France."), upstream=upstream)
    assert again.status == "semantic"  # the semantic hit renewed the entry and its vector
    assert upstream.calls == 1


async def test_without_hits_the_vector_expires_with_its_entry(make: Make) -> None:
    twin = make(threshold=0.85, ttl=TtlPolicy.build(TTL, jitter=0.0, rolling=True))
    upstream = Upstream(answer("Paris."))
    await twin.compute(chat(FRANCE), upstream=upstream)
    await asyncio.sleep(TTL + 0.5)
    later = await twin.compute(chat("Which city is the capital of France?"), upstream=upstream)
    assert later.status == "miss" and upstream.calls == 2
