"""Redis Cluster stores on redis-py's cluster clients: every command stays within one slot.

Single-key commands (GET, SET NX, the lease scripts, the counters hash) are routed by redis-py.
Multi-key work is split here: UNLINK per slot, GETRANGE/EXISTS pipelined (one round trip per
node), SCAN on every primary. Nothing needs CONFIG, FLUSHALL or KEYS; `maxmemory-policy` is read
once, on the first call, where the server allows it, for a warning. MOVED/ASK are followed by
redis-py; connection errors, CLUSTERDOWN and uncovered slots are retried once (topology refreshed
in between), then raised as StoreError: the cache fails open rather than stall during a failover.
A node that did not answer is held for a moment (`NodeGate`), so its keys fail fast and the
others never wait.

Here: the store. Apart: `cluster_url` (URLs into redis-py options), `cluster_gate` (the error
boundary and NodeGate), `cluster_commands` (the command shapes it sends).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, cast

from llmemo._synchronization import AsyncLock
from llmemo.errors import require
from llmemo.stores.protocol import Counters
from llmemo.stores.urls import redact

require("redis", "redis")

import redis  # noqa: E402
import redis.asyncio  # noqa: E402
import redis.asyncio.cluster  # noqa: E402
import redis.asyncio.retry  # noqa: E402

from llmemo.stores.cluster_commands import (  # noqa: E402
    _any,
    _counters,
    _floats,
    _page_end,
    _page_start,
    _pipeline,
    _policy_warning,
    _PrimaryScan,
    _queue_heads,
    _queue_incr,
    _queue_unlinks,
    _scripts,
    _swap_script,
    async_primaries,
)
from llmemo.stores.cluster_gate import _ERRORS, _Boundary  # noqa: E402
from llmemo.stores.cluster_url import (  # noqa: E402
    RETRIES,
    _backoff,
    _bad_option,
    _node_kwargs,
    cluster_options,
)
from llmemo.stores.commands import ms  # noqa: E402
from llmemo.stores.redis_base import _check, _heads, _secrets  # noqa: E402

__all__ = ["AsyncRedisClusterStore"]
log = logging.getLogger("llmemo.stores")


class AsyncRedisClusterStore(_Boundary):
    """A Store on a Redis Cluster (redis-py's RedisCluster, built on first use)."""

    def __init__(
        self,
        kwargs: Mapping[str, Any],
        nodes: Sequence[tuple[str, int]],
        url: str = "redis+cluster://",
        secrets: Sequence[str] = (),
    ) -> None:
        super().__init__(url, secrets)
        self._kwargs = dict(kwargs)
        self._nodes = list(nodes)
        self._client: redis.asyncio.cluster.RedisCluster | None = None
        self._ready: redis.asyncio.cluster.RedisCluster | None = None  # set once the policy is read
        self._building = threading.Lock()
        self._connecting = AsyncLock()
        self._delete_if_equal: Any = None
        self._expire_if_equal: Any = None
        self._swap_if_equal: Any = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> AsyncRedisClusterStore:
        """`redis+cluster://[user:password@]host:port,host:port,...` (`rediss+cluster://` for TLS).

        Any node will do (the others are discovered); naming several survives one being down.
        Options (and URL query values, which win) go to redis-py, e.g. `socket_timeout`,
        `ssl_ca_certs`, `retry`, `require_full_coverage`. No connection is made here.
        """
        secrets = _secrets(url, dict(options))
        retry = redis.asyncio.retry.Retry(_backoff(), RETRIES)
        kwargs, nodes = cluster_options(url, options, retry)
        connection = _node_kwargs(**kwargs)  # what each node's pool receives
        try:
            probe = redis.asyncio.Redis(**connection)
        except (TypeError, ValueError, redis.RedisError) as exc:
            raise _bad_option(redact(url), exc, secrets) from None
        _check(probe.connection_pool, url, secrets)
        return cls(kwargs, nodes, url, secrets)

    @property
    def client(self) -> redis.asyncio.cluster.RedisCluster:
        """The redis-py cluster client, for advanced use, built on first use (the sync client
        reads the topology then: StoreError if it cannot)."""
        client = self._client
        if client is not None:
            return client
        with self._building, self._errors("connect"):
            if self._client is None:
                node: Any = redis.asyncio.cluster.ClusterNode  # untyped in the sync stubs
                nodes = [node(h, p) for h, p in self._nodes]
                try:
                    client = redis.asyncio.cluster.RedisCluster(startup_nodes=nodes, **self._kwargs)
                except (TypeError, ValueError) as exc:
                    raise _bad_option(self.url, exc, self._secrets) from None
                self._delete_if_equal, self._expire_if_equal = _scripts(client)
                self._client = client
            return self._client

    async def _connect(self) -> redis.asyncio.cluster.RedisCluster:
        """The client; the first call also reads `maxmemory-policy` (once, for a warning)."""
        ready = self._ready
        if ready is not None:
            return ready
        async with self._connecting:
            if self._ready is None:
                client = self.client
                await self._check_policy(client)
                self._ready = client
            return self._ready

    async def _check_policy(self, client: redis.asyncio.cluster.RedisCluster) -> None:
        try:
            replies = await client.config_get("maxmemory-policy", target_nodes=client.PRIMARIES)
        except _ERRORS as exc:  # managed clusters refuse CONFIG: nothing to check
            log.debug("cannot read maxmemory-policy on %s: %s", self.url, type(exc).__name__)
            return
        _policy_warning(replies, self.url)

    async def get(self, key: str, refresh: float | None = None) -> bytes | None:
        with self._gated("GET", key, await self._connect()) as client:
            if refresh is None:
                return cast("bytes | None", await client.get(key))
            return cast("bytes | None", await client.getex(key, px=ms(refresh)))

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        with self._gated("SET", key, await self._connect()) as client:
            await client.set(key, value, px=None if ttl is None else ms(ttl))

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        with self._gated("SET NX", key, await self._connect()) as client:
            return bool(await client.set(key, value, nx=True, px=ms(ttl)))

    async def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        with self._errors("UNLINK"):
            pipe = _pipeline(await self._connect())
            _queue_unlinks(pipe, keys)
            return sum(await pipe.execute())

    async def delete_if_equal(self, key: str, value: bytes) -> bool:
        with self._gated("EVALSHA delete_if_equal", key, await self._connect()):
            return bool(await self._delete_if_equal(keys=[key], args=[value]))

    async def expire_if_equal(self, key: str, value: bytes, ttl: float) -> bool:
        with self._gated("EVALSHA expire_if_equal", key, await self._connect()):
            return bool(await self._expire_if_equal(keys=[key], args=[value, ms(ttl)]))

    async def scan(self, pattern: str, count: int = 500) -> AsyncIterator[list[str]]:
        """SCAN every primary in turn (the key space is split between them)."""
        with self._errors("SCAN"):
            client = _any(await self._connect())
            scan = _PrimaryScan(await async_primaries(client), pattern, count)
        while scan.node is not None:
            with self._errors("SCAN"):
                reply = await client.scan(scan.cursor, target_nodes=scan.node, **scan.options)
            batch = scan.page(reply)
            if batch:
                yield batch

    async def scan_page(
        self, pattern: str, cursor: str = "", count: int = 500
    ) -> tuple[str, list[str]]:
        """One SCAN page of one primary; the cursor names the primary (`host:port/cursor`)."""
        with self._errors("SCAN"):
            client = _any(await self._connect())
            nodes, index, at = _page_start(await async_primaries(client), cursor)
            options = {"match": pattern, "count": count}
            reply = await client.scan(at, target_nodes=nodes[index], **options)
        return _page_end(nodes, index, reply)

    async def swap(self, key: str, old: bytes, new: bytes) -> bool:
        with self._gated("EVALSHA swap_if_equal", key, await self._connect()) as client:
            if self._swap_if_equal is None:
                self._swap_if_equal = _swap_script(client)
            return bool(await self._swap_if_equal(keys=[key], args=[old, new]))

    async def swap_many(self, items: Sequence[tuple[str, bytes, bytes]]) -> list[bool]:
        """One script call per key: the keys of a batch are on many slots and nodes."""
        return [await self.swap(key, old, new) for key, old, new in items]

    async def heads(self, keys: Sequence[str], size: int) -> list[bytes | None]:
        if not keys:
            return []
        with self._errors("GETRANGE"):
            pipe = _pipeline(await self._connect())
            _queue_heads(pipe, keys, size)
            return _heads(keys, size, await pipe.execute(raise_on_error=False))

    async def incr(self, key: str, amounts: Counters) -> dict[str, float]:
        if not amounts:
            return {}
        with self._gated("HINCRBYFLOAT", key, await self._connect()) as client:
            pipe = _pipeline(client)
            _queue_incr(pipe, key, amounts)
            replies = await pipe.execute()
        return _floats(amounts, replies)

    async def counters(self, key: str) -> dict[str, float]:
        with self._gated("HGETALL", key, await self._connect()) as client:
            found = await client.hgetall(key)
        return _counters(found)

    async def ping(self) -> None:
        """PING every primary: each one serves a part of the keys."""
        with self._errors("PING"):
            client = await self._connect()
            await client.ping(target_nodes=client.PRIMARIES)

    async def close(self) -> None:
        async with self._connecting:
            client, self._client, self._ready = self._client, None, None
        if client is not None:
            with self._errors("close"):
                await client.aclose()
