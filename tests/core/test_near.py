"""The near cache: recent entries kept in process, on a real Redis, with its staleness bound."""

from __future__ import annotations

import pytest

from devtools.redis_server import RedisServer
from llmemo import AsyncCache, Cache
from llmemo.core.near import NearCache, near_cache
from llmemo.errors import ConfigError
from llmemo.stores import RedisStore
from tests.core.helpers import Clock, CountingStore, Upstream, answer, chat


def test_values_live_for_the_shorter_of_ttl_and_their_own_lifetime() -> None:
    mono = Clock()
    near = NearCache(ttl=0.2, clock=mono)
    near.put("a", b"A")
    near.put("b", b"B", lifetime=0.05)
    near.put("gone", b"G", lifetime=0.0)  # expired or stale: not kept
    near.put("none", b"N", lifetime=None)
    assert (near.get("a"), near.get("b"), near.get("gone"), near.get("none")) == (
        b"A",
        b"B",
        None,
        b"N",
    )
    mono.advance(0.1)
    assert (near.get("a"), near.get("b")) == (b"A", None)
    mono.advance(0.15)
    assert near.get("a") is None
    assert len(near) == 1 and near.size == 1  # "none" is left until read or pushed out


def test_bytes_are_bounded_oldest_first_and_one_value_never_takes_it_all() -> None:
    near = NearCache(ttl=60, max_bytes=16 * 1024)
    for i in range(20):
        near.put(f"k{i}", bytes(1000))
    assert near.size <= 16 * 1024
    assert near.get("k0") is None and near.get("k19") == bytes(1000)
    near.put("k19", bytes(10))  # replacing a value counts its new size only
    assert near.size == 1000 * (len(near) - 1) + 10
    near.put("huge", bytes(2000))  # over max_bytes / 16
    assert near.get("huge") is None
    near.discard("k19")
    assert near.get("k19") is None
    near.clear()
    assert len(near) == 0 and near.size == 0


def test_options() -> None:
    assert near_cache(None) is None and near_cache(0) is None and near_cache("0s") is None
    built = near_cache("2s")
    assert built is not None and built.ttl == 2.0
    given = NearCache(ttl=1)
    assert near_cache(given) is given
    with pytest.raises(ConfigError, match="positive"):
        NearCache(ttl=-1)
    with pytest.raises(ConfigError, match="max_bytes"):
        NearCache(ttl=1, max_bytes=10)
    assert Cache.from_url("memory://").near is None  # off unless asked for


def test_a_hot_entry_costs_one_store_read_per_ttl(redis_url: str) -> None:
    store = CountingStore(RedisStore.from_url(redis_url))
    mono = Clock()
    cache = Cache(store, near=0.3, monotonic=mono)  # type: ignore[arg-type]
    upstream = Upstream()
    assert cache.compute(chat(), upstream).status == "miss"
    store.ops.clear()
    results = [cache.compute(chat(), upstream) for _ in range(50)]
    assert {r.status for r in results} == {"hit"}
    assert all(r.response == answer() for r in results)
    assert store.ops["get"] == 0  # the miss's own store put it in the near cache
    mono.advance(0.35)
    assert cache.compute(chat(), upstream).status == "hit"
    assert store.ops["get"] == 1  # expired from the near cache: read from Redis again
    assert upstream.calls == 1
    # each hit is decoded afresh: callers never share a response object
    first, second = (cache.compute(chat(), upstream).response for _ in range(2))
    assert first == second and first is not second
    cache.close()


def test_changes_made_here_are_seen_at_once_and_elsewhere_within_the_ttl(redis_url: str) -> None:
    mono = Clock()
    here = Cache.from_url(redis_url, near=0.4, monotonic=mono)
    elsewhere = Cache.from_url(redis_url)  # another process's cache, without a near cache
    upstream = Upstream()
    here.compute(chat(), upstream)
    assert here.lookup(chat()) is not None
    here.delete(chat())
    assert here.lookup(chat()) is None  # its own delete: gone from the near cache too

    here.compute(chat(), upstream)
    here.invalidate()
    assert here.lookup(chat()) is None  # its own invalidation empties the near cache

    here.compute(chat(), upstream)
    assert elsewhere.delete(chat())
    assert here.lookup(chat()) is not None  # another process's delete: not seen yet ...
    mono.advance(0.45)
    assert here.lookup(chat()) is None  # ... until the near copy's time is up
    here.close()
    elsewhere.close()


def test_a_stale_entry_is_never_kept(redis_url: str) -> None:
    now = [1000.0]
    cache = Cache.from_url(redis_url, near=60, ttl=10, stale_grace=100, clock=lambda: now[0])
    upstream = Upstream()
    cache.compute(chat(), upstream)
    assert cache.near is not None and len(cache.near) == 1
    now[0] += 20  # past the TTL, within the grace: served stale while it is refreshed
    cache.near.clear()
    hit = cache.lookup(chat())
    assert hit is not None and hit.stale
    assert len(cache.near) == 0
    cache.close()


def test_the_near_cache_answers_through_a_short_store_outage() -> None:
    own = RedisServer().start()
    try:
        cache = Cache.from_url(own.url, near=30)
        upstream = Upstream()
        cache.compute(chat(), upstream)
        own.stop()
        result = cache.compute(chat(), upstream)
        assert (result.status, upstream.calls) == ("hit", 1)
    finally:
        own.stop()
    cache.close()


@pytest.mark.asyncio
async def test_async_twin(redis_url: str) -> None:
    cache = AsyncCache.from_url(redis_url, near=0.5)
    upstream = Upstream()
    assert (await cache.compute(chat(), upstream.acall)).status == "miss"
    assert cache.near is not None and len(cache.near) == 1
    assert (await cache.compute(chat(), upstream.acall)).status == "hit"
    await cache.delete(chat())
    assert len(cache.near) == 0
    await cache.close()
