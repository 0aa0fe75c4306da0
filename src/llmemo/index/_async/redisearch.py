"""RediSearchIndex: server-side HNSW (COSINE) on Redis Stack or Redis 8, with the scope as one TAG.

One small HASH per entry holds its scope digest (`s`, one TAG) and its vector (`v`, FLOAT16 or
FLOAT32 bytes); nothing about the answer is indexed. The answer itself is NOT copied into the hash:
the cache already keeps the encoded entry at its exact key, and a search runs as one Lua script
(FT.SEARCH, then GET of each match's entry key), so a semantic hit is still one round trip while
Redis holds the ~1 KB entry once (docs/benchmarks.md, "Redis memory per semantic entry"). Where
scripts are not allowed (an ACL without EVALSHA), the plain FT.SEARCH is sent and the caller GETs.

The hash key is `{index name}:{entry key}`: it keeps the entry's `{sha}` hash tag (same cluster
slot) and lives under a prefix (`{prefix}:~vec2:...`) that no namespace can produce, so the index
never sees other keys. The `2` is the record layout: an index made for another layout (the
five-TAG `~vec:` one) has another name and prefix, so it is never reused with this one.
The hash gets the entry's TTL in the same MULTI as its HSET, so a vector never outlives its answer.

Every decision (names, schema, query, reply parsing, distance -> similarity) is a pure function
in `index.redisearch_base`; the index here only sends commands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from llmemo.errors import require
from llmemo.index.base import Dtype, IndexItem, IndexScope, Match, record_key, vector_bytes
from llmemo.stores.commands import ms

require("redis", "redis")

import numpy.typing as npt  # noqa: E402
import redis  # noqa: E402
import redis.asyncio  # noqa: E402

from llmemo.index.redisearch_base import (  # noqa: E402
    HNSW,
    SEARCH_SCRIPT,
    RediSearchBase,
    _exists,
    _missing_index,
    _queue_add,
    _where,
    create_args,
    info_count,
    parse_script,
    parse_search,
    script_args,
    search_args,
)


class AsyncRediSearchIndex(RediSearchBase):
    """A VectorIndex in RediSearch. `client` is a redis-py client (`RedisStore.client`).

    The index is created on first use (idempotently: an existing index of the same name, so of
    the same layout, is reused) and again if someone drops it. dtype float16 halves the vector's
    memory; similarity changes by < 1e-3. An item's payload is not stored: the entry must live at
    the item's key in the same Redis (as the cache keeps it), where the search reads it.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        dim: int,
        *,
        prefix: str = "llmemo",
        dtype: Dtype = "float16",
        hnsw: HNSW | None = None,
    ) -> None:
        super().__init__(dim, prefix, dtype, hnsw, _where(client))
        self.client = client
        self._script = client.register_script(SEARCH_SCRIPT)  # EVALSHA, loaded on NOSCRIPT

    async def _command(self, *args: Any) -> Any:
        return await cast(Any, self.client).execute_command(*args)  # redis-py leaves it untyped

    async def create(self) -> None:
        """Create the index unless it exists (safe to call from many processes at once)."""
        with self._errors("FT.CREATE"):
            try:
                await self._command(*create_args(self.name, self._dim, self.dtype, self.hnsw))
            except redis.ResponseError as exc:
                if not _exists(exc):
                    raise
        self._ready = True

    async def add(self, item: IndexItem) -> None:
        if not self._ready:
            await self.create()
        with self._errors("HSET"):
            pipe = self.client.pipeline(transaction=True)
            _queue_add(pipe, self.name, item, vector_bytes(item.vector, self._dim, self.dtype))
            await pipe.execute()

    async def touch(self, key: str, ttl: float) -> None:
        with self._errors("PEXPIRE"):
            await self.client.pexpire(record_key(self.name, key), ms(ttl))

    async def add_many(self, items: Sequence[IndexItem]) -> None:
        """Index many items in one round trip, for bulk loads (not one MULTI: items may span slots)."""
        if not self._ready:
            await self.create()
        with self._errors("HSET"):
            pipe = self.client.pipeline(transaction=False)
            for item in items:
                _queue_add(pipe, self.name, item, vector_bytes(item.vector, self._dim, self.dtype))
            await pipe.execute()

    async def search(
        self, vector: npt.ArrayLike, scope: IndexScope, k: int = 1, min_similarity: float = 0.0
    ) -> list[Match]:
        blob = self._query_vector(vector, k, min_similarity)
        if blob is None:
            return []
        if not self._ready:
            await self.create()
        with self._errors("FT.SEARCH"):
            try:
                return await self._search(blob, scope, k, min_similarity)
            except redis.ResponseError as exc:
                if not _missing_index(exc):
                    raise
                await (
                    self.create()
                )  # dropped behind our back: recreate (it rescans existing hashes)
                return await self._search(blob, scope, k, min_similarity)

    async def _search(
        self, blob: bytes, scope: IndexScope, k: int, min_similarity: float
    ) -> list[Match]:
        if self._scripted:
            policy, count = self._plan(scope)
            try:
                reply = await self._script(
                    args=script_args(self.name, blob, scope, k, policy, count)
                )
            except redis.ResponseError as exc:
                self._refused(exc)
            else:
                self._learn(scope, reply)
                return parse_script(reply, min_similarity)
        reply = await self._command(*search_args(self.name, blob, scope, k))
        return parse_search(reply, self.name, min_similarity)

    async def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        with self._errors("UNLINK"):
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.unlink(record_key(self.name, key))
            return sum(int(n) for n in await pipe.execute())

    async def count(self) -> int:
        with self._errors("FT.INFO"):
            try:
                return info_count(await self._command("FT.INFO", self.name))
            except redis.ResponseError as exc:
                if _missing_index(exc):
                    return 0
                raise

    async def drop(self) -> None:
        """Drop the index and delete every vector hash it holds (DD)."""
        with self._errors("FT.DROPINDEX"):
            try:
                await self._command("FT.DROPINDEX", self.name, "DD")
            except redis.ResponseError as exc:
                if not _missing_index(exc):
                    raise
        self._ready = False

    async def close(self) -> None:
        """The client belongs to the store: closing the index leaves it open."""
