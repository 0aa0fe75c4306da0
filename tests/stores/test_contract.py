"""The Store contract: the same cases for every store, sync and async (see conftest.Backend)."""

from __future__ import annotations

import pytest

from llmemo.stores import AsyncStore, Store
from tests.stores.conftest import Backend


async def collect(backend: Backend, pattern: str, count: int = 500) -> list[list[str]]:
    return [batch async for batch in backend.store.scan(pattern, count)]


async def found(backend: Backend, pattern: str) -> set[str]:
    return {key for batch in await collect(backend, pattern) for key in batch}


@pytest.mark.asyncio
async def test_implements_the_protocol(backend: Backend) -> None:
    protocol = Store if backend.name.endswith("-sync") else AsyncStore
    assert isinstance(backend.raw, protocol)
    assert isinstance(backend.store.url, str)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "value",
    [b"", b"x", b"\x00\xff\xfe\x80 not utf-8", bytes(range(256)), "é {ü}".encode(), b"z" * 300_000],
    ids=["empty", "one", "non-utf8", "all-bytes", "utf8", "300k"],
)
async def test_round_trip_of_arbitrary_bytes(backend: Backend, value: bytes) -> None:
    await backend.store.set("llm:{ns}:k", value, None)
    got = await backend.store.get("llm:{ns}:k")
    assert type(got) is bytes
    assert got == value


@pytest.mark.asyncio
async def test_missing_key_is_none(backend: Backend) -> None:
    assert await backend.store.get("nope") is None
    assert await backend.store.get("nope", refresh=10) is None


@pytest.mark.asyncio
async def test_set_overwrites(backend: Backend) -> None:
    await backend.store.set("k", b"one", None)
    await backend.store.set("k", b"two", 10)
    assert await backend.store.get("k") == b"two"


@pytest.mark.asyncio
async def test_ttl_expiry(backend: Backend) -> None:
    u = backend.unit
    await backend.store.set("k", b"v", 3 * u)
    await backend.wait(1)
    assert await backend.store.get("k") == b"v"
    await backend.wait(3)
    assert await backend.store.get("k") is None


@pytest.mark.asyncio
async def test_refresh_on_get_extends_ttl(backend: Backend) -> None:
    u = backend.unit
    await backend.store.set("k", b"v", 3 * u)
    await backend.wait(1)
    assert await backend.store.get("k", refresh=6 * u) == b"v"
    await backend.wait(4)  # past the first TTL, inside the refreshed one
    assert await backend.store.get("k") == b"v"
    await backend.wait(4)
    assert await backend.store.get("k") is None


@pytest.mark.asyncio
async def test_ttl_none_means_no_expiry(backend: Backend) -> None:
    u = backend.unit
    await backend.store.set("k", b"v", 2 * u)
    await backend.store.set("k", b"w", None)  # an overwrite without TTL drops the old TTL
    await backend.store.set("plain", b"p", None)
    await backend.wait(4)
    assert await backend.store.get("k") == b"w"
    assert await backend.store.get("plain") == b"p"


@pytest.mark.asyncio
async def test_add_is_set_if_absent(backend: Backend) -> None:
    u = backend.unit
    assert await backend.store.add("lock", b"a", 2 * u) is True
    assert await backend.store.add("lock", b"b", 2 * u) is False
    assert await backend.store.get("lock") == b"a"
    await backend.wait(3)
    assert await backend.store.add("lock", b"c", 2 * u) is True  # the old lease expired
    assert await backend.store.get("lock") == b"c"
    await backend.store.set("kept", b"x", None)
    assert await backend.store.add("kept", b"y", 2 * u) is False
    await backend.wait(3)
    assert await backend.store.get("lock") is None  # add set a TTL
    assert await backend.store.get("kept") == b"x"


@pytest.mark.asyncio
async def test_delete_counts_keys_that_existed(backend: Backend) -> None:
    u = backend.unit
    await backend.store.set("a", b"1", None)
    await backend.store.set("b", b"2", 100)
    await backend.store.set("gone", b"3", u)
    await backend.store.incr("stats", {"hits": 1})
    await backend.wait(2)
    assert await backend.store.delete(["a", "b", "missing", "a", "gone", "stats"]) == 3
    assert await backend.store.get("a") is None
    assert await backend.store.get("b") is None
    assert await backend.store.counters("stats") == {}
    assert await backend.store.delete([]) == 0
    assert await backend.store.delete(["a"]) == 0


@pytest.mark.asyncio
async def test_delete_many_keys(backend: Backend) -> None:
    keys = [f"many:{i}" for i in range(1200)]
    for key in keys:
        await backend.store.set(key, b"v", None)
    assert await backend.store.delete([*keys, "many:0"]) == 1200
    assert await found(backend, "many:*") == set()


@pytest.mark.asyncio
async def test_delete_if_equal_needs_the_right_token(backend: Backend) -> None:
    u = backend.unit
    assert await backend.store.delete_if_equal("lock", b"t1") is False
    await backend.store.add("lock", b"t1", 10 * u)
    assert await backend.store.delete_if_equal("lock", b"t2") is False
    assert await backend.store.get("lock") == b"t1"
    assert await backend.store.delete_if_equal("lock", b"t1") is True
    assert await backend.store.get("lock") is None
    assert await backend.store.delete_if_equal("lock", b"t1") is False
    await backend.store.set("lock", b"t3", u)
    await backend.wait(2)
    assert await backend.store.delete_if_equal("lock", b"t3") is False  # expired


