"""What both Redis stores share, without I/O: URL options, reply pairing, the error boundary.

The stores themselves are in `stores/_async/redis.py` (and its generated sync twin).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from llmemo.errors import ConfigError, StoreError, require
from llmemo.stores.protocol import Counters
from llmemo.stores.urls import redact

require("redis", "redis")

import redis  # noqa: E402
import redis.asyncio  # noqa: E402
import redis.asyncio.cluster  # noqa: E402

SCHEMES = ("redis", "rediss", "unix")
# Overridable by keyword or by the URL query (`?socket_timeout=2`), which wins, as in redis-py.
DEFAULT_OPTIONS: dict[str, Any] = {"socket_connect_timeout": 1.0, "socket_timeout": 0.5}
# One immediate retry, on a broken connection only: a pooled connection that Redis (a restart,
# its idle `timeout`) or a proxy closed is replaced instead of failing one call per connection.
# Timeouts are not retried: a slow store must fail within one socket timeout.
RETRIES, RETRY_ON = 1, (redis.ConnectionError,)
UNLINK_BATCH = 500
# Clients whose MULTI cannot be used: redis-py's asyncio cluster MULTI fails (a future on another
# loop); the sync cluster client runs it. Readers pipeline without MULTI on these (`isinstance`).
AsyncNoMulti: tuple[type, ...] = (redis.asyncio.cluster.RedisCluster,)
NoMulti: tuple[type, ...] = ()
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
