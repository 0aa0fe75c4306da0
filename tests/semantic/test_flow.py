"""The hybrid flow on every backend and both twins: paraphrase hits with backfill, scoping, guard,
deletion, the lookup/store API, single-flight."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from llmemo.core.guard import Guard
from llmemo.core.semantic import MAX_CHARS, SemanticLayer
from llmemo.embed.cached_base import embedding_key
from llmemo.index import AsyncLocalIndex, AsyncRediSearchIndex, LocalIndex, RediSearchIndex
from tests.core.helpers import Upstream, answer, chat
from tests.semantic.conftest import CountingEmbedder, Make, cosine

pytestmark = pytest.mark.asyncio


async def maybe(value: Any) -> Any:
    """`value`, awaited if the async twin returned a coroutine."""
    return await value if inspect.isawaitable(value) else value


FRANCE = "What is the capital of France?"
PARAPHRASE = "Which city is the capital of France?"


def convo(
    last: str, *, system: str = "You are terse.", model: str = "gpt-4o-mini", **params: Any
) -> dict[str, Any]:
    """A chat request with a system prompt and one earlier exchange before `last`."""
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi! Ask me anything."},
            {"role": "user", "content": last},
        ],
        **params,
    }


async def test_the_index_matches_the_backend(make: Make, request: pytest.FixtureRequest) -> None:
    twin = make()
    layer = twin.layer
    index = layer.open_index() if isinstance(layer, SemanticLayer) else await layer.open_index()
    if request.node.callspec.params["backend"] == "stack":
        assert isinstance(index, RediSearchIndex | AsyncRediSearchIndex)
    else:  # the embedded store and a Redis without the search module
        assert isinstance(index, LocalIndex | AsyncLocalIndex)


async def test_paraphrase_hits_with_its_similarity_then_backfill_makes_it_exact(
    make: Make, embedder: CountingEmbedder
) -> None:
    twin = make(threshold=0.85)
    upstream = Upstream(answer("Paris."))
    first = await twin.compute(chat(FRANCE), upstream=upstream)
    assert first.status == "miss" and first.stored

    second = await twin.compute(chat(PARAPHRASE), upstream=upstream)
    assert second.status == "semantic"
    assert second.response == answer("Paris.")
    assert second.hit is not None and second.hit.kind == "semantic"
    assert second.hit.similarity == pytest.approx(cosine(embedder, FRANCE, PARAPHRASE), abs=2e-3)
    assert 0.85 <= second.hit.similarity <= 1.0
    assert upstream.calls == 1

    embedded = list(embedder.texts)
    cached = twin.layer.embedder
    seen = (cached.hits, cached.misses)  # type: ignore[union-attr]
    third = await twin.compute(chat(PARAPHRASE), upstream=upstream)
    assert third.status == "hit"  # the backfilled exact key: one GET
    assert third.hit is not None and third.hit.kind == "exact"
    assert embedder.texts == embedded  # no embedding, not even an embedding-cache lookup
    assert (cached.hits, cached.misses) == seen  # type: ignore[union-attr]
    assert upstream.calls == 1
    counters = twin.counters()
    assert counters["semantic_hits"] == 1 and counters["hits"] == 1


async def test_a_text_is_embedded_once(make: Make, embedder: CountingEmbedder) -> None:
    twin = make(threshold=0.85)
    await twin.compute(chat(FRANCE))  # lookup embeds it; storing it reuses the cached vector
    assert embedder.texts == [FRANCE]
    await twin.compute(chat("How tall is Mount Everest?"), "8849 m")
    await twin.compute(chat("How tall is Mount Everest?"), "8849 m")
    assert embedder.texts == [FRANCE, "How tall is Mount Everest?"]


async def test_the_query_vector_is_cached_unless_the_hit_was_backfilled(
    make: Make, embedder: CountingEmbedder
) -> None:
    """A backfilled hit's exact key answers its text from then on, so its vector is not written
    (one round trip less per semantic hit); any other outcome keeps it for the next lookup."""
    twin = make(threshold=0.85)
    await twin.compute(chat(FRANCE))
    assert (await twin.compute(chat(PARAPHRASE), no_store=True)).status == "semantic"
    assert (await twin.compute(chat(PARAPHRASE), no_store=True)).status == "semantic"
    assert embedder.texts == [FRANCE, PARAPHRASE]  # not backfilled: its vector was cached
    other = "Which city serves as the capital of France?"
    assert (await twin.compute(chat(other))).status == "semantic"  # backfilled
    assert await twin.delete(chat(other))
    assert (await twin.compute(chat(other))).status == "semantic"
    assert embedder.texts == [FRANCE, PARAPHRASE, other, other]  # its vector was not cached


async def test_a_stored_prompts_embedding_row_is_deleted_once_indexed(
    make: Make, embedder: CountingEmbedder
) -> None:
    """The vector index holds a stored prompt's vector, so its embedding-cache row goes."""
    twin = make(threshold=0.85)
    layer = twin.layer
    row = embedding_key(twin.cache.prefix, embedder.name, embedder.model, embedder.dim, FRANCE)
    assert await twin.lookup(chat(FRANCE)) is None
    assert await maybe(twin.cache.backend.get(row)) is not None  # the miss cached its vector
    assert await twin.store(chat(FRANCE), answer("Paris."))
    assert await maybe(twin.cache.backend.get(row)) is None
    index = layer.open_index() if isinstance(layer, SemanticLayer) else await layer.open_index()
    assert await maybe(index.count()) == 1
    assert embedder.texts == [FRANCE]  # the store read the row: the model ran once
    assert (await twin.compute(chat(PARAPHRASE))).status == "semantic"


