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
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from llmemo.errors import ConfigError, StoreError, require
from llmemo.stores.base import Counters

require("upstash_redis", "upstash")

import httpx  # noqa: E402
import upstash_redis  # noqa: E402
import upstash_redis.asyncio  # noqa: E402
from upstash_redis.errors import UpstashError  # noqa: E402

SCHEMES = ("upstash", "upstash+https", "upstash+http")
ENV_URL, ENV_TOKEN = "UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN"
DEFAULT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT = 1.0, 2.0
_OPTIONS = ("timeout", "connect_timeout", "retries")
_RETRY_INTERVAL = 0.05  # a retry is for a dropped keep-alive connection: no point waiting long
_KEYS_PER_REQUEST = 1000  # keeps an UNLINK well under Upstash's 1 MB request limit
P = TypeVar("P", upstash_redis.client.Pipeline, upstash_redis.asyncio.client.AsyncPipeline)

_DELETE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_EXPIRE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
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


@dataclass(frozen=True)
class UpstashConfig:
    """Where and how to reach one database; `url` is safe to show (the token is redacted)."""

    rest_url: str
    token: str = field(repr=False)
    url: str
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    retries: int = 0


def parse_url(url: str, environ: Mapping[str, str] | None = None, **options: Any) -> UpstashConfig:
    """Read an `upstash://` URL (see the module doc); options are keyword defaults the query overrides."""
    env = os.environ if environ is None else environ
    scheme = url.split("://", 1)[0].lower() if isinstance(url, str) and "://" in url else ""
    parts = urlsplit(url) if scheme in SCHEMES else None
    if parts is None:
        raise ConfigError(
            "not an Upstash URL; expected upstash://:TOKEN@HOST, upstash+http://:TOKEN@HOST:PORT"
            f" or upstash:// with ${ENV_URL} and ${ENV_TOKEN} set"
        )
    host = parts.netloc.rpartition("@")[2]
    if parts.username and parts.password is None:
        raise ConfigError(
            f"put the Upstash token after a colon, {scheme}://:***@{host}, so logs redact it"
        )
    token = unquote(parts.password or "") or env.get(ENV_TOKEN, "")
    if host:
        rest_url = f"{'http' if scheme == 'upstash+http' else 'https'}://{host}{parts.path}"
    elif parts.path.strip("/"):
        raise ConfigError(f"an Upstash URL with a path needs a host: {scheme}://:***@HOST/path")
    else:
        rest_url = env.get(ENV_URL, "").strip()
    rest_url = rest_url.rstrip("/")
    if not rest_url:
        raise ConfigError(f"no Upstash REST URL: give upstash://:TOKEN@HOST or set ${ENV_URL}")
    if not token:
        raise ConfigError(f"no Upstash REST token: give upstash://:TOKEN@HOST or set ${ENV_TOKEN}")
    try:
        target = httpx.URL(rest_url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"bad Upstash REST URL {rest_url!r}: {exc}") from None
    if target.scheme not in ("http", "https") or not target.host:
        raise ConfigError(f"the Upstash REST URL must be http(s)://HOST, not {rest_url!r}")
    shown = "upstash+http" if target.scheme == "http" else "upstash"
    where = rest_url.split("://", 1)[1]
    return UpstashConfig(
        rest_url, token, f"{shown}://:***@{where}", **_options(parts.query, options)
    )


