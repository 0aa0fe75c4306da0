"""Do-not-cache rules in the cache: a request or answer with a skipped category is served, never
stored nor embedded, and counted by category."""

from __future__ import annotations

from collections.abc import Sequence

from llmemo import Cache, SensitivePolicy
from llmemo.core.semantic import SemanticLayer
from llmemo.embed import CallableEmbedder
from llmemo.stores.memory import MemoryStore
from tests.core.helpers import Upstream, answer, chat

KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv"


def stored(store: MemoryStore) -> list[str]:
    return [key for batch in store.scan("*") for key in batch]


def keys(store: MemoryStore) -> list[str]:
    return [key for key in stored(store) if ":x:" in key]


def test_a_request_with_a_key_is_answered_not_stored_and_counted() -> None:
    store, upstream = MemoryStore(), Upstream()
    cache = Cache(store)
    request = chat(f"Why does my call with {KEY} fail?")
    first = cache.compute(request, upstream)
    second = cache.compute(request, upstream)
    assert (first.status, second.status) == ("miss", "miss")
    assert first.response == answer() and first.skipped == "sensitive" and not first.stored
    assert upstream.calls == 2 and keys(store) == []
    stats = cache.local_stats()
    assert stats.skipped_sensitive == {"api_key": 2}
    assert stats.skip_reasons == {"sensitive": 2} and stats.skips == 2
    assert not cache.store(request, answer())


def test_an_answer_with_a_card_number_is_not_stored() -> None:
    store = MemoryStore()
    cache = Cache(store)
    upstream = Upstream(answer("Your card 4111 1111 1111 1111 is on file."))
    result = cache.compute(chat("Which card do I have on file?"), upstream)
    assert result.skipped == "sensitive" and keys(store) == []
    assert cache.local_stats().skipped_sensitive == {"card": 1}


def test_an_allowed_category_is_stored() -> None:
    store, upstream = MemoryStore(), Upstream()
    cache = Cache(store)
    request = chat("Write to ann@example.com and call +44 20 7946 0958")
    assert cache.compute(request, upstream).stored
    assert cache.compute(request, upstream).status == "hit"
    assert upstream.calls == 1 and len(keys(store)) == 1


def test_the_policy_is_per_namespace_and_can_be_off() -> None:
    policy = SensitivePolicy.parse(skip=["email"], allow=["support:secrets", "support:email"])
    store = MemoryStore()
    cache = Cache(store, sensitive=policy)
    assert not cache.compute(chat("mail ann@example.com"), Upstream()).stored
    assert cache.compute(
        chat(
            f"key {KEY}",
        ),
        Upstream(),
        namespace="support",
    ).stored
    assert cache.local_stats().skipped_sensitive == {"email": 1}
    off = Cache(MemoryStore(), sensitive=None)
    assert off.compute(chat(f"key {KEY}"), Upstream()).stored


class Counting:
    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts.extend(texts)
        return [[1.0, 0.0] for _ in texts]


def test_a_skipped_request_is_never_embedded() -> None:
    embed = Counting()
    layer = SemanticLayer(CallableEmbedder(embed, dim=2), "local", threshold=0.9, guard=None)
    store = MemoryStore()
    cache = Cache(store, semantic=layer)
    cache.compute(chat(f"my key is {KEY}, what now?"), Upstream())
    assert cache.lookup(chat(f"my key is {KEY}, what now?")) is None
    assert embed.texts == [] and stored(store) == []  # no entry, vector, embedding row
    assert cache.local_stats().skipped_sensitive == {"api_key": 1}
    cache.compute(chat("What is the capital of France?"), Upstream())
    assert embed.texts  # an ordinary request still is embedded and its vector kept (the
    # embedding-cache row goes once the index holds the vector)
    assert not any(":emb:" in key for key in stored(store))
    assert len(keys(store)) == 2  # the entry and its vector


def test_text_on_its_own_line_and_in_content_parts_is_checked() -> None:
    store = MemoryStore()
    cache = Cache(store)
    on_a_line = chat("My card:\n4111 1111 1111 1111\nthanks")
    parts = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": [{"type": "text", "text": f"key:\n{KEY}"}]}],
    }
    assert cache.compute(on_a_line, Upstream()).skipped == "sensitive"
    assert cache.compute(parts, Upstream()).skipped == "sensitive"
    assert keys(store) == []
    assert cache.local_stats().skipped_sensitive == {"card": 1, "api_key": 1}
