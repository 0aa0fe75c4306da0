"""The Store contract (tests/stores/test_contract.py, case for case) on a real Redis Cluster.

The cases are imported, so they are collected here too, and `built` is overridden for this module
only: the same cases then run on RedisClusterStore and AsyncRedisClusterStore. Their keys ("a",
"b", "stats", ...) fall in different slots, on different primaries, which is the point.
"""

from __future__ import annotations

import asyncio

import pytest

from llmemo.stores import AsyncRedisClusterStore, AsyncStore, RedisClusterStore
from tests.stores.conftest import Awaited, Backend
from tests.stores.test_contract import (
    test_add_is_set_if_absent,
    test_delete_counts_keys_that_existed,
    test_delete_if_equal_needs_the_right_token,
    test_delete_many_keys,
    test_expire_if_equal_needs_the_right_token,
    test_heads_reads_prefixes,
    test_implements_the_protocol,
    test_incr_and_counters,
    test_missing_key_is_none,
    test_ping,
    test_refresh_on_get_extends_ttl,
    test_round_trip_of_arbitrary_bytes,
    test_scan_matches_like_redis,
    test_scan_skips_expired_keys,
    test_scan_yields_every_key_once_in_batches,
    test_set_overwrites,
    test_ttl_expiry,
    test_ttl_none_means_no_expiry,
)

__all__ = [
    "test_add_is_set_if_absent",
    "test_delete_counts_keys_that_existed",
    "test_delete_if_equal_needs_the_right_token",
    "test_delete_many_keys",
    "test_expire_if_equal_needs_the_right_token",
    "test_heads_reads_prefixes",
    "test_implements_the_protocol",
    "test_incr_and_counters",
    "test_missing_key_is_none",
    "test_ping",
    "test_refresh_on_get_extends_ttl",
    "test_round_trip_of_arbitrary_bytes",
    "test_scan_matches_like_redis",
    "test_scan_skips_expired_keys",
    "test_scan_yields_every_key_once_in_batches",
    "test_set_overwrites",
    "test_ttl_expiry",
    "test_ttl_none_means_no_expiry",
]


@pytest.fixture(params=["sync", "async"], ids=["redis-cluster-sync", "redis-cluster-async"])
def built(request: pytest.FixtureRequest, redis_cluster_url: str) -> Backend:
    """Overrides conftest's `built` in this module: the cluster stores, in real time (0.1 s)."""
    face = request.param
    raw = (
        RedisClusterStore.from_url(redis_cluster_url)
        if face == "sync"
        else AsyncRedisClusterStore.from_url(redis_cluster_url)
    )
    store: AsyncStore = Awaited(raw) if face == "sync" else raw
    return Backend(f"redis-cluster-{face}", raw, store, 0.1, asyncio.sleep)
