"""Upstash Redis over its REST API, on the official `upstash-redis` SDK: the store for serverless.

URLs (the token goes where a password goes, so every log line that redacts URLs hides it; percent-
encode a `/` in it as `%2F`):

- `upstash://:TOKEN@HOST` -> `https://HOST`; `upstash+https://...` says the same explicitly.
- `upstash+http://:TOKEN@127.0.0.1:8079` -> plain HTTP, for local REST gateways only.
- `upstash://` -> `$UPSTASH_REDIS_REST_URL` and `$UPSTASH_REDIS_REST_TOKEN`; a URL that names only
  the host (or only the token) takes the other from the environment.
- Query options: `timeout` (read/write seconds, default 1), `connect_timeout` (default 2),
  `retries` (default 0: a retried HINCRBYFLOAT whose first answer was lost counts twice).

Upstash's REST API is JSON, and the SDK sends every argument as a JSON string and reads every
reply as UTF-8 text, so raw bytes cannot pass. Values are stored as base64 text (4/3 the size,
ASCII, so replies need no `Upstash-Encoding` on top). `heads` reads the base64 prefix that covers
the bytes asked for and decodes it. Do not share keys with a RedisStore on the same database: it
keeps raw bytes, so each would read the other's entries as corrupt (and delete them).

Round trips (HTTP requests): one for each call; `get` with `refresh` is one GETEX; `incr` is one
pipeline; `heads`, `delete_if_equal`, `expire_if_equal` are one EVAL each; `delete` is one UNLINK
per 1000 keys; `scan` is one request per SCAN page.

The SDK has no timeout (httpx's is None) and retries after 3 s; a cache must fail fast instead,
so the store sets a timeout and a status check on the SDK's httpx client (`_http._client`, present
since upstash-redis 1.4; a release without it fails at construction, not by hanging). Telemetry
headers and read-your-writes sync tokens are off: a read that misses a write made a moment ago
on a global database's replica is a miss, and the cache is built for misses.

Here: the store (its sync twin is generated). Apart: `upstash_url` (URLs into an UpstashConfig)
and `upstash_rest` (the REST wire: base64 values, the SDK's httpx client, the commands sent,
errors translated).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from llmemo.errors import require
from llmemo.stores.commands import (
    DELETE_IF_EQUAL,
    EXPIRE_IF_EQUAL,
    SWAP_IF_EQUAL,
    batches,
    ms,
    page_cursor,
    scan_cursor,
    unseen,
)
from llmemo.stores.protocol import Counters

require("upstash_redis", "upstash")

import httpx  # noqa: E402
import upstash_redis  # noqa: E402
import upstash_redis.asyncio  # noqa: E402

from llmemo.stores.upstash_rest import (  # noqa: E402
    HEADS_SCRIPT,
    KEYS_PER_REQUEST,
    _acheck_status,
    _Boundary,
    _floats,
    _heads,
    _queue_incr,
    _sdk,
    decode,
    encode,
    head_chars,
)
from llmemo.stores.upstash_url import parse_url  # noqa: E402


class AsyncUpstashStore(_Boundary):
    """A Store on Upstash Redis' REST API (`upstash_redis`); `client` is there for advanced use."""

    def __init__(
        self,
        client: upstash_redis.asyncio.Redis,
        url: str = "upstash://",
        secrets: Sequence[str] = (),
    ) -> None:
        self.client = client
        self.url = url
        self._secrets = secrets

    @classmethod
    def from_url(
        cls, url: str, *, environ: Mapping[str, str] | None = None, **options: Any
    ) -> AsyncUpstashStore:
        """See the module doc; options: `timeout`, `connect_timeout`, `retries` (the query wins).

        No request is made until the first call.
        """
        config = parse_url(url, environ, **options)
        client = _sdk(upstash_redis.asyncio.Redis, httpx.AsyncClient, _acheck_status, config)
        return cls(client, config.url, [config.token])

    async def get(self, key: str, refresh: float | None = None) -> bytes | None:
        with self._errors("GET"):
            if refresh is None:
                return decode(await self.client.get(key))
            return decode(await self.client.getex(key, px=ms(refresh)))

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        with self._errors("SET"):
            await self.client.set(key, encode(value), px=None if ttl is None else ms(ttl))

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        with self._errors("SET NX"):
            return bool(await self.client.set(key, encode(value), nx=True, px=ms(ttl)))

    async def delete(self, keys: Sequence[str]) -> int:
        with self._errors("UNLINK"):
            return sum(
                [await self.client.unlink(*batch) for batch in batches(keys, KEYS_PER_REQUEST)]
            )

    async def delete_if_equal(self, key: str, value: bytes) -> bool:
        with self._errors("EVAL delete_if_equal"):
            return bool(await self.client.eval(DELETE_IF_EQUAL, [key], [encode(value)]))

    async def expire_if_equal(self, key: str, value: bytes, ttl: float) -> bool:
        with self._errors("EVAL expire_if_equal"):
            args = [encode(value), str(ms(ttl))]
            return bool(await self.client.eval(EXPIRE_IF_EQUAL, [key], args))

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
        return page_cursor(after), list(dict.fromkeys(found))

    async def swap(self, key: str, old: bytes, new: bytes) -> bool:
        with self._errors("EVAL swap_if_equal"):
            args = [encode(old), encode(new)]
            return bool(await self.client.eval(SWAP_IF_EQUAL, [key], args))

    async def swap_many(self, items: Sequence[tuple[str, bytes, bytes]]) -> list[bool]:
        if not items:
            return []
        with self._errors("EVAL swap_if_equal"):
            pipe = self.client.pipeline()
            for key, old, new in items:
                pipe.eval(SWAP_IF_EQUAL, [key], [encode(old), encode(new)])
            return [bool(done) for done in await pipe.exec()]

    async def heads(self, keys: Sequence[str], size: int) -> list[bytes | None]:
        if not keys:
            return []
        with self._errors("EVAL heads"):
            found = await self.client.eval(HEADS_SCRIPT, list(keys), [str(head_chars(size))])
        return _heads(size, found)

    async def incr(self, key: str, amounts: Counters) -> dict[str, float]:
        if not amounts:
            return {}
        with self._errors("HINCRBYFLOAT"):
            results = await _queue_incr(self.client.pipeline(), key, amounts).exec()
        return _floats(amounts, results)

    async def counters(self, key: str) -> dict[str, float]:
        with self._errors("HGETALL"):
            found = await self.client.hgetall(key)
        return {name: float(value) for name, value in found.items()}

    async def ping(self) -> None:
        with self._errors("PING"):
            await self.client.ping()

    async def close(self) -> None:
        with self._errors("close"):
            await self.client.close()  # type: ignore[no-untyped-call, unused-ignore]
