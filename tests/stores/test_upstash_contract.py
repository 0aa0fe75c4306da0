"""The Store contract (tests/stores/test_contract.py, case for case) on Upstash's REST API.

The cases are imported, so they are collected here too, and `built` is overridden for this module
only: the same cases then run on UpstashStore and AsyncUpstashStore, through the REST gateway
fixture in front of a real redis-server, in real time (units of 0.1 s, as for Redis).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from devtools.redis_server import RedisServer
from devtools.upstash_gateway import UpstashGateway
from llmemo.stores import AsyncStore, AsyncUpstashStore, UpstashStore
from tests.stores import test_contract
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


@pytest.fixture(scope="module")
def gateway(redis_server: RedisServer) -> Iterator[UpstashGateway]:
    with UpstashGateway(redis_server.url) as gateway:
        yield gateway


@pytest.fixture(params=["sync", "async"], ids=["upstash-sync", "upstash-async"])
def built(request: pytest.FixtureRequest, gateway: UpstashGateway, redis_url: str) -> Backend:
    """Overrides conftest's `built` in this module: the Upstash stores, through the gateway."""
    face = request.param
    gateway.reset()
    raw = (
        UpstashStore.from_url(gateway.store_url)
        if face == "sync"
        else AsyncUpstashStore.from_url(gateway.store_url)
    )
    store: AsyncStore = Awaited(raw) if face == "sync" else raw
    return Backend(f"upstash-{face}", raw, store, 0.1, asyncio.sleep)


def test_every_contract_case_runs_here() -> None:
    cases = {name for name in vars(test_contract) if name.startswith("test_")}
    assert cases == set(__all__)
