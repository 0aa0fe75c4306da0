"""Redis stores on redis-py: one round trip per operation, short timeouts, errors translated once.

Every command names one key (or is pipelined per key, without MULTI), so a Redis Cluster store can
reuse these command shapes. The cache fails open, so a slow Redis must fail fast, not stall callers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

from llmemo.errors import ConfigError, require
from llmemo.stores.commands import (
    DELETE_IF_EQUAL,
    EXPIRE_IF_EQUAL,
    SWAP_IF_EQUAL,
    batches,
    ms,
    page_cursor,
    scan_cursor,
    text,
    unseen,
)
from llmemo.stores.protocol import Counters
from llmemo.stores.urls import redact

require("redis", "redis")

import redis  # noqa: E402
import redis.asyncio  # noqa: E402
import redis.asyncio.retry  # noqa: E402
from redis.backoff import NoBackoff  # noqa: E402

from llmemo.stores.autopipeline import AsyncGets  # noqa: E402
from llmemo.stores.redis_base import (  # noqa: E402
    RETRIES,
    RETRY_ON,
    UNLINK_BATCH,
    _Boundary,
    _check,
    _client_options,
    _heads,
    _queue_heads,
    _queue_incr,
    _scrub,
    _secrets,
)


class AsyncRedisStore(_Boundary):
    """A Store on a Redis server (redis-py, pooled connections). `client` is there for advanced use."""

    def __init__(
        self, client: redis.asyncio.Redis, url: str = "redis://", secrets: Sequence[str] = ()
    ) -> None:
        self.client = client
        self.url = redact(url)
        self._secrets = secrets
        self._delete_if_equal = client.register_script(DELETE_IF_EQUAL)
        self._expire_if_equal = client.register_script(EXPIRE_IF_EQUAL)
        self._swap_if_equal = client.register_script(SWAP_IF_EQUAL)
        self._gets = AsyncGets(client)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> AsyncRedisStore:
        """`redis://[user:password@]host:port/db`, `rediss://...` (TLS), `unix:///path.sock?db=0`.

        Options (and URL query values, which win) go to redis-py's connection pool, e.g.
        `socket_timeout`, `ssl_cert_reqs`, `ssl_ca_certs`, `max_connections`. No connection is
        made until the first call.
        """
        secrets = _secrets(url, options)
        retry = redis.asyncio.retry.Retry(NoBackoff(), RETRIES, RETRY_ON)
        kwargs = _client_options(url, options, retry)
        try:
            client = redis.asyncio.Redis.from_url(url, **kwargs)
        except (TypeError, ValueError, redis.RedisError) as exc:
            raise ConfigError(_scrub(f"bad Redis URL {redact(url)!r}: {exc}", secrets)) from None
        _check(client.connection_pool, url, secrets)
        return cls(client, url, secrets)

    async def get(self, key: str, refresh: float | None = None) -> bytes | None:
        # Async: concurrent GETs of one loop tick share a pipeline (stores/autopipeline.py).
        try:  # not `with self._errors(...)`: a try costs nothing on every hit's path
            reply = await self._gets.get(key, None if refresh is None else ms(refresh))
        except (redis.RedisError, OSError) as exc:
            raise self._failure("GET", exc) from exc
        return cast("bytes | None", reply)

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        with self._errors("SET"):
            await self.client.set(key, value, px=None if ttl is None else ms(ttl))

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        with self._errors("SET NX"):
            return bool(await self.client.set(key, value, nx=True, px=ms(ttl)))

    async def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        with self._errors("UNLINK"):
            runs = batches(keys, UNLINK_BATCH)
            if len(runs) == 1:
                return int(await self.client.unlink(*keys))
            pipe = self.client.pipeline(transaction=False)
            for run in runs:
                pipe.unlink(*run)
            return sum(await pipe.execute())

    async def delete_if_equal(self, key: str, value: bytes) -> bool:
        with self._errors("EVALSHA delete_if_equal"):
            return bool(await self._delete_if_equal(keys=[key], args=[value]))

    async def expire_if_equal(self, key: str, value: bytes, ttl: float) -> bool:
        with self._errors("EVALSHA expire_if_equal"):
            return bool(await self._expire_if_equal(keys=[key], args=[value, ms(ttl)]))

    async def scan(self, pattern: str, count: int = 500) -> AsyncIterator[list[str]]:
        seen: set[str] = set()
        cursor = 0
        while True:
            with self._errors("SCAN"):
                cursor, found = await self.client.scan(cursor, match=pattern, count=count)
            batch = unseen(found, seen)
            if batch:
                yield batch
            if cursor == 0:
                return

    async def scan_page(
        self, pattern: str, cursor: str = "", count: int = 500
    ) -> tuple[str, list[str]]:
        with self._errors("SCAN"):
            after, found = await self.client.scan(scan_cursor(cursor), match=pattern, count=count)
        return page_cursor(after), list(dict.fromkeys(map(text, found)))

    async def swap(self, key: str, old: bytes, new: bytes) -> bool:
        with self._errors("EVALSHA swap_if_equal"):
            return bool(await self._swap_if_equal(keys=[key], args=[old, new]))

    async def swap_many(self, items: Sequence[tuple[str, bytes, bytes]]) -> list[bool]:
        if not items:
            return []
        with self._errors("EVALSHA swap_if_equal"):
            pipe = self.client.pipeline(transaction=False)
            for key, old, new in items:
                await self._swap_if_equal(keys=[key], args=[old, new], client=pipe)
            return [bool(done) for done in await pipe.execute()]

    async def heads(self, keys: Sequence[str], size: int) -> list[bytes | None]:
        if not keys:
            return []
        with self._errors("GETRANGE"):
            pipe = _queue_heads(self.client.pipeline(transaction=False), keys, size)
            return _heads(keys, size, await pipe.execute(raise_on_error=False))

    async def incr(self, key: str, amounts: Counters) -> dict[str, float]:
        if not amounts:
            return {}
        with self._errors("HINCRBYFLOAT"):
            pipe = _queue_incr(self.client.pipeline(transaction=False), key, amounts)
            replies = await pipe.execute()
        return {name: float(new) for name, new in zip(amounts, replies, strict=True)}

    async def counters(self, key: str) -> dict[str, float]:
        with self._errors("HGETALL"):
            found = await self.client.hgetall(key)
        return {text(name): float(value) for name, value in found.items()}

    async def ping(self) -> None:
        with self._errors("PING"):
            await self.client.ping()

    async def close(self) -> None:
        with self._errors("close"):
            await self._gets.aclose()
            await self.client.aclose()
