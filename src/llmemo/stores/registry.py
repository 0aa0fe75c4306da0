"""The `{scheme: factory}` tables behind `from_url` and `async_from_url`."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from llmemo.errors import ConfigError
from llmemo.stores.protocol import AsyncStore, Store
from llmemo.stores.urls import redact

SyncFactory = Callable[[str], Store]
AsyncFactory = Callable[[str], AsyncStore]


def _memory(url: str) -> Store:
    from llmemo.stores.memory import MemoryStore

    return MemoryStore.from_url(url)


def _sqlite(url: str) -> Store:
    from llmemo.stores.sqlite import SQLiteStore

    return SQLiteStore.from_url(url)


def _redis(url: str) -> Store:
    from llmemo.stores._sync.redis import RedisStore

    return RedisStore.from_url(url)


def _redis_cluster(url: str) -> Store:
    from llmemo.stores._sync.redis_cluster import RedisClusterStore

    return RedisClusterStore.from_url(url)


def _async_memory(url: str) -> AsyncStore:
    from llmemo.stores.memory import AsyncMemoryStore

    return AsyncMemoryStore.from_url(url)


def _async_sqlite(url: str) -> AsyncStore:
    from llmemo.stores.sqlite import AsyncSQLiteStore

    return AsyncSQLiteStore.from_url(url)


def _async_redis(url: str) -> AsyncStore:
    from llmemo.stores._async.redis import AsyncRedisStore

    return AsyncRedisStore.from_url(url)


def _async_redis_cluster(url: str) -> AsyncStore:
    from llmemo.stores._async.redis_cluster import AsyncRedisClusterStore

    return AsyncRedisClusterStore.from_url(url)


def _upstash(url: str) -> Store:
    from llmemo.stores._sync.upstash import UpstashStore

    return UpstashStore.from_url(url)


def _async_upstash(url: str) -> AsyncStore:
    from llmemo.stores._async.upstash import AsyncUpstashStore

    return AsyncUpstashStore.from_url(url)


# scheme -> factory; `register_scheme` adds one.
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
