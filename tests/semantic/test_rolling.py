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
TTL = 2.0  # seconds; each check below has 0.5 s or more of margin on either side


async def test_hits_keep_the_vector_alive_past_its_first_ttl(make: Make) -> None:
    twin = make(threshold=0.85, ttl=TtlPolicy.build(TTL, jitter=0.0, rolling=True))
    upstream = Upstream(answer("Paris."))
    assert (await twin.compute(chat(FRANCE), upstream=upstream)).status == "miss"
    for _ in range(2):  # exact hits at +0.6 s and +1.2 s renew the entry, and its vector
        await asyncio.sleep(0.6)
        assert (await twin.compute(chat(FRANCE), upstream=upstream)).status == "hit"
    await asyncio.sleep(1.3)  # +2.5 s: past the first TTL (+2.0 s)
    paraphrase = await twin.compute(chat("Which city is the capital of France?"), upstream=upstream)
    assert paraphrase.status == "semantic"  # the vector outlived its first TTL
    await asyncio.sleep(1.35)  # +3.85 s: past the lease the exact hits gave (+3.2 s)
    again = await twin.compute(chat("Name the capital city of France."), upstream=upstream)
    assert again.status == "semantic"  # the semantic hit renewed the entry and its vector (+4.5 s)
    assert upstream.calls == 1


async def test_without_hits_the_vector_expires_with_its_entry(make: Make) -> None:
    twin = make(threshold=0.85, ttl=TtlPolicy.build(TTL, jitter=0.0, rolling=True))
    upstream = Upstream(answer("Paris."))
    await twin.compute(chat(FRANCE), upstream=upstream)
    await asyncio.sleep(TTL + 0.5)
    later = await twin.compute(chat("Which city is the capital of France?"), upstream=upstream)
    assert later.status == "miss" and upstream.calls == 2
