"""Encryption at rest through the cache, on real stores: what reaches the store is ciphertext,
keys rotate, and an entry that cannot be decrypted is a counted miss (the upstream is called)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis

from devtools.redis_server import RedisServer
from devtools.upstash_gateway import UpstashGateway
from llmemo import AsyncCache, Cache, ConfigError
from llmemo.core import entry as entries
from llmemo.core.crypto import new_key
from llmemo.stores.memory import AsyncMemoryStore, MemoryStore
from tests.core.helpers import Upstream, answer, chat

SECRETS = {name: new_key() for name in ("k1", "k2", "other")}
PROMPT = "My card is on file, I am Zoë Quintanilla-Verhoeven; what is the capital of France?"
ANSWER = "Paris, Zoë Quintanilla-Verhoeven; the capital has been Paris since 987."
LONG = ANSWER + " More history follows." * 60  # over 1 KiB: compressed, then encrypted


def keys(*ids: str) -> str:
    return ",".join(f"{i}:{SECRETS[i]}" for i in ids)


def secrets_in(data: bytes) -> list[str]:
    """The prompt or answer fragments found in `data` (none, when encrypted)."""
    words = ("Quintanilla", "Verhoeven", "capital of France", "since 987", "Paris")
    return [w for w in words if w.encode() in data or w.encode("utf-16-le") in data]


@pytest.fixture(scope="module")
def gateway(redis_server: RedisServer) -> Iterator[UpstashGateway]:
    with UpstashGateway(redis_server.url) as gateway:
        yield gateway


STORES = ["memory", "sqlite", "redis", "redis-cluster", "upstash"]


@pytest.fixture(params=STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL of each kind the Store contract covers."""
    kind = request.param
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'cache.db'}"
    if kind == "redis":
        return str(request.getfixturevalue("redis_url"))
    if kind == "redis-cluster":
        return str(request.getfixturevalue("redis_cluster_url"))
    gateway: UpstashGateway = request.getfixturevalue("gateway")
    request.getfixturevalue("redis_url")  # emptied
    gateway.reset()
    return str(gateway.store_url)


Make = Callable[..., AsyncCache]


@pytest_asyncio.fixture
async def make(url: str) -> AsyncIterator[Make]:
    """make(**options): a cache on `url`'s store (one store shared by the test's caches),
    closed after the test."""
    caches: list[AsyncCache] = []
    memory = AsyncMemoryStore(MemoryStore())

    def build(**options: Any) -> AsyncCache:
        cache = (
            AsyncCache(memory, **options)
            if url == "memory://"
            else AsyncCache.from_url(url, **options)
        )
        caches.append(cache)
        return cache

    yield build
    for cache in caches:
        await cache.close()


def raw_everywhere(url: str, key: str, value: bytes) -> bytes:
    """Every byte of the store's copy of `key`: the value, the Redis GET, the SQLite files."""
    found = value
    if url.startswith("redis://"):
        with redis.Redis.from_url(url) as client:
            got = client.get(key)
            assert isinstance(got, bytes)
            found += got
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        for file in path.parent.glob(path.name + "*"):  # the database, its WAL
            found += file.read_bytes()
    return found


@pytest.mark.asyncio
@pytest.mark.parametrize("text", [ANSWER, LONG], ids=["short", "compressed"])
async def test_round_trip_is_encrypted_at_rest(url: str, make: Make, text: str) -> None:
    cache = make(encryption=keys("k1"))
    upstream = Upstream(answer(text))
    first = await cache.compute(chat(PROMPT), upstream.acall)
    second = await cache.compute(chat(PROMPT), upstream.acall)
    assert (first.status, second.status, upstream.calls) == ("miss", "hit", 1)
    assert second.response == answer(text)
    assert second.hit is not None
    value = await cache.backend.get(second.hit.key)
    assert value is not None
    assert secrets_in(raw_everywhere(url, second.hit.key, value)) == []
    assert entries.decode_head(value).model == "gpt-4o-mini"  # the header stays readable