@pytest.mark.asyncio
async def test_expire_if_equal_needs_the_right_token(backend: Backend) -> None:
    u = backend.unit
    assert await backend.store.expire_if_equal("lock", b"t1", 5 * u) is False
    await backend.store.add("lock", b"t1", 2 * u)
    assert await backend.store.expire_if_equal("lock", b"t2", 10 * u) is False
    assert await backend.store.expire_if_equal("lock", b"t1", 10 * u) is True
    await backend.wait(4)  # past the first TTL
    assert await backend.store.get("lock") == b"t1"
    await backend.store.set("short", b"s", u)
    await backend.wait(2)
    assert await backend.store.expire_if_equal("short", b"s", 10 * u) is False
    assert await backend.store.get("short") is None


KEYS = [
    "llm:{app}:1:x:aa",
    "llm:{app}:1:x:ab",
    "llm:{app}:1:x:b1",
    "llm:{app}:1:s:aa",
    "llm:{app}:2:x:aa",
    "llm:{other}:1:x:aa",
    "llm:{app}:1:x:a*",
    "llm:{app}:1:x:é",
    "other",
]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*", KEYS),
        ("llm:{app}:1:*", [k for k in KEYS if k.startswith("llm:{app}:1:")]),
        ("llm:{app}:?:x:aa", ["llm:{app}:1:x:aa", "llm:{app}:2:x:aa"]),
        ("llm:{*}:1:x:aa", ["llm:{app}:1:x:aa", "llm:{other}:1:x:aa"]),
        ("llm:{app}:1:x:a[ab]", ["llm:{app}:1:x:aa", "llm:{app}:1:x:ab"]),
        ("llm:{app}:1:x:a[^a]", ["llm:{app}:1:x:ab", "llm:{app}:1:x:a*"]),
        (
            "llm:{app}:1:x:[a-b]?",
            ["llm:{app}:1:x:aa", "llm:{app}:1:x:ab", "llm:{app}:1:x:b1", "llm:{app}:1:x:a*"],
        ),
        ("llm:{app}:1:x:a\\*", ["llm:{app}:1:x:a*"]),
        ("llm:{app}:1:x:é", ["llm:{app}:1:x:é"]),
        ("llm:{app}:1:x:aa", ["llm:{app}:1:x:aa"]),
        ("llm:{app}", []),
        ("nothing:*", []),
    ],
)
async def test_scan_matches_like_redis(backend: Backend, pattern: str, expected: list[str]) -> None:
    for key in KEYS:
        await backend.store.set(key, b"v", None)
    assert await found(backend, pattern) == set(expected)


@pytest.mark.asyncio
async def test_scan_yields_every_key_once_in_batches(backend: Backend) -> None:
    keys = {f"llm:{{app}}:1:x:{i:04d}" for i in range(1200)}
    for key in sorted(keys):
        await backend.store.set(key, b"v", None)
    for i in range(50):
        await backend.store.set(f"llm:{{app}}:1:s:{i}", b"v", None)
    batches = await collect(backend, "llm:{app}:1:x:*", count=100)
    seen = [key for batch in batches for key in batch]
    assert len(seen) == len(set(seen)) == 1200
    assert set(seen) == keys
    assert len(batches) > 1
    assert all(batches)


@pytest.mark.asyncio
async def test_scan_skips_expired_keys(backend: Backend) -> None:
    await backend.store.set("t:old", b"v", backend.unit)
    await backend.store.set("t:new", b"v", None)
    await backend.wait(2)
    assert await found(backend, "t:*") == {"t:new"}


@pytest.mark.asyncio
async def test_heads_reads_prefixes(backend: Backend) -> None:
    await backend.store.set("a", b"hello world", None)
    await backend.store.set("b", b"", None)
    await backend.store.set("c", b"\xff\x00\x01", None)
    await backend.store.set("old", b"expired", backend.unit)
    await backend.store.incr("stats", {"hits": 1})
    await backend.wait(2)
    assert await backend.store.heads(["a", "b", "missing", "c", "a", "old", "stats"], 5) == [
        b"hello",
        b"",
        None,
        b"\xff\x00\x01",
        b"hello",
        None,
        None,
    ]
    assert await backend.store.heads(["a", "b", "missing"], 0) == [b"", b"", None]
    assert await backend.store.heads([], 5) == []


@pytest.mark.asyncio
async def test_incr_and_counters(backend: Backend) -> None:
    assert await backend.store.counters("stats") == {}
    assert await backend.store.incr("stats", {"hits": 1, "cost": 0.1}) == {"hits": 1, "cost": 0.1}
    got = await backend.store.incr("stats", {"hits": 2, "cost": 0.2, "tokens": 1500})
    assert got == {"hits": 3, "cost": pytest.approx(0.3), "tokens": 1500}
    assert await backend.store.incr("stats", {"hits": -1}) == {"hits": 2}
    assert await backend.store.incr("stats", {}) == {}
    counters = await backend.store.counters("stats")
    assert counters == {"hits": 2, "cost": pytest.approx(0.3), "tokens": 1500}
    assert await backend.store.counters("other") == {}


@pytest.mark.asyncio
async def test_ping(backend: Backend) -> None:
    assert await backend.store.ping() is None
