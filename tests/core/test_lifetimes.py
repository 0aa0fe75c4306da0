"""Lifetimes and sizes the cache refuses or does not store, on a real Redis: non-finite and
oversized TTLs (refused before anything is called), `max_ttl`, and `max_entry_bytes`."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from llmemo import NO_EXPIRY, Cache, TtlPolicy
from llmemo.core.durations import seconds
from llmemo.core.policy import TTL_CEILING
from llmemo.errors import ConfigError
from tests.core.helpers import Upstream, answer, chat


def noise(size: int) -> str:
    """About `size` characters of text that does not compress much (base64 of hashes)."""
    digests = (hashlib.sha256(str(n).encode()).digest() for n in range(size // 44 + 1))
    return base64.b64encode(b"".join(digests)).decode()[:size]


@pytest.fixture
def make(redis_url: str) -> Iterator[Any]:
    made: list[Cache] = []

    def build(**options: Any) -> Cache:
        cache = Cache.from_url(redis_url, **options)
        made.append(cache)
        return cache

    yield build
    for cache in made:
        cache.close()


@pytest.mark.parametrize("value", ["inf", "Infinity", "-inf", "nan", "1e400", float("inf")])
def test_durations_must_be_finite(value: str | float) -> None:
    with pytest.raises(ConfigError, match="finite"):
        seconds(value)


@pytest.mark.parametrize("ttl", [1e308, "1e308", 11 * 365 * 86400])
def test_a_ttl_over_the_ceiling_is_refused_before_the_call(make: Any, ttl: Any) -> None:
    # before: the answer was paid for, then the store's millisecond TTL overflowed
    cache, upstream = make(), Upstream()
    with pytest.raises(ConfigError, match="over the maximum"):
        cache.compute(chat(), upstream, ttl=ttl)
    assert upstream.calls == 0


@pytest.mark.parametrize("ttl", ["inf", float("nan"), -5, "0"])
def test_a_ttl_that_is_not_a_positive_duration_is_refused_before_the_call(
    make: Any, ttl: Any
) -> None:
    cache, upstream = make(), Upstream()
    with pytest.raises(ConfigError):
        cache.compute(chat(), upstream, ttl=ttl)
    assert upstream.calls == 0


def test_max_ttl_bounds_every_lifetime(make: Any) -> None:
    cache, upstream = make(max_ttl="1h"), Upstream()
    with pytest.raises(ConfigError, match=r"3601 s is over the maximum of 3600 s \(max_ttl\)"):
        cache.compute(chat(), upstream, ttl=3601)
    with pytest.raises(ConfigError, match="NO_EXPIRY"):
        cache.compute(chat(), upstream, ttl=NO_EXPIRY)
    with pytest.raises(ConfigError, match="stale grace"):
        cache.compute(chat(), upstream, stale_grace="2h")
    assert upstream.calls == 0
    result = cache.compute(chat(), upstream, ttl="1h")
    assert result.stored and upstream.calls == 1
    hit = cache.lookup(chat())
    assert hit is not None and hit.ttl is not None and hit.ttl <= 3600
    tiered = cache.compute(chat("static?"), Upstream(), tags=("static",))  # a 7-day tier
    assert tiered.stored
    hit = cache.lookup(chat("static?"), tags=("static",))
    assert hit is not None and hit.ttl is not None and hit.ttl <= 3600


def test_the_default_ttl_and_grace_must_be_within_max_ttl() -> None:
    with pytest.raises(ConfigError, match="over the maximum"):
        TtlPolicy.build("2d", max_ttl="1d")
    with pytest.raises(ConfigError, match="NO_EXPIRY"):
        TtlPolicy.build(NO_EXPIRY, max_ttl="1d")
    with pytest.raises(ConfigError, match="max_ttl"):
        TtlPolicy.build(max_ttl=TTL_CEILING * 2)
    with pytest.raises(ConfigError, match="stale grace"):
        Cache.from_url("memory://", max_ttl="1d", stale_grace="2d")


def test_an_entry_over_max_entry_bytes_is_served_but_not_stored(make: Any) -> None:
    big = answer(noise(64 * 1024))  # about 48 KiB once compressed
    cache = make(max_entry_bytes=16 * 1024)
    result = cache.compute(chat(), Upstream(big))
    assert result.response == big and not result.stored and result.skipped == "too_large"
    assert cache.lookup(chat()) is None
    assert cache.compute(chat("small?"), Upstream()).stored
    cache.flush()
    assert cache.stats().skip_reasons == {"too_large": 1}


def test_an_answer_nested_past_the_encoding_is_served_but_not_stored(make: Any) -> None:
    # before: orjson's recursion limit raised out of the store step, after the upstream was paid
    nested: Any = "deep"
    for _ in range(300):
        nested = [nested]
    deep = {**answer("deep"), "metadata": nested}  # an upstream echoing a caller's field
    cache = make()
    result = cache.compute(chat(), Upstream(deep))
    assert result.response == deep and not result.stored and result.skipped == "unencodable"
    assert cache.lookup(chat()) is None
    cache.flush()
    assert cache.stats().skip_reasons == {"unencodable": 1}


def test_the_default_entry_limit_is_one_mebibyte(make: Any) -> None:
    cache = make()
    assert cache.max_entry_bytes == 1024 * 1024
    huge = answer(noise(2 * 1024 * 1024))  # about 1.5 MiB once compressed
    assert cache.compute(chat(), Upstream(huge)).skipped == "too_large"
    assert make(max_entry_bytes=None).compute(chat("other"), Upstream(huge)).stored