@pytest.mark.parametrize("where", ["sqlite", "redis"])
def test_sync_cache_round_trip(where: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = (
        f"sqlite:///{tmp_path / 'c.db'}"
        if where == "sqlite"
        else str(request.getfixturevalue("redis_url"))
    )
    with Cache.from_url(url, encryption=[f"k1:{SECRETS['k1']}"]) as cache:
        upstream = Upstream(answer(ANSWER))
        cache.compute(chat(PROMPT), upstream)
        hit = cache.lookup(chat(PROMPT))
        assert hit is not None and hit.response == answer(ANSWER)
        value = cache.backend.get(hit.key)
        assert value is not None
        assert secrets_in(raw_everywhere(url, hit.key, value)) == []


@pytest.mark.asyncio
async def test_rotation_old_key_reads_new_key_writes(url: str, make: Make) -> None:
    old = make(encryption=keys("k1"))
    rotated = make(encryption=keys("k2", "k1"))
    only_new = make(encryption=keys("k2"))
    assert await old.store(chat("first"), answer("one"))
    hit = await rotated.lookup(chat("first"))
    assert hit is not None and hit.response == answer("one")
    assert await rotated.store(chat("second"), answer("two"))
    second = await only_new.lookup(chat("second"))
    assert second is not None and second.response == answer("two")
    assert await only_new.lookup(chat("first")) is None  # sealed with k1, which it lacks
    assert only_new.local_stats().undecryptable == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("reader", ["wrong-key", "no-keys"])
async def test_wrong_or_missing_key_is_a_counted_miss(
    url: str, make: Make, reader: str, caplog: pytest.LogCaptureFixture
) -> None:
    writer = make(encryption=keys("k1"))
    other = make(encryption=f"k1:{SECRETS['other']}" if reader == "wrong-key" else None)
    await writer.store(chat(PROMPT), answer(ANSWER))
    upstream = Upstream(answer("fresh"))
    with caplog.at_level(logging.WARNING, logger="llmemo.cache"):
        result = await other.compute(chat(PROMPT), upstream.acall)
    assert (result.status, result.response, upstream.calls) == ("miss", answer("fresh"), 1)
    assert other.local_stats().undecryptable == 1
    assert other.local_stats().corrupt == 0
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "decrypt" in logged
    assert all(secret not in logged for secret in SECRETS.values())
    again = await other.compute(chat(PROMPT), upstream.acall)  # its own answer replaced it
    assert (again.status, again.response, upstream.calls) == ("hit", answer("fresh"), 1)


@pytest.mark.asyncio
async def test_tampered_ciphertext_is_a_counted_miss(url: str, make: Make) -> None:
    cache = make(encryption=keys("k1"))
    await cache.store(chat(), answer())
    hit = await cache.lookup(chat())
    assert hit is not None
    value = bytearray(await cache.backend.get(hit.key) or b"")
    value[-5] ^= 0x40
    await cache.backend.set(hit.key, bytes(value), None)
    upstream = Upstream(answer("fresh"))
    result = await cache.compute(chat(), upstream.acall)
    assert (result.status, upstream.calls) == ("miss", 1)
    assert cache.local_stats().undecryptable == 1


@pytest.mark.asyncio
async def test_value_moved_to_another_key_is_a_miss(url: str, make: Make) -> None:
    cache = make(encryption=keys("k1"))
    await cache.store(chat("question A"), answer("answer A"))
    await cache.store(chat("question B"), answer("answer B"))
    a, b = await cache.lookup(chat("question A")), await cache.lookup(chat("question B"))
    assert a is not None and b is not None
    await cache.backend.set(b.key, await cache.backend.get(a.key) or b"", None)
    assert await cache.lookup(chat("question B")) is None  # never answer A for B
    assert cache.local_stats().undecryptable == 1


@pytest.mark.asyncio
async def test_plaintext_entries_are_served_unless_encryption_is_required(
    url: str, make: Make
) -> None:
    plain = make()
    migrating = make(encryption=keys("k1"))
    strict = make(encryption=keys("k1"), encryption_required=True)
    await plain.store(chat(), answer())
    hit = await migrating.lookup(chat())
    assert hit is not None and hit.response == answer()
    assert await strict.lookup(chat()) is None
    assert strict.local_stats().undecryptable == 1


def test_encryption_required_without_keys_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="encryption_required"):
        Cache.from_url("memory://", encryption_required=True)


def test_bad_key_is_a_config_error_before_any_call() -> None:
    with pytest.raises(ConfigError, match="'k1' is 3 bytes"):
        Cache.from_url("memory://", encryption="k1:AAAA")


def test_near_cache_keeps_ciphertext(tmp_path: Path) -> None:
    with Cache.from_url(f"sqlite:///{tmp_path / 'c.db'}", encryption=keys("k1"), near=5) as cache:
        cache.store(chat(PROMPT), answer(ANSWER))
        assert cache.lookup(chat(PROMPT)) is not None
        assert cache.near is not None
        kept: list[Any] = list(cache.near._entries.values())
        assert kept and all(secrets_in(item[0]) == [] for item in kept)
