"""The Store protocol (bytes in, bytes out, TTL, scan, leases, counters) and `from_url`."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from llmemo.errors import ConfigError

Counters = Mapping[str, float]


@runtime_checkable
class Store(Protocol):
    """A key-value store with expiry. Every method raises StoreError (only) when the store fails.

    TTLs are seconds (float); None means no expiry. `get` with `refresh` sets a new TTL in the same
    round trip (Redis GETEX). `add` is SET NX PX: the single-flight lease. `heads` reads the first
    `size` bytes of each value (Redis GETRANGE), which is all invalidation needs.
    """

    url: str

    def get(self, key: str, refresh: float | None = None) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl: float | None) -> None: ...

    def add(self, key: str, value: bytes, ttl: float) -> bool: ...

    def delete(self, keys: Sequence[str]) -> int: ...

    def delete_if_equal(self, key: str, value: bytes) -> bool: ...

    def expire_if_equal(self, key: str, value: bytes, ttl: float) -> bool: ...

    def scan(self, pattern: str, count: int = 500) -> Iterator[list[str]]: ...

    def heads(self, keys: Sequence[str], size: int) -> list[bytes | None]: ...

    def incr(self, key: str, amounts: Counters) -> dict[str, float]: ...

    def counters(self, key: str) -> dict[str, float]: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class AsyncStore(Protocol):
    """The asyncio twin of Store: the same methods, awaited."""

    url: str

    async def get(self, key: str, refresh: float | None = None) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None) -> None: ...

    async def add(self, key: str, value: bytes, ttl: float) -> bool: ...

    async def delete(self, keys: Sequence[str]) -> int: ...

    async def delete_if_equal(self, key: str, value: bytes) -> bool: ...

    async def expire_if_equal(self, key: str, value: bytes, ttl: float) -> bool: ...

    def scan(self, pattern: str, count: int = 500) -> AsyncIterator[list[str]]: ...

    async def heads(self, keys: Sequence[str], size: int) -> list[bytes | None]: ...

    async def incr(self, key: str, amounts: Counters) -> dict[str, float]: ...

    async def counters(self, key: str) -> dict[str, float]: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def default_url() -> str:
    """`$LLMEMO_STORE`, else the embedded SQLite file in the user's cache directory (created)."""
    url = os.environ.get("LLMEMO_STORE")
    if url:
        return url
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llmemo"
    base.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{base / 'cache.db'}"


STORE_ORDER = (
    "--store, else $LLMEMO_STORE, else $REDIS_URL, else the SQLite file ~/.cache/llmemo/cache.db"
)


def store_url(url: str | None = None) -> str:
    """The store a command uses: `url`, else `$LLMEMO_STORE`, else `$REDIS_URL`, else the embedded
    SQLite file (`default_url`). Every `llmemo` command, `serve` included, resolves it here."""
    return url or os.environ.get("LLMEMO_STORE") or os.environ.get("REDIS_URL") or default_url()


def redact(url: str) -> str:
    """The URL with any password replaced by `***` (safe to log and to show)."""
    parts = urlsplit(url)
    # redis-py also reads `?password=` (the only way to give one in a unix:// URL).
    query = "&".join(
        "password=***" if item.split("=", 1)[0] == "password" else item
        for item in parts.query.split("&")
    )
    if parts.password is None and query == parts.query:
        return url
    netloc = parts.netloc
    if parts.password is not None:
        host = netloc.rpartition("@")[2]  # as written: keeps [IPv6] brackets and case
        netloc = f"{parts.username or ''}:***@{host}"
    redacted = f"{parts.scheme}://{netloc}{parts.path}"
    redacted += f"?{query}" if query else ""
    return redacted + (f"#{parts.fragment}" if parts.fragment else "")


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex matching exactly what Redis' glob matches: `*`, `?`, `[^a-z]`, `\\x`; braces are literal."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[":
            i, group = _glob_set(pattern, i + 1)
            out.append(group)
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _glob_set(pattern: str, i: int) -> tuple[int, str]:
    """Translate a `[...]` set starting after `[`; returns the index of its `]` and the regex."""
    n = len(pattern)
    negate = i < n and pattern[i] == "^"
    i += negate
    parts: list[str] = []
    while i < n and pattern[i] != "]":
        if pattern[i] == "\\" and i + 1 < n:
            i += 1
            parts.append(re.escape(pattern[i]))
        elif i + 2 < n and pattern[i + 1] == "-":
            low, high = sorted((pattern[i], pattern[i + 2]))  # Redis accepts reversed ranges
            parts.append(f"{re.escape(low)}-{re.escape(high)}")
            i += 2
        else:
            parts.append(re.escape(pattern[i]))
        i += 1
    if not parts:
        return i, "." if negate else "(?!)"
    return i, f"[{'^' if negate else ''}{''.join(parts)}]"


