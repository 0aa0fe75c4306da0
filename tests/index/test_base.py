"""The pure parts of llmemo.index.base: one similarity scale, scope validation, tag encoding."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmemo.errors import ConfigError
from llmemo.index import LocalIndex
from llmemo.index.ann import brute_similarities, graph_similarity
from llmemo.index.base import (
    NO_TENANT,
    IndexItem,
    IndexScope,
    VectorIndex,
    check_similarity,
    cosine_distance_from_similarity,
    similarity_from_cosine_distance,
    tag_token,
    unit,
)
from llmemo.index.redisearch_base import parse_search
from llmemo.stores.memory import MemoryStore
from tests.index.conftest import scope


@pytest.mark.parametrize(
    ("distance", "similarity"),
    [(0.0, 1.0), (1.0, 0.0), (2.0, 0.0), (0.25, 0.75), (-1e-7, 1.0), (math.nan, 0.0)],
)
def test_one_scale(distance: float, similarity: float) -> None:
    assert similarity_from_cosine_distance(distance) == similarity


@given(st.floats(0.0, 1.0))
def test_distance_and_similarity_are_inverse(similarity: float) -> None:
    distance = cosine_distance_from_similarity(similarity)
    assert similarity_from_cosine_distance(distance) == pytest.approx(similarity)


def test_every_backend_uses_the_same_scale() -> None:
    # RediSearch reports 1 - cos; usearch (ip on unit rows) too; the numpy path computes cos.
    assert parse_search([1, b"i:k", [b"dist", b"0.2"]], "i", 0.0)[0].similarity == pytest.approx(
        0.8
    )
    assert graph_similarity(0.2) == pytest.approx(0.8)
    rows = np.array([[1, 0], [0.8, 0.6], [-1, 0]], dtype=np.float32)
    assert brute_similarities(rows, np.array([1, 0], dtype=np.float32)).tolist() == pytest.approx(
        [1.0, 0.8, 0.0]
    )


@pytest.mark.parametrize("bad", [-0.1, 1.01, math.nan, "0.5", True, None])
def test_similarity_out_of_range_is_a_config_error(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        check_similarity(bad)  # type: ignore[arg-type]


@given(st.text(), st.text())
def test_tag_token_is_injective_and_safe(a: str, b: str) -> None:
    assert (tag_token(a) == tag_token(b)) == (a == b)
    assert all(c.isascii() and (c.isalnum() or c in "_.%-~") for c in tag_token(a))
    assert tag_token(a) != NO_TENANT


def test_no_tenant_token_is_not_any_tenant() -> None:
    assert tag_token(None) == NO_TENANT
    assert tag_token("~") != NO_TENANT
    assert scope(tenant=None).digest() != scope(tenant="~").digest()


@pytest.mark.parametrize(
    "bad",
    [
        {"namespace": "has space"},
        {"namespace": ""},
        {"version": -1},
        {"version": True},
        {"version": "1"},
        {"tenant": ""},
        {"fingerprint": ""},
        {"model": ""},
        {"model": None},
    ],
)
def test_scope_validation(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        scope(**bad)


def test_scope_is_frozen_and_hashable() -> None:
    assert scope() == scope()
    assert len({scope(), scope(), scope(tenant="x")}) == 2
    with pytest.raises(AttributeError):
        scope().tenant = "x"  # type: ignore[misc]
    assert isinstance(scope(), IndexScope)


def test_unit_vectors() -> None:
    assert unit([3.0, 4.0], 2).tolist() == pytest.approx([0.6, 0.8])
    assert unit([[3.0, 4.0]], 2).dtype == np.float32
    assert not unit([0.0, 0.0], 2).any()
    assert not unit([math.inf, 1.0], 2).any()
    with pytest.raises(ConfigError):
        unit([1.0, 2.0, 3.0], 2)


def test_item_validation() -> None:
    with pytest.raises(ConfigError):
        IndexItem("", np.ones(2, dtype=np.float32), scope())
    with pytest.raises(ConfigError):
        IndexItem("k", np.ones(2, dtype=np.float32), scope(), ttl=0)


def test_local_index_satisfies_the_protocol() -> None:
    assert isinstance(LocalIndex(MemoryStore(), 4), VectorIndex)
