"""The one VectorIndex contract: every backend (RediSearch, LocalIndex on memory, SQLite and plain
Redis), sync and async, float16 and float32, passes the same cases."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from llmemo.errors import ConfigError
from llmemo.index.base import AsyncVectorIndex
from tests.index.conftest import DIM, Harness, basis, random_unit, scope

pytestmark = pytest.mark.asyncio


async def test_protocol(harness: Harness) -> None:
    assert isinstance(harness.index, AsyncVectorIndex)
    assert harness.index.dim == DIM


async def test_identical_is_one_orthogonal_and_opposite_are_zero(harness: Harness) -> None:
    await harness.add("same", basis(0))
    await harness.add("orthogonal", basis(1))
    await harness.add("opposite", -basis(0))
    found = await harness.search(basis(0), k=3)
    assert [m.key for m in found] == ["same", "orthogonal", "opposite"]
    assert found[0].similarity == pytest.approx(1.0, abs=harness.tolerance)
    assert found[1].similarity == pytest.approx(0.0, abs=harness.tolerance)
    assert found[2].similarity == 0.0  # negative cosines are clamped onto the one [0, 1] scale
    assert all(0.0 <= m.similarity <= 1.0 for m in found)


async def test_similarity_is_the_cosine(harness: Harness) -> None:
    await harness.add("diagonal", basis(0) + basis(1))  # not unit: indexes normalise
    [match] = await harness.search(basis(0))
    assert match.similarity == pytest.approx(np.sqrt(0.5), abs=harness.tolerance)


async def test_nearest_neighbour_among_many(harness: Harness) -> None:
    rng = np.random.default_rng(7)
    vectors = random_unit(rng, 200)
    for i, v in enumerate(vectors):
        await harness.add(f"k{i}", v)
    for i in (0, 57, 199):
        query = vectors[i] + rng.standard_normal(DIM).astype(np.float32) * 0.05
        found = await harness.search(query, k=5)
        assert found[0].key == f"k{i}"
        expected = float(vectors[i] @ (query / np.linalg.norm(query)))
        assert found[0].similarity == pytest.approx(expected, abs=harness.tolerance)
        sims = [m.similarity for m in found]
        assert sims == sorted(sims, reverse=True)


@pytest.mark.parametrize(
    "other",
    [
        {"tenant": "acme"},
        {"tenant": "~"},  # a tenant literally named like the no-tenant token is still another
        {"fingerprint": "d00d" * 16},
        {"version": 2},
        {"namespace": "other"},
        {"model": "openai:text-embedding-3-small"},
        {"model": "minilm:all-minilm-l6-v2"},  # tags are case-sensitive
    ],
)
async def test_scope_is_a_pre_filter(harness: Harness, other: dict[str, object]) -> None:
    foreign = scope(**other)
    await harness.add("foreign", basis(0), foreign)  # the exact vector, in another scope
    await harness.add("mine", basis(1))
    found = await harness.search(basis(0), k=10)
    assert [m.key for m in found] == ["mine"]  # the neighbour in scope, however far
    assert [m.key for m in await harness.search(basis(0), foreign, k=10)] == ["foreign"]


async def test_scope_values_with_separators_and_query_syntax(harness: Harness) -> None:
    tricky = scope(tenant="a,b|c {x} @y:-z", model="m*(1)")
    prefix = scope(tenant="a")
    await harness.add("tricky", basis(0), tricky)
    await harness.add("prefix", basis(0), prefix)
    assert [m.key for m in await harness.search(basis(0), tricky, k=5)] == ["tricky"]
    assert [m.key for m in await harness.search(basis(0), prefix, k=5)] == ["prefix"]
    assert await harness.search(basis(0), scope(tenant="b"), k=5) == []


async def test_k_and_min_similarity(harness: Harness) -> None:
    for i in range(6):
        await harness.add(f"k{i}", basis(0) + basis(1) * (i / 4))
    found = await harness.search(basis(0), k=3)
    assert [m.key for m in found] == ["k0", "k1", "k2"]
    assert len(await harness.search(basis(0), k=50)) == 6
    cut = await harness.search(basis(0), k=6, min_similarity=0.9)  # cos: 1, 0.970, 0.894, ...
    assert [m.key for m in cut] == ["k0", "k1"]
    assert [m.key for m in await harness.search(basis(0), k=6, min_similarity=1.0)] == ["k0"]


async def test_bad_arguments_are_config_errors(harness: Harness) -> None:
    with pytest.raises(ConfigError):
        await harness.search(basis(0), k=0)
    with pytest.raises(ConfigError):
        await harness.search(basis(0), min_similarity=1.5)
    with pytest.raises(ConfigError):
        await harness.search(np.ones(DIM + 1))
    with pytest.raises(ConfigError):
        await harness.add("bad", np.ones(DIM - 1))


async def test_payload_is_returned_or_left_to_the_caller(harness: Harness) -> None:
    payload = bytes(range(256)) * 4  # binary, 1 KiB
    await harness.add("with", basis(0), payload=payload)
    await harness.add("without", basis(1))
    found = {m.key: m.payload for m in await harness.search(basis(0), k=2)}
    if harness.returns_payload:
        assert found == {"with": payload, "without": None}
    else:
        assert found == {"with": None, "without": None}


async def test_add_replaces(harness: Harness) -> None:
    await harness.add("k", basis(0), payload=b"old")
    await harness.add("k", basis(1), payload=b"new")
    found = await harness.search(basis(1), k=5)
    assert [m.key for m in found] == ["k"]
    assert found[0].similarity == pytest.approx(1.0, abs=harness.tolerance)
    assert found[0].payload in (None, b"new")
    assert await harness.index.count() == 1


async def test_add_replaces_across_scopes(harness: Harness) -> None:
    await harness.add("k", basis(0), scope(tenant="a"))
    await harness.add("k", basis(0), scope(tenant="b"))
    assert await harness.search(basis(0), scope(tenant="a")) == []
    assert [m.key for m in await harness.search(basis(0), scope(tenant="b"))] == ["k"]


async def test_delete(harness: Harness) -> None:
    await harness.add("a", basis(0))
    await harness.add("b", basis(0) + basis(2))
    assert await harness.index.delete(["a", "missing"]) == 1
    assert [m.key for m in await harness.search(basis(0), k=5)] == ["b"]
    assert await harness.index.delete([]) == 0
    assert await harness.index.count() == 1


async def test_zero_vector_never_matches(harness: Harness) -> None:
    await harness.add("zero", np.zeros(DIM))
    await harness.add("real", basis(0))
    assert [m.key for m in await harness.search(basis(0), k=5)] == ["real"]
    assert await harness.search(np.zeros(DIM), k=5) == []


async def test_ttl_expiry(harness: Harness) -> None:
    await harness.add("short", basis(0), ttl=0.3)
    await harness.add("long", basis(0) + basis(1) * 0.1, ttl=3600)
    await harness.add("forever", basis(0) + basis(1) * 0.2)
    assert [m.key for m in await harness.search(basis(0), k=5)] == ["short", "long", "forever"]
    await harness.advance(0.4)
    keys = [m.key for m in await harness.search(basis(0), k=5)]
    assert keys == ["long", "forever"]  # never returned once expired
    for _ in range(40):  # the count may lag until the server's expiry cycle (about 100 ms) runs
        if await harness.index.count() == 2:
            break
        await asyncio.sleep(0.05)
    assert await harness.index.count() == 2


async def test_count_and_drop(harness: Harness) -> None:
    assert await harness.index.count() == 0
    for i in range(5):
        await harness.add(f"k{i}", basis(i), scope(tenant=f"t{i % 2}"))
    assert await harness.index.count() == 5
    await harness.index.drop()
    assert await harness.index.count() == 0
    assert await harness.search(basis(0), scope(tenant="t0"), k=5) == []
    await harness.add("again", basis(0))  # usable after a drop
    assert [m.key for m in await harness.search(basis(0))] == ["again"]