def _options(query: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
    given = {**{k: v for k, v in defaults.items() if v is not None}, **dict(parse_qsl(query))}
    unknown = sorted(set(given) - set(_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown Upstash option(s) {unknown}; known: {', '.join(_OPTIONS)}")
    out: dict[str, Any] = {}
    for name, value in given.items():
        kind = int if name == "retries" else float
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"Upstash option {name}={value!r} is not a number") from None
        if number < 0 or (number == 0 and kind is float):
            raise ConfigError(f"Upstash option {name}={value!r} must be positive")
        out[name] = number
    return out


def encode(value: bytes) -> str:
    """How a value is stored: base64 text (see the module doc)."""
    return base64.b64encode(value).decode("ascii")


def decode(text: str | None) -> bytes | None:
    """A stored value's bytes; text this store did not write comes back as-is (a corrupt entry)."""
    if text is None:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text.encode()


def head_chars(size: int) -> int:
    """How many base64 characters hold the first `size` bytes (whole 4-character groups)."""
    return -(-size // 3) * 4


def _ms(seconds: float) -> int:
    """A TTL in whole milliseconds; at least 1 because Redis refuses PX 0."""
    return max(1, round(seconds * 1000))


def _batches(keys: Sequence[str]) -> list[list[str]]:
    return [list(keys[i : i + _KEYS_PER_REQUEST]) for i in range(0, len(keys), _KEYS_PER_REQUEST)]


def _heads(size: int, found: list[str | None]) -> list[bytes | None]:
    out: list[bytes | None] = []
    for text in found:
        value = decode(text)
        out.append(None if value is None else value[:size])
    return out


def _unseen(found: list[str], seen: set[str]) -> list[str]:
    """Keys of one SCAN page not yielded before (SCAN may repeat a key while Redis rehashes)."""
    batch = [key for key in dict.fromkeys(found) if key not in seen]
    seen.update(batch)
    return batch


def _queue_incr(pipe: P, key: str, amounts: Counters) -> P:
    # HINCRBYFLOAT for ints too: HINCRBY would refuse a field that once received a float.
    for name, amount in amounts.items():
        pipe.hincrbyfloat(key, name, amount)
    return pipe


class RestError(Exception):
    """An HTTP error answer (401 wrong token, 400 command failed, 5xx), raised before the SDK parses it.

    The SDK ignores the status and misreads an error object where it expects a pipeline's list.
    """

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")


def _rest_error(response: httpx.Response) -> RestError:
    try:
        body = response.json()
    except ValueError:
        body = None
    items = body if isinstance(body, list) else [body]
    errors = [i["error"] for i in items if isinstance(i, dict) and isinstance(i.get("error"), str)]
    return RestError(response.status_code, errors[0] if errors else response.reason_phrase)


def _check_status(response: httpx.Response) -> None:
    if response.status_code >= 400:
        response.read()
        raise _rest_error(response)


async def _acheck_status(response: httpx.Response) -> None:
    if response.status_code >= 400:
        await response.aread()
        raise _rest_error(response)


def _timeout(config: UpstashConfig) -> httpx.Timeout:
    return httpx.Timeout(config.timeout, connect=config.connect_timeout)


def _http_of(sdk: object, kind: type) -> Any:
    http = getattr(getattr(sdk, "_http", None), "_client", None)
    if not isinstance(http, kind):
        raise ConfigError(
            f"upstash-redis {upstash_redis.__version__} has no httpx client where llmemo sets its "
            "timeout: pip install 'upstash-redis>=1.4,<2'"
        )
    return http


def _sdk_options(config: UpstashConfig) -> dict[str, Any]:
    return {
        "url": config.rest_url,
        "token": config.token,
        "rest_encoding": None,  # stored values are ASCII (base64): plain JSON text is smaller
        "rest_retries": config.retries,
        "rest_retry_interval": _RETRY_INTERVAL,
        "allow_telemetry": False,
        # True makes the SDK add a header to a dict that other threads' requests are reading.
        "read_your_writes": False,
    }


# Everything the SDK (and httpx under it) raises for a failed request or an unreadable answer.
_FAILURES = (RestError, UpstashError, httpx.HTTPError, OSError, ValueError, KeyError, TypeError)


class _Boundary:
    """What both twins share: the redacted URL and the one place SDK errors are translated."""

    url: str
    _secrets: Sequence[str]

    @contextmanager
    def _errors(self, command: str) -> Iterator[None]:
        try:
            yield
        except _FAILURES as exc:
            text = " ".join(str(exc).split()) or "no detail"
            for secret in self._secrets:
                text = text.replace(secret, "***")
            message = f"upstash {command} failed on {self.url}: {type(exc).__name__}: {text}"
            raise StoreError(message) from exc


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
        client = upstash_redis.Redis(**_sdk_options(config))
        http: httpx.Client = _http_of(client, httpx.Client)
        http.timeout = _timeout(config)
        http.event_hooks = {**http.event_hooks, "response": [_check_status]}
        return cls(client, config.url, [config.token])

    def get(self, key: str, refresh: float | None = None) -> bytes | None:
        with self._errors("GET"):
            if refresh is None:
                return decode(self.client.get(key))
            return decode(self.client.getex(key, px=_ms(refresh)))

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        with self._errors("SET"):
            self.client.set(key, encode(value), px=None if ttl is None else _ms(ttl))

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        with self._errors("SET NX"):
            return bool(self.client.set(key, encode(value), nx=True, px=_ms(ttl)))

    def delete(self, keys: Sequence[str]) -> int:
        with self._errors("UNLINK"):
            return sum(self.client.unlink(*batch) for batch in _batches(keys))

    def delete_if_equal(self, key: str, value: bytes) -> bool:
        with self._errors("EVAL delete_if_equal"):
            return bool(self.client.eval(_DELETE_IF_EQUAL, [key], [encode(value)]))

    def expire_if_equal(self, key: str, value: bytes, ttl: float) -> bool:
        with self._errors("EVAL expire_if_equal"):
            args = [encode(value), str(_ms(ttl))]
            return bool(self.client.eval(_EXPIRE_IF_EQUAL, [key], args))

    def scan(self, pattern: str, count: int = 500) -> Iterator[list[str]]:
        seen: set[str] = set()
        cursor = 0
        while True:
            with self._errors("SCAN"):
                cursor, found = self.client.scan(cursor, match=pattern, count=count)
            batch = _unseen(found, seen)
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
        return {name: float(cast("float", new)) for name, new in zip(amounts, results, strict=True)}

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
        client = upstash_redis.asyncio.Redis(**_sdk_options(config))
        http: httpx.AsyncClient = _http_of(client, httpx.AsyncClient)
        http.timeout = _timeout(config)
        http.event_hooks = {**http.event_hooks, "response": [_acheck_status]}
        return cls(client, config.url, [config.token])

    async def get(self, key: str, refresh: float | None = None) -> bytes | None:
        with self._errors("GET"):
            if refresh is None:
                return decode(await self.client.get(key))
            return decode(await self.client.getex(key, px=_ms(refresh)))

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        with self._errors("SET"):
            await self.client.set(key, encode(value), px=None if ttl is None else _ms(ttl))

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        with self._errors("SET NX"):
            return bool(await self.client.set(key, encode(value), nx=True, px=_ms(ttl)))

    async def delete(self, keys: Sequence[str]) -> int:
        with self._errors("UNLINK"):
            return sum([await self.client.unlink(*batch) for batch in _batches(keys)])

    async def delete_if_equal(self, key: str, value: bytes) -> bool:
        with self._errors("EVAL delete_if_equal"):
            return bool(await self.client.eval(_DELETE_IF_EQUAL, [key], [encode(value)]))

    async def expire_if_equal(self, key: str, value: bytes, ttl: float) -> bool:
        with self._errors("EVAL expire_if_equal"):
            args = [encode(value), str(_ms(ttl))]
            return bool(await self.client.eval(_EXPIRE_IF_EQUAL, [key], args))

    async def scan(self, pattern: str, count: int = 500) -> AsyncIterator[list[str]]:
        seen: set[str] = set()
        cursor = 0
        while True:
            with self._errors("SCAN"):
                cursor, found = await self.client.scan(cursor, match=pattern, count=count)
            batch = _unseen(found, seen)
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
        return {name: float(cast("float", new)) for name, new in zip(amounts, results, strict=True)}

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
