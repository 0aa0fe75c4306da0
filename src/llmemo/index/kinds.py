"""Which index a store gets: the kinds, and the server facts that decide (no I/O here)."""

from __future__ import annotations

from typing import Any, Literal

from llmemo.errors import ConfigError

Kind = Literal["auto", "redisearch", "local"]
_SEARCH_MODULES = frozenset({"search", "ft", "searchlight"})


def async_standalone_client(store: object) -> Any | None:
    """The store's redis.asyncio client when it talks to one Redis server, else None."""
    return _standalone_client(store, asyncio=True)


def standalone_client(store: object) -> Any | None:
    """The store's redis-py client when it talks to one Redis server, else None."""
    return _standalone_client(store, asyncio=False)


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


def _undecided(exc: BaseException) -> ConfigError:
    return ConfigError(
        f"cannot tell whether the Redis server has the search module ({exc}): "
        "choose with kind='redisearch' or kind='local'"
    )


def _check_kind(kind: str) -> None:
    if kind not in ("auto", "redisearch", "local"):
        raise ConfigError(f"index kind must be 'auto', 'redisearch' or 'local', got {kind!r}")