SyncFactory = Callable[[str], Store]
AsyncFactory = Callable[[str], AsyncStore]


def _memory(url: str) -> Store:
    from llmemo.stores.memory import MemoryStore

    return MemoryStore.from_url(url)


def _sqlite(url: str) -> Store:
    from llmemo.stores.sqlite import SQLiteStore

    return SQLiteStore.from_url(url)


def _redis(url: str) -> Store:
    from llmemo.stores.redis import RedisStore

    return RedisStore.from_url(url)


def _redis_cluster(url: str) -> Store:
    from llmemo.stores.redis_cluster import RedisClusterStore

    return RedisClusterStore.from_url(url)


def _async_memory(url: str) -> AsyncStore:
    from llmemo.stores.memory import AsyncMemoryStore

    return AsyncMemoryStore.from_url(url)


def _async_sqlite(url: str) -> AsyncStore:
    from llmemo.stores.sqlite import AsyncSQLiteStore

    return AsyncSQLiteStore.from_url(url)


def _async_redis(url: str) -> AsyncStore:
    from llmemo.stores.redis import AsyncRedisStore

    return AsyncRedisStore.from_url(url)


def _async_redis_cluster(url: str) -> AsyncStore:
    from llmemo.stores.redis_cluster import AsyncRedisClusterStore

    return AsyncRedisClusterStore.from_url(url)


def _upstash(url: str) -> Store:
    from llmemo.stores.upstash import UpstashStore

    return UpstashStore.from_url(url)


def _async_upstash(url: str) -> AsyncStore:
    from llmemo.stores.upstash import AsyncUpstashStore

    return AsyncUpstashStore.from_url(url)


# scheme -> factory. Later issues register more (redis+cluster, upstash) with `register_scheme`.
SYNC_SCHEMES: dict[str, SyncFactory] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "redis": _redis,
    "rediss": _redis,
    "unix": _redis,
    "redis+cluster": _redis_cluster,
    "rediss+cluster": _redis_cluster,
    "upstash": _upstash,
    "upstash+https": _upstash,
    "upstash+http": _upstash,
}
ASYNC_SCHEMES: dict[str, AsyncFactory] = {
    "memory": _async_memory,
    "sqlite": _async_sqlite,
    "redis": _async_redis,
    "rediss": _async_redis,
    "unix": _async_redis,
    "redis+cluster": _async_redis_cluster,
    "rediss+cluster": _async_redis_cluster,
    "upstash": _async_upstash,
    "upstash+https": _async_upstash,
    "upstash+http": _async_upstash,
}


def register_scheme(scheme: str, sync: SyncFactory, async_: AsyncFactory) -> None:
    """Teach `from_url` a new URL scheme."""
    SYNC_SCHEMES[scheme] = sync
    ASYNC_SCHEMES[scheme] = async_


def _scheme(url: str, table: Mapping[str, object]) -> str:
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(
            f"not a store URL: {url!r} (expected e.g. sqlite:///llmemo.db, redis://localhost:6379/0, memory://)"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme not in table:
        known = ", ".join(f"{s}://" for s in sorted(table))
        raise ConfigError(
            f"unknown store scheme {scheme + '://'!r} in {redact(url)!r}; known: {known}"
        )
    return scheme


def from_url(url: str) -> Store:
    """A Store chosen by the URL's scheme."""
    return SYNC_SCHEMES[_scheme(url, SYNC_SCHEMES)](url)


def async_from_url(url: str) -> AsyncStore:
    """An AsyncStore chosen by the URL's scheme."""
    return ASYNC_SCHEMES[_scheme(url, ASYNC_SCHEMES)](url)
