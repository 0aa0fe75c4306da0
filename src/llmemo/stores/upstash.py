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

Here: the two stores and the commands they send. Apart: `upstash_url` (URLs into an UpstashConfig)
and `upstash_rest` (the REST wire: base64 values, the SDK's httpx client, errors translated).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, cast

from llmemo.errors import require
from llmemo.stores.base import Counters
from llmemo.stores.commands import DELETE_IF_EQUAL, EXPIRE_IF_EQUAL, batches, ms, unseen

require("upstash_redis", "upstash")

import httpx  # noqa: E402
import upstash_redis  # noqa: E402
import upstash_redis.asyncio  # noqa: E402

from llmemo.stores.upstash_rest import (  # noqa: E402
    RestError,
    _acheck_status,
    _Boundary,
    _check_status,
    _heads,
    _sdk,
    decode,
    encode,
    head_chars,
)
from llmemo.stores.upstash_rest import _http_of as _http_of  # noqa: E402 - kept for old imports
from llmemo.stores.upstash_url import (  # noqa: E402
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    ENV_TOKEN,
    ENV_URL,
    SCHEMES,
    UpstashConfig,
    parse_url,
)

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "ENV_TOKEN",
    "ENV_URL",
    "SCHEMES",
    "AsyncUpstashStore",
    "RestError",
    "UpstashConfig",
    "UpstashStore",
    "decode",
    "encode",
    "head_chars",
    "parse_url",
]

_KEYS_PER_REQUEST = 1000  # keeps an UNLINK well under Upstash's 1 MB request limit
P = TypeVar("P", upstash_redis.client.Pipeline, upstash_redis.asyncio.client.AsyncPipeline)

# One request for any number of keys. TYPE tells a missing key (and a counters hash) from an
# empty value, which GETRANGE alone cannot; `false` becomes a null reply.
_HEADS = """
local size = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('TYPE', key).ok ~= 'string' then
    out[i] = false
  elseif size > 0 then
    out[i] = redis.call('GETRANGE', key, 0, size - 1)
  else
    out[i] = ''
  end
end
return out
"""


def _floats(names: Iterable[str], replies: Sequence[object]) -> dict[str, float]:
    """HINCRBYFLOAT replies as counter values by name (the replies in the same order)."""
    return {name: float(cast("float", new)) for name, new in zip(names, replies, strict=True)}


def _queue_incr(pipe: P, key: str, amounts: Counters) -> P:
    # HINCRBYFLOAT for ints too: HINCRBY would refuse a field that once received a float.
    for name, amount in amounts.items():
        pipe.hincrbyfloat(key, name, amount)
    return pipe


class UpstashStore(_Boundary):
    """A Store on Upstash Redis' REST API (`upstash_redis.Redis`); `client` is there for advanced use."""

    def __init__(
        self, client: upstash_redis.Redis, url: str = "upstash://", secrets: Sequence[str] = ()
    ) -> None:
        self.client = client
        self.url = url
        self._secrets = secrets

    @classmethod
    def from_url(
        cls, url: str, *, environ: Mapping[str, str] | None = None, **options: Any
    ) -> UpstashStore:
        """See the module doc; options: `timeout`, `connect_timeout`, `retries` (the query wins)."""
        config = parse_url(url, environ, **options)
        client = _sdk(upstash_redis.Redis, httpx.Client, _check_status, config)
        return cls(client, config.url, [config.token])

    def get(self, key: str, refresh: float | None = None) -> bytes | None:
        with self._errors("GET"):
            if refresh is None:
                return decode(self.client.get(key))
            return decode(self.client.getex(key, px=ms(refresh)))

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        with self._errors("SET"):
            self.client.set(key, encode(value), px=None if ttl is None else ms(ttl))

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        with self._errors("SET NX"):
            return bool(self.client.set(key, encode(value), nx=True, px=ms(ttl)))

    def delete(self, keys: Sequence[str]) -> int:
        with self._errors("UNLINK"):
            return sum(self.client.unlink(*batch) for batch in batches(keys, _KEYS_PER_REQUEST))

    def delete_if_equal(self, key: str, value: bytes) -> bool:
        with self._errors("EVAL delete_if_equal"):
            return bool(self.client.eval(DELETE_IF_EQUAL, [key], [encode(value)]))

    def expire_if_equal(self, key: str, value: bytes, ttl: float) -> bool:
        with self._errors("EVAL expire_if_equal"):
            args = [encode(value), str(ms(ttl))]
            return bool(self.client.eval(EXPIRE_IF_EQUAL, [key], args))

    def scan(self, pattern: str, count: int = 500) -> Iterator[list[str]]:
        seen: set[str] = set()
        cursor = 0
        while True:
            with self._errors("SCAN"):
                cursor, found = self.client.scan(cursor, match=pattern, count=count)
            batch = unseen(found, seen)
            if batch:
                yield batch
            if cursor == 0:
                return

    def heads(self, keys: Sequence[str], size: int) -> list[bytes | None]:
        if not keys:
            return []
        with self._errors("EVAL heads"):
            found = self.client.eval(_HEADS, list(keys), [str(head_chars(size))])
        return _heads(size, found)

    def incr(self, key: str, amounts: Counters) -> dict[str, float]:
        if not amounts:
            return {}
        with self._errors("HINCRBYFLOAT"):
            results = _queue_incr(self.client.pipeline(), key, amounts).exec()
        return _floats(amounts, results)

    def counters(self, key: str) -> dict[str, float]:
        with self._errors("HGETALL"):
            found = self.client.hgetall(key)
        return {name: float(value) for name, value in found.items()}

    def ping(self) -> None:
        with self._errors("PING"):
            self.client.ping()

    def close(self) -> None:
        with self._errors("close"):
            self.client.close()  # type: ignore[no-untyped-call]


class AsyncUpstashStore(_Boundary):
    """The asyncio twin of UpstashStore (`upstash_redis.asyncio.Redis`)."""

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
        """As UpstashStore.from_url; no request is made until the first call."""
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
                [await self.client.unlink(*batch) for batch in batches(keys, _KEYS_PER_REQUEST)]
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

    async def heads(self, keys: Sequence[str], size: int) -> list[bytes | None]:
        if not keys:
            return []
        with self._errors("EVAL heads"):
            found = await self.client.eval(_HEADS, list(keys), [str(head_chars(size))])
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
            await self.client.close()