async def test_a_store_without_a_lookup_writes_no_embedding_row(
    make: Make, embedder: CountingEmbedder
) -> None:
    twin = make(threshold=0.85)
    row = embedding_key(twin.cache.prefix, embedder.name, embedder.model, embedder.dim, FRANCE)
    assert await twin.store(chat(FRANCE), answer("Paris."))
    assert await maybe(twin.cache.backend.get(row)) is None
    assert embedder.texts == [FRANCE]
    assert (await twin.compute(chat(PARAPHRASE))).status == "semantic"


SCOPE_CHANGES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "system prompt": ({"system": "Answer in French."}, {}),
    "model": ({"model": "gpt-4o"}, {}),
    "temperature": ({"temperature": 0.7}, {}),
    "max_tokens": ({"max_tokens": 5}, {}),
    "tenant": ({}, {"tenant": "bob"}),
    "user": ({}, {"user": "u2"}),
    "namespace": ({}, {"namespace": "other"}),
}


@pytest.mark.parametrize("change", list(SCOPE_CHANGES))
async def test_same_last_message_in_another_context_never_hits(make: Make, change: str) -> None:
    twin = make(threshold=0.0, guard=None)  # anything in scope would hit: only the scope stops it
    request_change, scope_change = SCOPE_CHANGES[change]
    await twin.compute(convo(FRANCE), "Paris.", tenant="alice", user="u1")
    scope = {"tenant": "alice", "user": "u1", **scope_change}
    for text in (FRANCE, PARAPHRASE):
        result = await twin.compute(convo(text, **request_change), "other", no_store=True, **scope)
        assert result.status == "miss", (change, text)
    # the control: the same context and a paraphrase does hit
    assert (
        await twin.compute(convo(PARAPHRASE), "x", tenant="alice", user="u1")
    ).status == "semantic"


async def test_earlier_turns_are_context(make: Make) -> None:
    twin = make(threshold=0.0, guard=None)
    first = convo(FRANCE)
    await twin.compute(first)
    other = convo(FRANCE)
    other["messages"][1] = {"role": "user", "content": "Let's talk about Texas."}
    assert (await twin.compute(other, "Austin.")).status == "miss"
    assert (await twin.compute(chat(FRANCE), "Paris.")).status == "miss"  # no earlier turns at all


async def test_a_version_bump_retires_vectors_too(make: Make) -> None:
    twin = make(threshold=0.85)
    await twin.compute(chat(FRANCE))
    await twin.bump_version()
    assert (await twin.compute(chat(PARAPHRASE), "new")).status == "miss"


@pytest.mark.parametrize(
    ("stored", "query", "reason"),
    [
        ("Is 7 a prime number?", "Is 9 a prime number?", "numbers"),
        ("How do I convert 10 USD to EUR?", "How do I convert 10 EUR to USD?", "entities"),
        ("Can I eat eggs during Lent?", "Can't I eat eggs during Lent?", "negation"),
    ],
)
async def test_the_guard_turns_lookalikes_into_misses(
    make: Make, stored: str, query: str, reason: str
) -> None:
    guarded = make(threshold=0.5, namespace="guarded")
    await guarded.compute(chat(stored), "A")
    result = await guarded.compute(chat(query), "B")
    assert result.status == "miss" and result.response == answer("B")
    assert guarded.counters()[f"semantic_rejected:{reason}"] == 1
    unguarded = make(threshold=0.5, guard=Guard.off(), namespace="unguarded")
    await unguarded.compute(chat(stored), "A")
    assert (await unguarded.compute(chat(query), "B")).status == "semantic"  # what it prevents


