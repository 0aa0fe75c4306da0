"""Redis stores on redis-py: one round trip per operation, short timeouts, errors translated once.

Every command names one key (or is pipelined per key, without MULTI), so a Redis Cluster store can
reuse these command shapes. The cache fails open, so a slow Redis must fail fast, not stall callers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from llmemo.errors import ConfigError, StoreError, require
from llmemo.stores.base import Counters, redact
from llmemo.stores.commands import DELETE_IF_EQUAL, EXPIRE_IF_EQUAL, batches, ms, text, unseen

require("redis", "redis")

import redis  # noqa: E402
import redis.asyncio  # noqa: E402
import redis.asyncio.retry  # noqa: E402
import redis.retry  # noqa: E402
from redis.backoff import NoBackoff  # noqa: E402

from llmemo.stores.autopipeline import GetBatcher  # noqa: E402

SCHEMES = ("redis", "rediss", "unix")
# Overridable by keyword or by the URL query (`?socket_timeout=2`), which wins, as in redis-py.
DEFAULT_OPTIONS: dict[str, Any] = {"socket_connect_timeout": 1.0, "socket_timeout": 0.5}
# One immediate retry, on a broken connection only: a pooled connection that Redis (a restart,
# its idle `timeout`) or a proxy closed is replaced instead of failing one call per connection.
# Timeouts are not retried: a slow store must fail within one socket timeout.
_RETRIES, _RETRY_ON = 1, (redis.ConnectionError,)
_UNLINK_BATCH = 500
P = TypeVar("P", redis.client.Pipeline, redis.asyncio.client.Pipeline)


def _secrets(url: str, options: dict[str, Any]) -> list[str]:
    """Every spelling of the password that an error message could possibly echo."""
    parts = urlsplit(url)
    found = [parts.password or "", options.get("password") or ""]
    found += [value for name, value in parse_qsl(parts.query) if name == "password"]
    found += [unquote(secret) for secret in found]
    return sorted({s for s in found if isinstance(s, str) and s}, key=len, reverse=True)


def _client_options(url: str, options: dict[str, Any], retry: Any) -> dict[str, Any]:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise ConfigError(f"not a Redis URL: {redact(url)!r}; expected one of {known}")
    if options.get("decode_responses"):
        raise ConfigError("decode_responses=True is not supported: the store keeps bytes")
    return {**DEFAULT_OPTIONS, "retry": retry, **options}


def _check(pool: Any, url: str, secrets: Sequence[str]) -> None:
    """Build (not connect) one connection now, so a bad option fails here, not on a request."""
    try:
        pool.connection_class(**pool.connection_kwargs)
    except (TypeError, ValueError, redis.RedisError) as exc:
        raise ConfigError(_scrub(f"bad Redis option in {redact(url)!r}: {exc}", secrets)) from None
    if str(pool.connection_kwargs.get("decode_responses", "")).lower() in ("1", "true", "yes"):
        raise ConfigError("decode_responses=True is not supported: the store keeps bytes")


def _scrub(text: str, secrets: Sequence[str]) -> str:
    text = " ".join(text.split())
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _heads(keys: Sequence[str], size: int, results: list[Any]) -> list[bytes | None]:
    """Pair GETRANGE and EXISTS replies: GETRANGE alone cannot tell a missing key from b''."""
    out: list[bytes | None] = []
    for i, _key in enumerate(keys):
        head, exists = (results[2 * i], results[2 * i + 1]) if size > 0 else (b"", results[i])
        if isinstance(head, redis.ResponseError) and str(head).startswith("WRONGTYPE"):
            out.append(None)  # a counters hash is not an entry
            continue
        for reply in (head, exists):
            if isinstance(reply, Exception):
                raise reply
        out.append(bytes(head) if head or exists else None)
    return out


def _queue_heads(pipe: P, keys: Sequence[str], size: int) -> P:
    for key in keys:
        if size > 0:
            pipe.getrange(key, 0, size - 1)
        pipe.exists(key)
    return pipe


def _queue_incr(pipe: P, key: str, amounts: Counters) -> P:
    # HINCRBYFLOAT for ints too: HINCRBY would refuse a field that once received a float.
    for name, amount in amounts.items():
        pipe.hincrbyfloat(key, name, amount)
    return pipe


class _Translate:
    """`with`-block that turns redis-py errors into StoreError (a class: cheaper than a generator
    context manager on the hit path)."""

    __slots__ = ("boundary", "command")

    def __init__(self, boundary: _Boundary, command: str) -> None:
        self.boundary = boundary
        self.command = command

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and isinstance(exc, redis.RedisError | OSError):
            raise self.boundary._failure(self.command, exc) from exc


class _Boundary:
    """What both twins share: the redacted URL and the one place redis-py errors are translated."""

    url: str
    _secrets: Sequence[str]

    def _errors(self, command: str) -> _Translate:
        return _Translate(self, command)

    def _failure(self, command: str, exc: BaseException) -> StoreError:
        """The StoreError for a redis-py error: one line, the URL redacted, no secret echoed."""
        text = _scrub(str(exc), self._secrets) or "no detail"
        return StoreError(f"redis {command} failed on {self.url}: {type(exc).__name__}: {text}")


class RedisStore(_Boundary):
    """A Store on a Redis server (redis-py, pooled connections). `client` is there for advanced use."""

    def __init__(
        self, client: redis.Redis, url: str = "redis://", secrets: Sequence[str] = ()
    ) -> None:
        self.client = client
        self.url = redact(url)
        self._secrets = secrets
        self._delete_if_equal = client.register_script(DELETE_IF_EQUAL)
        self._expire_if_equal = client.register_script(EXPIRE_IF_EQUAL)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStore:
        """`redis://[user:password@]host:port/db`, `rediss://...` (TLS), `unix:///path.sock?db=0`.

        Options (and URL query values, which win) go to redis-py's connection pool, e.g.
        `socket_timeout`, `ssl_cert_reqs`, `ssl_ca_certs`, `max_connections`.
        """
        secrets = _secrets(url, options)
        kwargs = _client_options(url, options, redis.retry.Retry(NoBackoff(), _RETRIES, _RETRY_ON))
        try:
            client = redis.Redis.from_url(url, **kwargs)
        except (TypeError, ValueError, redis.RedisError) as exc:
            raise ConfigError(_scrub(f"bad Redis URL {redact(url)!r}: {exc}", secrets)) from None
        _check(client.connection_pool, url, secrets)
        return cls(client, url, secrets)

    def get(self, key: str, refresh: float | None = None) -> bytes | None:
        try:  # not `with self._errors(...)`: a try costs nothing on every hit's path
            if refresh is None:
                return cast("bytes | None", self.client.get(key))
            return cast("bytes | None", self.client.getex(key, px=ms(refresh)))
        except (redis.RedisError, OSError) as exc:
            raise self._failure("GET", exc) from exc

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        with self._errors("SET"):
            self.client.set(key, value, px=None if ttl is None else ms(ttl))

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        with self._errors("SET NX"):
            return bool(self.client.set(key, value, nx=True, px=ms(ttl)))

    def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        with self._errors("UNLINK"):
            runs = batches(keys, _UNLINK_BATCH)
            if len(runs) == 1:
                return int(self.client.unlink(*keys))
            pipe = self.client.pipeline(transaction=False)
            for run in runs:
                pipe.unlink(*run)
            return sum(pipe.execute())

    def delete_if_equal(self, key: str, value: bytes) -> bool:
        with self._errors("EVALSHA delete_if_equal"):
            return bool(self._delete_if_equal(keys=[key], args=[value]))

    def expire_if_equal(self, key: str, value: bytes, ttl: float) -> bool:
        with self._errors("EVALSHA expire_if_equal"):
            return bool(self._expire_if_equal(keys=[key], args=[value, ms(ttl)]))

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
        with self._errors("GETRANGE"):
            pipe = _queue_heads(self.client.pipeline(transaction=False), keys, size)
            return _heads(keys, size, pipe.execute(raise_on_error=False))

    def incr(self, key: str, amounts: Counters) -> dict[str, float]:
        if not amounts:
            return {}
        with self._errors("HINCRBYFLOAT"):
            pipe = _queue_incr(self.client.pipeline(transaction=False), key, amounts)
            return {name: float(new) for name, new in zip(amounts, pipe.execute(), strict=True)}

    def counters(self, key: str) -> dict[str, float]:
        with self._errors("HGETALL"):
            found = self.client.hgetall(key)
        return {text(name): float(value) for name, value in found.items()}

    def ping(self) -> None:
        with self._errors("PING"):
            self.client.ping()

    def close(self) -> None:
        with self._errors("close"):
            self.client.close()


class AsyncRedisStore(_Boundary):
    """The asyncio twin of RedisStore (redis.asyncio)."""

    def __init__(
        self, client: redis.asyncio.Redis, url: str = "redis://", secrets: Sequence[str] = ()
    ) -> None:
        self.client = client
        self.url = redact(url)
        self._secrets = secrets
        self._delete_if_equal = client.register_script(DELETE_IF_EQUAL)
        self._expire_if_equal = client.register_script(EXPIRE_IF_EQUAL)
        self._gets = GetBatcher(client)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> AsyncRedisStore:
        """As RedisStore.from_url; no connection is made until the first call."""
        secrets = _secrets(url, options)
        retry = redis.asyncio.retry.Retry(NoBackoff(), _RETRIES, _RETRY_ON)
        kwargs = _client_options(url, options, retry)
        try:
            client = redis.asyncio.Redis.from_url(url, **kwargs)
        except (TypeError, ValueError, redis.RedisError) as exc:
            raise ConfigError(_scrub(f"bad Redis URL {redact(url)!r}: {exc}", secrets)) from None
        _check(client.connection_pool, url, secrets)
        return cls(client, url, secrets)

    async def get(self, key: str, refresh: float | None = None) -> bytes | None:
        """Concurrent GETs of one loop tick share a pipeline (stores/autopipeline.py)."""
        with self._errors("GET"):
            reply = await self._gets.get(key, None if refresh is None else ms(refresh))
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
            runs = batches(keys, _UNLINK_BATCH)
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
            return {
                name: float(new) for name, new in zip(amounts, await pipe.execute(), strict=True)
            }

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
