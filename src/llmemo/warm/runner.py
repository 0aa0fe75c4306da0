"""The Warmer: runs warm items against an AsyncCache and an upstream caller, a few at a time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from llmemo.core import AsyncCache
from llmemo.core.entry import Usage, usage_of
from llmemo.core.facade import Hit
from llmemo.core.pricing import cost
from llmemo.errors import ConfigError, CorruptEntryError, LLMemoError, StoreError
from llmemo.warm.items import InvalidItem, Parsed, WarmItem, check_refresh_before
from llmemo.warm.results import ItemResult, Report, Status, Summary

log = logging.getLogger("llmemo.warm")

Caller = Callable[[WarmItem], Awaitable[Mapping[str, Any]]]
TenantOf = Callable[[WarmItem], "str | None"]


def refresh_due(hit: Hit, refresh_before: float | None) -> bool:
    """Should warming replace this entry: stale, or within `refresh_before` x TTL of expiring?"""
    if hit.stale:
        return True
    remaining = hit.remaining
    if refresh_before is None or hit.ttl is None or remaining is None:
        return False
    return remaining <= refresh_before * hit.ttl


class Warmer:
    """Runs warm items against one AsyncCache and an upstream caller, `concurrency` at a time.

    tenant: the scope an item's entry belongs to (the proxy keys entries by tenant; None: shared).
    skip_keys: store keys known to be warm already (a resume journal): reported fresh, not read.
    """

    def __init__(
        self,
        cache: AsyncCache,
        call: Caller,
        *,
        concurrency: int = 8,
        refresh_before: float | None = None,
        tenant: TenantOf | None = None,
        skip_keys: Iterable[str] = (),
    ) -> None:
        if concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
        self.cache = cache
        self.call = call
        self.concurrency = concurrency
        self.refresh_before = check_refresh_before(refresh_before)
        self.tenant = tenant
        self.skip_keys = set(skip_keys)

    async def run(
        self,
        items: Iterable[tuple[int, Parsed]],
        on_result: Callable[[ItemResult], object] | None = None,
        stop: asyncio.Event | None = None,
    ) -> Report:
        """Warm numbered items; `stop` set: no new item starts, those under way finish."""
        pending = iter(items)
        summary, results = Summary(), []

        async def worker() -> None:
            for index, item in pending:  # shared by the workers: each item is taken once
                if stop is not None and stop.is_set():
                    return
                result = await self.warm_one(index, item)
                summary.add(result)
                results.append(result)
                if on_result is not None:
                    on_result(result)

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        results.sort(key=lambda r: r.index)
        return Report(summary, results)

    async def warm_one(self, index: int, item: Parsed) -> ItemResult:
        """Warm one item; never raises for the item's own problems (they are its result)."""
        if isinstance(item, InvalidItem):
            return ItemResult(index, "failed", reason=item.reason, id=item.id)
        cache = self.cache
        request = item.request(cache.normalisation)
        tenant = self.tenant(item) if self.tenant is not None else None
        done = _Done(index, item.model, item.id)
        try:
            options = item.options(tenant)
            key = await cache.entry_key(request, **options.storing())
        except ConfigError as exc:  # a ttl over the cache's max_ttl (or over ten years)
            return done("failed", reason=str(exc))
        except StoreError as exc:  # nothing could be stored: do not pay for the upstream call
            return done("failed", reason=f"store unavailable: {exc}")
        try:
            if key in self.skip_keys:
                return done("fresh", key, reason="journal")
            refresh = options.refresh
            if not refresh:
                hit = await self._peek(key)
                if hit is not None and not refresh_due(hit, self.refresh_before):
                    return done("fresh", key)
                refresh = hit is not None
        except StoreError as exc:  # nothing could be stored: do not pay for the upstream call
            return done("failed", reason=f"store unavailable: {exc}")

        async def ask() -> Mapping[str, Any]:
            return await self.call(item)

        try:
            result = await cache.compute(
                request, ask, **replace(options, refresh=refresh).options()
            )
        except Exception as exc:  # one item's failure is its result, never the batch's
            log.warning("warming item %d failed: %s", index, _reason(exc))
            return done("failed", key, reason=_reason(exc))
        if result.status != "miss":  # answered by another caller meanwhile
            return done("fresh", key)
        usage = usage_of(result.response)
        spent = cost(item.model or _str(result.response.get("model")), usage, cache.prices)
        if result.stored:
            return done("stored", key, usage=usage, cost=spent)
        reason = f"not cacheable: {result.skipped}" if result.skipped else "the store failed"
        return done("failed", key, reason=reason, usage=usage, cost=spent)

    async def _peek(self, key: str) -> Hit | None:
        """The entry at `key` without counting a hit or touching its TTL (corrupt: absent)."""
        try:
            return await self.cache.get_key(key)
        except CorruptEntryError:
            return None


@dataclass(frozen=True)
class _Done:
    index: int
    model: str | None
    id: str | None

    def __call__(
        self,
        status: Status,
        key: str | None = None,
        *,
        reason: str | None = None,
        usage: Usage | None = None,
        cost: float = 0.0,
    ) -> ItemResult:
        return ItemResult(
            self.index, status, key, self.model, reason, usage or Usage(), cost, self.id
        )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text if isinstance(exc, LLMemoError) and text else f"{type(exc).__name__}: {text}"


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
