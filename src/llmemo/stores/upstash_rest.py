"""The REST wire under the Upstash stores: values as base64 text, the SDK's httpx client set to
fail fast (timeout, HTTP status checked), the commands both stores send, and the one place its
errors become StoreError.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from llmemo.errors import ConfigError, StoreError, require
from llmemo.stores.protocol import Counters
from llmemo.stores.upstash_url import UpstashConfig

require("upstash_redis", "upstash")

import httpx  # noqa: E402
import upstash_redis  # noqa: E402
import upstash_redis.asyncio  # noqa: E402
from upstash_redis.errors import UpstashError  # noqa: E402

_RETRY_INTERVAL = 0.05  # a retry is for a dropped keep-alive connection: no point waiting long
C = TypeVar("C")


def encode(value: bytes) -> str:
    """How a value is stored: base64 text (see `llmemo.stores._async.upstash`)."""
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


def _heads(size: int, found: list[str | None]) -> list[bytes | None]:
    out: list[bytes | None] = []
    for text in found:
        value = decode(text)
        out.append(None if value is None else value[:size])
    return out


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


def _sdk(
    make: Callable[..., C],
    kind: type,
    check: Callable[[httpx.Response], Awaitable[None] | None],
    config: UpstashConfig,
) -> C:
    """An SDK client for `config` whose httpx client (of type `kind`) fails fast: timeout, `check`."""
    client = make(**_sdk_options(config))
    http = _http_of(client, kind)
    http.timeout = _timeout(config)
    http.event_hooks = {**http.event_hooks, "response": [check]}
    return client


# Everything the SDK (and httpx under it) raises for a failed request or an unreadable answer.
FAILURES = (RestError, UpstashError, httpx.HTTPError, OSError, ValueError, KeyError, TypeError)


class _Boundary:
    """What both twins share: the redacted URL and the one place SDK errors are translated."""

    url: str
    _secrets: Sequence[str]

    @contextmanager
    def _errors(self, command: str) -> Iterator[None]:
        try:
            yield
        except FAILURES as exc:
            text = " ".join(str(exc).split()) or "no detail"
            for secret in self._secrets:
                text = text.replace(secret, "***")
            message = f"upstash {command} failed on {self.url}: {type(exc).__name__}: {text}"
            raise StoreError(message) from exc


KEYS_PER_REQUEST = 1000  # keeps an UNLINK well under Upstash's 1 MB request limit
P = TypeVar("P", upstash_redis.client.Pipeline, upstash_redis.asyncio.client.AsyncPipeline)

# One request for any number of keys. TYPE tells a missing key (and a counters hash) from an
# empty value, which GETRANGE alone cannot; `false` becomes a null reply.
HEADS_SCRIPT = """
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