async def test_the_next_candidate_is_tried_when_the_nearest_fails_the_guard(make: Make) -> None:
    twin = make(threshold=0.5)
    await twin.compute(chat("Is 9 a prime number?"), "no")
    await twin.compute(chat("Is 7 a prime number, really?"), "yes")
    result = await twin.compute(chat("Is 7 a prime number?"), "upstream")
    assert result.status == "semantic" and result.response == answer("yes")


async def test_deleted_and_invalidated_answers_stop_matching(make: Make) -> None:
    twin = make(threshold=0.85)
    await twin.compute(chat(FRANCE))
    assert await twin.delete(chat(FRANCE))
    assert (await twin.compute(chat(PARAPHRASE), "fresh")).status == "miss"
    await twin.compute(chat("How tall is Mount Everest?"), "8849 m", tags=("geo",))
    assert await twin.invalidate(tag="geo") == 1
    assert (
        await twin.compute(chat("What is the height of Mount Everest?"), "new")
    ).status == "miss"


async def test_lookup_and_store_api(make: Make) -> None:
    twin = make(threshold=0.85)
    assert await twin.store(chat(FRANCE), answer("Paris."))
    hit = await twin.lookup(chat(PARAPHRASE))
    assert hit is not None and hit.kind == "semantic" and hit.similarity is not None
    assert hit.response == answer("Paris.")
    exact = await twin.lookup(chat(PARAPHRASE))  # backfilled
    assert exact is not None and exact.kind == "exact"
    assert await twin.lookup(chat("How do volcanoes form?")) is None


async def test_no_store_does_not_backfill(make: Make) -> None:
    twin = make(threshold=0.85)
    await twin.compute(chat(FRANCE))
    assert (await twin.compute(chat(PARAPHRASE), no_store=True)).status == "semantic"
    assert (await twin.compute(chat(PARAPHRASE), no_store=True)).status == "semantic"


async def test_refresh_skips_the_semantic_lookup(make: Make) -> None:
    twin = make(threshold=0.85)
    await twin.compute(chat(FRANCE))
    assert (await twin.compute(chat(PARAPHRASE), "new", refresh=True)).status == "miss"


async def test_requests_without_a_user_message_are_exact_only(
    make: Make, embedder: CountingEmbedder
) -> None:
    twin = make(threshold=0.0, guard=None)
    trailing_assistant = {
        "model": "m",
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}],
    }
    await twin.compute(trailing_assistant)
    embeddings = {"model": "text-embedding-3-small", "input": "hello"}
    await twin.compute(embeddings, upstream=Upstream({"object": "list", "data": []}))
    assert embedder.texts == []


async def test_namespaces_option_limits_the_layer(make: Make, embedder: CountingEmbedder) -> None:
    twin = make(threshold=0.85, namespaces=["faq"])
    await twin.compute(chat(FRANCE))
    assert (await twin.compute(chat(PARAPHRASE), "x")).status == "miss"
    assert embedder.texts == []
    await twin.compute(chat(FRANCE), namespace="faq")
    assert (await twin.compute(chat(PARAPHRASE), "x", namespace="faq")).status == "semantic"


async def test_a_text_over_max_chars_is_matched_exactly_only(
    make: Make, embedder: CountingEmbedder
) -> None:
    twin = make(threshold=0.85, max_chars=40)
    long = FRANCE + " Answer in one word, please."  # 57 characters
    assert (await twin.compute(chat(long), "Paris.")).status == "miss"
    assert (await twin.compute(chat(long + " "), "Paris.")).status == "hit"  # exact, normalised
    rephrased = "Which city is the capital of France? Answer in one word, please."
    assert (await twin.compute(chat(rephrased), "Lyon.")).status == "miss"
    assert twin.counters()["semantic_skipped:too_long"] == 2
    assert embedder.texts == []  # neither embedded nor indexed
    await twin.compute(chat(FRANCE), "Paris.")
    assert (await twin.compute(chat(PARAPHRASE))).status == "semantic"  # short texts still match
    embedder.texts.clear()
    default = make(threshold=0.85, namespace="default-bound")
    huge = FRANCE + " Context: " + "lorem ipsum " * (MAX_CHARS // 12)
    assert len(huge) > MAX_CHARS
    assert (await default.compute(chat(huge), "Paris.")).status == "miss"
    assert embedder.texts == [] and default.counters()["semantic_skipped:too_long"] == 1
