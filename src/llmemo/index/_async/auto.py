"""`open_index`: RediSearch when the store's Redis server has the search module, else LocalIndex.

The server is asked, never guessed from a version string or URL: `FT._LIST` answers on Redis
Stack, Redis 8 and managed servers with search; "unknown command" means no module. If an ACL
forbids FT._LIST, `MODULE LIST` is asked instead. A Redis Cluster client always gets LocalIndex:
RediSearch on an open-source cluster searches one shard only.
"""

from __future__ import annotations

from typing import Any

from llmemo.errors import ConfigError
from llmemo.index.base import AsyncVectorIndex, Dtype
from llmemo.index.kinds import (
    Kind,
    _check_kind,
    _undecided,
    _unknown_command,
    async_standalone_client,
    modules_have_search,
)
from llmemo.stores.protocol import AsyncStore


async def async_has_search(client: Any) -> bool:
    """Ask the server (a redis-py client) whether it has RediSearch."""
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


async def open_async_index(
    store: AsyncStore,
    dim: int,
    *,
    kind: Kind = "auto",
    prefix: str = "llmemo",
    dtype: Dtype = "float16",
    **local_options: Any,
) -> AsyncVectorIndex:
    """The VectorIndex for `store`; `local_options` go to LocalIndex (log, poll_interval, ...)."""
    _check_kind(kind)
    client = async_standalone_client(store)
    if (
        kind != "local"
        and client is not None
        and (kind == "redisearch" or await async_has_search(client))
    ):
        from llmemo.index._async.redisearch import AsyncRediSearchIndex

        return AsyncRediSearchIndex(client, dim, prefix=prefix, dtype=dtype)
    if kind == "redisearch":
        raise ConfigError(f"kind='redisearch' needs a standalone Redis store, not {store.url!r}")
    from llmemo.index._async.local import AsyncLocalIndex

    return AsyncLocalIndex(store, dim, prefix=prefix, dtype=dtype, **local_options)
