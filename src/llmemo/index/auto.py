"""`open_index`: RediSearch when the store's Redis server has the search module, else LocalIndex.

The server is asked, never guessed from a version string or URL: `FT._LIST` answers on Redis
Stack, Redis 8 and managed servers with search; "unknown command" means no module. If an ACL
forbids FT._LIST, `MODULE LIST` is asked instead. A Redis Cluster client always gets LocalIndex:
RediSearch on an open-source cluster searches one shard only.
"""

from __future__ import annotations

from typing import Any, Literal

from llmemo.errors import ConfigError
from llmemo.index.base import AsyncVectorIndex, Dtype, VectorIndex
from llmemo.stores.base import AsyncStore, Store

Kind = Literal["auto", "redisearch", "local"]
_SEARCH_MODULES = frozenset({"search", "ft", "searchlight"})


def _standalone_client(store: object, asyncio: bool) -> Any | None:
    """The store's redis-py client when it talks to one Redis server (not a cluster), else None."""
    client = getattr(store, "client", None)
    if client is None:
        return None
    try:
        import redis
        import redis.asyncio
    except ImportError:
        return None
    wanted = redis.asyncio.Redis if asyncio else redis.Redis
    return client if isinstance(client, wanted) else None


def _unknown_command(exc: BaseException) -> bool:
    return "unknown command" in str(exc).lower()


def modules_have_search(reply: Any) -> bool:
    """Whether a MODULE LIST reply (RESP2 lists or RESP3 maps) names the search module."""
    names = set()
    for module in reply or []:
        fields = (
            module
            if isinstance(module, dict)
            else dict(zip(module[::2], module[1::2], strict=False))
        )
        for key, value in fields.items():
            if (key.decode() if isinstance(key, bytes) else key) == "name":
                names.add((value.decode() if isinstance(value, bytes) else str(value)).lower())
    return bool(names & _SEARCH_MODULES)


def has_search(client: Any) -> bool:
    """Ask the server (sync redis-py client) whether it has RediSearch."""
    import redis

    try:
        client.execute_command("FT._LIST")
        return True
    except redis.ResponseError as exc:
        if _unknown_command(exc):
            return False
    try:
        return modules_have_search(client.execute_command("MODULE", "LIST"))
    except redis.ResponseError as exc:
        raise _undecided(exc) from exc


async def async_has_search(client: Any) -> bool:
    """Ask the server (redis.asyncio client) whether it has RediSearch."""
    import redis

    try:
        await client.execute_command("FT._LIST")
        return True
    except redis.ResponseError as exc:
        if _unknown_command(exc):
            return False
    try:
        return modules_have_search(await client.execute_command("MODULE", "LIST"))
    except redis.ResponseError as exc:
        raise _undecided(exc) from exc


def _undecided(exc: BaseException) -> ConfigError:
    return ConfigError(
        f"cannot tell whether the Redis server has the search module ({exc}): "
        "choose with kind='redisearch' or kind='local'"
    )


def _check_kind(kind: str) -> None:
    if kind not in ("auto", "redisearch", "local"):
        raise ConfigError(f"index kind must be 'auto', 'redisearch' or 'local', got {kind!r}")


def open_index(
    store: Store,
    dim: int,
    *,
    kind: Kind = "auto",
    prefix: str = "llmemo",
    dtype: Dtype = "float16",
    **local_options: Any,
) -> VectorIndex:
    """The VectorIndex for `store`; `local_options` go to LocalIndex (log, poll_interval, ...)."""
    _check_kind(kind)
    client = _standalone_client(store, asyncio=False)
    if kind != "local" and client is not None and (kind == "redisearch" or has_search(client)):
        from llmemo.index.redisearch import RediSearchIndex

        return RediSearchIndex(client, dim, prefix=prefix, dtype=dtype)
    if kind == "redisearch":
        raise ConfigError(f"kind='redisearch' needs a standalone Redis store, not {store.url!r}")
    from llmemo.index.local import LocalIndex

    return LocalIndex(store, dim, prefix=prefix, dtype=dtype, **local_options)


async def open_async_index(
    store: AsyncStore,
    dim: int,
    *,
    kind: Kind = "auto",
    prefix: str = "llmemo",
    dtype: Dtype = "float16",
    **local_options: Any,
) -> AsyncVectorIndex:
    """The AsyncVectorIndex for `store` (asks the server, hence awaited)."""
    _check_kind(kind)
    client = _standalone_client(store, asyncio=True)
    if (
        kind != "local"
        and client is not None
        and (kind == "redisearch" or await async_has_search(client))
    ):
        from llmemo.index.redisearch import AsyncRediSearchIndex

        return AsyncRediSearchIndex(client, dim, prefix=prefix, dtype=dtype)
    if kind == "redisearch":
        raise ConfigError(f"kind='redisearch' needs a standalone Redis store, not {store.url!r}")
    from llmemo.index.local import AsyncLocalIndex

    return AsyncLocalIndex(store, dim, prefix=prefix, dtype=dtype, **local_options)
