"""Rate limits with the `limits` library: /v1/warm per caller, and upstream misses per tenant.

Moving windows, kept in Redis when the service's store is Redis (so every instance shares one
count), in memory otherwise. Hits are never limited: the miss limit is checked only by the
single-flight leader right before it calls the upstream. When the limiter itself fails (Redis
down), requests are allowed (fail open), counted in `llmemo_ratelimit_errors`, and a circuit
breaker stops paying the timeouts.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisClusterStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import ConfigurationError, StorageError
from prometheus_client import CollectorRegistry, Counter

from llmemo.core.breaker import CircuitBreaker
from llmemo.errors import ConfigError
from llmemo.service.errors import Flavour, UpstreamError, error_body
from llmemo.stores import keys
from llmemo.stores.base import redact

log = logging.getLogger("llmemo.service.ratelimit")
# Short timeouts: a slow limiter must not slow every request (it fails open instead).
_REDIS_OPTIONS: dict[str, float | str | bool] = {
    "socket_connect_timeout": 1.0,
    "socket_timeout": 0.5,
}
_REDIS_SCHEMES = {"redis", "rediss", "unix"}
_CLUSTER_SCHEMES = {"redis+cluster": "redis+cluster", "rediss+cluster": "redis+cluster"}
_FAILURES = (StorageError, OSError, TimeoutError)


def parse_limit(value: str, name: str) -> RateLimitItem:
    """`10/10 seconds`, `100 per minute`...; ConfigError naming the setting otherwise."""
    try:
        return parse(value)
    except ValueError:
        raise ConfigError(
            f"{name}: {value!r} is not a rate limit (e.g. '10/10 seconds', '100 per minute')"
        ) from None


@dataclass(frozen=True)
class Decision:
    """One limiter answer; `reset` is the Unix time when the window frees a slot."""

    allowed: bool
    limit: int
    remaining: int
    reset: float

    def headers(self, now: float | None = None) -> dict[str, str]:
        """`X-RateLimit-Limit/Remaining/Reset` (Reset in Unix seconds), and `Retry-After` if denied."""
        headers = {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(max(0, self.remaining)),
            "x-ratelimit-reset": str(math.ceil(self.reset)),
        }
        if not self.allowed:
            wait = self.reset - (time.time() if now is None else now)
            headers["retry-after"] = str(max(1, math.ceil(wait)))
        return headers


class RateLimitedError(UpstreamError):
    """429 in the provider's shape, with `Retry-After` (answered like a provider's own 429)."""

    def __init__(self, decision: Decision, flavour: Flavour, message: str) -> None:
        kind = "rate_limit_error" if flavour == "anthropic" else "rate_limit_exceeded"
        body = orjson.dumps(error_body(flavour, kind, message))
        super().__init__(429, body, {**decision.headers(), "content-type": "application/json"})
        self.decision = decision


def storage_for(store_url: str, prefix: str = keys.limits_prefix()) -> Storage:
    """The `limits` storage for a store URL: Redis for a Redis store, memory for anything else."""
    parts = urlsplit(store_url)
    scheme = parts.scheme.lower()
    if scheme in _REDIS_SCHEMES:
        uri = ("async+redis+" if scheme == "unix" else "async+") + store_url
        return RedisStorage(
            uri, wrap_exceptions=True, implementation="redispy", key_prefix=prefix, **_REDIS_OPTIONS
        )
    if scheme in _CLUSTER_SCHEMES:
        uri = urlunsplit(("async+redis+cluster", parts.netloc, "", "", ""))
        options: dict[str, Any] = {**_REDIS_OPTIONS, "ssl": scheme.startswith("rediss")}
        return RedisClusterStorage(
            uri, wrap_exceptions=True, implementation="redispy", key_prefix=prefix, **options
        )
    return MemoryStorage()


class RateLimits:
    """The service's limiters. `warm` (per caller) is always on; `miss` (per tenant) is optional."""

    def __init__(
        self,
        warm: str,
        miss: str | None,
        store_url: str,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.warm_limit = parse_limit(warm, "warm_rate_limit")
        self.miss_limit = parse_limit(miss, "miss_rate_limit") if miss else None
        self.store_url = store_url
        self.clock = clock
        self.breaker = CircuitBreaker()
        self.limited = Counter(
            "llmemo_rate_limited",
            "Requests answered 429 by llmemo's own rate limits, by limit (warm, miss).",
            ["limit"],
            registry=registry,
        )
        self.errors = Counter(
            "llmemo_ratelimit_errors",
            "Rate-limit checks that failed (limiter store down) and were allowed (fail open).",
            registry=registry,
        )
        self._storage: Storage | None = None
        self._limiter: MovingWindowRateLimiter | None = None

    async def open(self) -> None:
        """Connect the storage (lazily: no round trip here). Call inside the serving loop."""
        try:
            self._storage = storage_for(self.store_url)
        except ConfigurationError as exc:  # e.g. a redis-py too old for limits' asyncio bridge
            raise ConfigError(
                f"the rate limiter cannot use {redact(self.store_url)}: {exc}"
            ) from None
        self._limiter = MovingWindowRateLimiter(self._storage)

    async def aclose(self) -> None:
        storage, self._storage, self._limiter = self._storage, None, None
        client = getattr(getattr(storage, "bridge", None), "storage", None)
        if client is not None:
            await client.aclose()

    async def hit(self, item: RateLimitItem, *identity: str) -> Decision | None:
        """Count one request; the decision, or None when the limiter failed (allowed)."""
        limiter = self._limiter
        if limiter is None or not self.breaker.allow():
            self.errors.inc()
            return None
        try:
            allowed = await limiter.hit(item, *identity)
            stats = await limiter.get_window_stats(item, *identity)
        except _FAILURES as exc:
            self.breaker.failure()
            self.errors.inc()
            log.warning("rate limiter failed, allowing the request: %s", type(exc).__name__)
            return None
        self.breaker.success()
        return Decision(allowed, item.amount, stats.remaining, stats.reset_time)

    async def check_warm(self, caller: str) -> Decision | None:
        """Count a /v1/warm request of this caller; a denied decision is answered with 429."""
        decision = await self.hit(self.warm_limit, "warm", caller)
        if decision is not None and not decision.allowed:
            self.limited.labels("warm").inc()
        return decision

    async def check_miss(self, tenant: str | None, flavour: Flavour) -> None:
        """Before a miss goes upstream: raise RateLimitedError when the tenant is over its limit."""
        if self.miss_limit is None:
            return
        decision = await self.hit(self.miss_limit, "miss", tenant or "shared")
        if decision is not None and not decision.allowed:
            self.limited.labels("miss").inc()
            raise RateLimitedError(
                decision,
                flavour,
                f"Too many uncached requests: this caller's limit is {self.miss_limit} "
                "(cached answers are not limited). Retry after the Retry-After seconds.",
            )
