"""The stores package: the scheme table, `redact`, and the Redis glob every store's `scan` follows."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from llmemo.errors import ConfigError
from llmemo.stores import AsyncRedisStore, RedisStore, async_from_url, from_url, redact
from llmemo.stores.glob import glob_regex
from llmemo.stores.memory import AsyncMemoryStore, MemoryStore
from llmemo.stores.sqlite import AsyncSQLiteStore, SQLiteStore

OURS = ["memory://", "sqlite://", "redis://", "rediss://", "unix://"]


@pytest.mark.parametrize(
    ("url", "sync", "async_"),
    [
        ("memory://", MemoryStore, AsyncMemoryStore),
        ("sqlite:///{tmp}/a.db", SQLiteStore, AsyncSQLiteStore),
        ("SQLite:///{tmp}/b.db", SQLiteStore, AsyncSQLiteStore),
        ("redis://localhost:6379/0", RedisStore, AsyncRedisStore),
        ("rediss://localhost:6380/0", RedisStore, AsyncRedisStore),
        ("unix:///tmp/redis.sock?db=2", RedisStore, AsyncRedisStore),
    ],
)
@pytest.mark.asyncio
async def test_from_url_picks_the_class_by_scheme(
    tmp_path: Path, url: str, sync: type, async_: type
) -> None:
    url = url.format(tmp=tmp_path)
    store = from_url(url)
    assert type(store) is sync
    store.close()
    astore = async_from_url(url)
    assert type(astore) is async_
    await astore.close()


@pytest.mark.parametrize("pick", [from_url, async_from_url])
def test_unknown_scheme_lists_the_known_ones(pick: object) -> None:
    with pytest.raises(ConfigError, match="unknown store scheme 'postgres://'") as caught:
        pick("postgres://user:hunter22@db/cache")  # type: ignore[operator]
    message = str(caught.value)
    assert all(scheme in message for scheme in OURS)
    assert "hunter22" not in message


@pytest.mark.parametrize("url", ["", "cache.db", "localhost:6379"])
def test_not_a_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="not a store URL"):
        from_url(url)


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
        ("redis://app:p%40ss@h/0?socket_timeout=1", "redis://app:***@h/0?socket_timeout=1"),
        ("rediss://u:pw@[::1]:6380/2", "rediss://u:***@[::1]:6380/2"),
        ("unix:///tmp/r.sock?db=0&password=pw", "unix:///tmp/r.sock?db=0&password=***"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("redis://user@h/0", "redis://user@h/0"),
        ("sqlite:////abs/cache.db", "sqlite:////abs/cache.db"),
    ],
)
def test_redact(url: str, safe: str) -> None:
    assert redact(url) == safe


GLOB_CASES = [
    ("llm:{ns}:*", ["llm:{ns}:", "llm:{ns}:x:1"], ["llm:{nt}:x", "llm:{ns}"]),
    ("a?c", ["abc", "a{c"], ["ac", "abbc"]),
    ("a[bc]d", ["abd", "acd"], ["aed"]),
    ("a[^bc]d", ["aed", "a:d"], ["abd", "acd"]),
    ("a[z-x]d", ["ayd"], ["awd"]),  # Redis accepts a reversed range
    ("a[\\]]d", ["a]d"], ["a\\d"]),
    ("a\\*", ["a*"], ["ab"]),
    ("a\\", ["a\\"], ["a"]),
    ("a[]b", [], ["ab", "a]b"]),
    ("x*", ["x\ny"], []),
    ("*.json", ["a.json"], ["ajson"]),
]


@pytest.mark.parametrize(("pattern", "matches", "misses"), GLOB_CASES)
def test_glob_regex_follows_redis(pattern: str, matches: list[str], misses: list[str]) -> None:
    regex = glob_regex(pattern)
    assert [key for key in matches if regex.fullmatch(key)] == matches
    assert [key for key in misses if regex.fullmatch(key)] == []


def test_glob_regex_agrees_with_a_real_redis(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        for pattern, matches, misses in GLOB_CASES:
            client.flushdb()
            for key in matches + misses:
                client.set(key, b"v")
            by_redis = {key.decode() for key in client.scan_iter(match=pattern)}
            regex = glob_regex(pattern)
            assert by_redis == {key for key in matches + misses if regex.fullmatch(key)}, pattern
