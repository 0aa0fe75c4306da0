"""Per-minute rollups of what the service answered, kept in the store for `/admin/stats`.

On the request path an answer only adds to plain in-process counters (`Rollups.answered`; no lock,
no clock, no I/O). Every `interval` seconds one background task folds them into this instance's
buckets of the current minute, ten minutes and hour, and writes them to the store in one call:
the instance's *current* record (`~dash:cur:{lane}`), which holds the three buckets as they are so
far plus its breaker state and recent store errors. When a period ends, its finished bucket is
written once under its own key (`~dash:{m|t|h}:{start}:{lane}`). Every key expires with the
retention (7 days by default); minute buckets after a day (they serve the last hour only).

A bucket holds one instance's running totals, rewritten whole at each flush, so a failed write is
simply retried by the next one and nothing is counted twice. Instances are told apart by a lane
(a small number held with a lease, `~dash:lane:{n}`): a new process takes the lowest free lane and
carries on its buckets, so the keys a reader must look at stay bounded by the number of instances
running at once (the lanes ever used are listed in the `~dash:lanes` counters).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from bisect import bisect_right
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from llmemo.core import AsyncCache
from llmemo.errors import StoreError
from llmemo.service.rollup_data import (
    LATENCY_BOUNDS,
    LATENCY_BUCKETS,
    STATUSES,
    Bucket,
    cap_names,
    decode,
    latency_bucket,
    similarity_bucket,
)
from llmemo.service.rollup_report import LEVELS, WINDOWS, Filter, Window, build
from llmemo.stores import AsyncStore, keys

log = logging.getLogger("llmemo.service")

LEASE = 300.0  # seconds a lane stays taken without its owner renewing it (once a minute)
MINUTE_KEEP = 86400.0  # minute buckets serve the hour window: kept a day at most
MAX_ERRORS = 20
MAX_FINISHED = 2000  # finished buckets kept for writing while the store is away (~1 day)
_READ_SIZE = 1 << 24  # bytes read of each rollup value (`heads`): all of it
# the metrics' labels of an answer: route, model label, status, namespace, tenant
Labels = tuple[str, str, str, str | None, str | None]


class Rollups:
    """This instance's rollups: counted in process, written to the store by `flush`."""

    def __init__(
        self,
        *,
        namespace: str = "default",
        interval: float = 2.0,
        retention: float = 7 * 86400.0,
        max_names: int = 100,
        max_lanes: int = 64,
        clock: Callable[[], float] = time.time,
        instance: str | None = None,
    ) -> None:
        self.namespace = namespace  # the service's own: a request that names none
        self.interval = interval
        self.retention = retention
        self.max_names = max_names
        self.max_lanes = max_lanes
        self.clock = clock
        self.instance = instance or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.store: AsyncStore | None = None
        self.prefix = "llmemo"
        self.breaker: Callable[[], str] = lambda: "closed"
        self.sources: list[Callable[[], Mapping[str, float]]] = []
        """Cumulative counters read at each flush (their growth is counted): rate limits, warm."""
        self._seen: dict[str, float] = {}
        self.before_fold: Callable[[], None] | None = None  # the metrics' drain
        # counted since the last fold (status, namespace, model label, tenant), folded by `fold`
        self._counts: dict[tuple[str, str | None, str, str | None], int] = {}
        # (namespace, model, tenant) -> [tokens saved, dollars saved, dollars spent]
        self._money: dict[tuple[str | None, str, str | None], list[float]] = {}
        self._latency = {kind: [0] * LATENCY_BUCKETS for kind in ("hit", "miss", "upstream")}
        self._events: dict[str, float] = {}
        self._similarity: dict[str, dict[int, int]] = {"served": {}, "near": {}}
        self._guard: dict[str, int] = {}
        self._store_ms: dict[int, int] = {}
        self.errors: list[tuple[float, str]] = []
        # this instance's buckets of the current periods, and finished ones not written yet
        self.current: dict[str, Bucket] = {}
        self._finished: list[Bucket] = []
        self.lane: int | None = None
        self._seq = 0
        self._renewed = 0.0
        self._task: asyncio.Task[None] | None = None
        self._writing: asyncio.Lock | None = None  # made in the serving loop, on first use
        self._crowded = False  # said once that every lane was taken

    # -- counting: plain in-process counters -------------------------------------------------

    def take(
        self,
        counts: Mapping[Labels, int],
        saved: Mapping[Labels, tuple[int, float]],
        latencies: Mapping[str, list[float]],
    ) -> None:
        """Add what the service's metrics counted since their last drain (service/metrics.py:
        the request path counts once, for both)."""
        mine = self._counts
        for (_, name, status, namespace, tenant), n in counts.items():
            key = (status, namespace, name, tenant)
            mine[key] = mine.get(key, 0) + n
        for (_, name, _, namespace, tenant), (tokens, dollars) in saved.items():
            self._add_money(namespace, name, tenant, tokens, dollars, 0.0)
        histogram = self._latency["hit"]
        for values in latencies.values():
            for seconds in values:
                histogram[bisect_right(LATENCY_BOUNDS, seconds)] += 1

    def answered(
        self,
        status: str,
        namespace: str | None,
        model: str,
        tenant: str | None,
        seconds: float,
        saved: tuple[int, float] = (0, 0.0),
        spent: float = 0.0,
        shared: bool = False,
    ) -> None:
        """Count one answer (`status`: hit, semantic, stale, miss or bypass; `shared`: it waited
        for another request's call), as `take` counts the metrics' ones."""
        key = (status, namespace, model, tenant)
        self._counts[key] = self._counts.get(key, 0) + 1
        if saved[0] or saved[1] or spent:
            self._add_money(namespace, model, tenant, saved[0], saved[1], spent)
        if status == "miss":
            self.missed(seconds)
        elif status != "bypass":
            self._latency["hit"][bisect_right(LATENCY_BOUNDS, seconds)] += 1
        if shared:
            self.count("followers")

    def spent(self, namespace: str | None, model: str, tenant: str | None, dollars: float) -> None:
        """What an upstream call (a miss or a bypass) cost, at list prices."""
        self._add_money(namespace, model, tenant, 0, 0.0, dollars)

    def missed(self, seconds: float) -> None:
        """The time a miss took, the upstream call included."""
        self._latency["miss"][bisect_right(LATENCY_BOUNDS, seconds)] += 1

    def _add_money(
        self,
        namespace: str | None,
        model: str,
        tenant: str | None,
        tokens: int,
        saved: float,
        spent: float,
    ) -> None:
        key = (namespace, model, tenant)
        row = self._money.get(key)
        if row is None:
            self._money[key] = [tokens, saved, spent]
        else:
            row[0] += tokens
            row[1] += saved
            row[2] += spent

    def upstream_took(self, seconds: float) -> None:
        self._latency["upstream"][bisect_right(LATENCY_BOUNDS, seconds)] += 1

    def count(self, name: str, amount: float = 1) -> None:
        """Add to a counter of the API (`rate_limited`, `wrong_hit`, `warm_runs`...)."""
        self._events[name] = self._events.get(name, 0) + amount

    def similar(self, kind: str, similarity: float) -> None:
        """A semantic candidate: `served`, or `near` (refused, or below the threshold)."""
        bins = self._similarity[kind]
        index = similarity_bucket(similarity)
        bins[index] = bins.get(index, 0) + 1

    def refused(self, reason: str, amount: int = 1) -> None:
        """A semantic candidate refused (threshold, numbers, negation, verifier...)."""
        self._guard[reason] = self._guard.get(reason, 0) + amount

    def store_error(self, error: BaseException) -> None:
        self.errors.append((self.clock(), f"{type(error).__name__}: {error}"[:300]))
        del self.errors[:-MAX_ERRORS]

    # -- folding and writing ----------------------------------------------------------------

    def fold(self, now: float) -> None:
        """Move what was counted since the last fold into the buckets of the periods of `now`;
        buckets whose period ended are queued for writing."""
        pending = Bucket("m", 0, owners={self.instance})
        counts, self._counts = self._counts, {}
        money, self._money = self._money, {}
        c = pending.c
        by: dict[str, dict[str, list[float]]] = {"namespace": {}, "model": {}, "tenant": {}}
        n_statuses = len(STATUSES)

        def add(
            namespace: str | None, model: str, tenant: str | None, index: int, x: float
        ) -> None:
            for dimension, value in (
                ("namespace", namespace or self.namespace),
                ("model", model),
                ("tenant", tenant or "-"),
            ):
                row = by[dimension].get(value)
                if row is None:
                    row = by[dimension][value] = [0.0] * (n_statuses + 3)
                row[index] += x

        for (status, namespace, model, tenant), n in counts.items():
            name = "exact" if status == "hit" else status
            c[name] = c.get(name, 0) + n
            if name == "miss":
                c["leaders"] = c.get("leaders", 0) + n
            add(namespace, model, tenant, STATUSES.index(name), n)
        for (namespace, model, tenant), amounts in money.items():
            for offset, field in enumerate(("tokens_saved", "dollars_saved", "dollars_spent")):
                if amounts[offset]:
                    c[field] = c.get(field, 0) + amounts[offset]
                    add(namespace, model, tenant, n_statuses + offset, amounts[offset])
        for dimension, named in by.items():
            if named:
                cap_names(named, self.max_names)
                pending.by[dimension] = named
        for kind, histogram in self._latency.items():
            if any(histogram):
                pending.latency[kind] = {i: n for i, n in enumerate(histogram) if n}
                self._latency[kind] = [0] * LATENCY_BUCKETS
        if self._store_ms:
            pending.latency["store"], self._store_ms = self._store_ms, {}
        events, self._events = self._events, {}
        for name, amount in events.items():
            c[name] = c.get(name, 0) + amount
        for name, total in self._sampled().items():
            c[name] = c.get(name, 0) + total
        for kind, bins in self._similarity.items():
            if bins:
                pending.similarity[kind] = bins
        self._similarity = {"served": {}, "near": {}}
        pending.guard, self._guard = self._guard, {}
        for level, seconds in LEVELS.items():
            start = int(now // seconds) * seconds
            bucket = self.current.get(level)
            if bucket is not None and bucket.start != start:
                self._finished.append(bucket)
                del self._finished[:-MAX_FINISHED]  # the store is away for long: keep the last
                bucket = None
            if bucket is None:
                bucket = self.current[level] = Bucket(level, start, owners={self.instance})
            bucket.merge(pending, self.max_names)

    def _sampled(self) -> dict[str, float]:
        """The growth of the `sources` counters since the last flush."""
        grown: dict[str, float] = {}
        for source in self.sources:
            for name, total in source().items():
                delta = total - self._seen.get(name, 0.0)
                self._seen[name] = total
                if delta > 0:
                    grown[name] = grown.get(name, 0) + delta
        return grown

    def bind(self, store: AsyncStore, prefix: str, breaker: Callable[[], str]) -> None:
        """Write to this store, under this key prefix; `breaker`: the cache's circuit state."""
        self.store, self.prefix, self.breaker = store, prefix, breaker
        self._sampled()  # from now on

    def attach(self, cache: AsyncCache) -> None:
        """Keep the rollups of this cache's answers in its store; start the flush loop."""
        self.bind(cache.backend, cache.prefix, lambda: cache.breaker.state)
        if cache.semantic is not None:
            cache.semantic.near_misses = self.near
        self.start()

    def near(self, reason: str, similarity: float) -> None:
        """A semantic candidate refused for `reason` (the guard's, or the threshold)."""
        self.similar("near", similarity)

    def ttl(self, level: str) -> float:
        return min(self.retention, MINUTE_KEEP) if level == "m" else self.retention

    def record(self, now: float) -> dict[str, Any]:
        """This instance's current record: its buckets so far, breaker state and store errors."""
        return {
            "v": 1,
            "lane": self.lane,
            "instance": self.instance,
            "at": now,
            "breaker": self.breaker(),
            "errors": self.errors,
            "buckets": {level: b.as_dict() for level, b in self.current.items()},
        }

    async def flush(self) -> bool:
        """Fold, then write this instance's record (and any finished bucket): True when written.
        One flush at a time (the loop's and an /admin/stats request's)."""
        if self._writing is None:
            self._writing = asyncio.Lock()
        async with self._writing:
            return await self._flush()

    async def _flush(self) -> bool:
        now = self.clock()
        if self.before_fold is not None:
            self.before_fold()
        self.fold(now)
        store = self.store
        if store is None:
            return False
        self._seq += 1
        for bucket in self.current.values():
            bucket.seq = self._seq
        try:
            if now - self._renewed >= LEASE / 5:  # renew ours, or try for one, once a minute
                await self._hold_lane(store, now)
            if self.lane is None:
                return False
            while self._finished:
                bucket = self._finished[0]
                key = keys.rollup_key(self.prefix, bucket.level, bucket.start, self.lane)
                await store.set(key, bucket.encode(), self.ttl(bucket.level))
                self._finished.pop(0)
            started = time.perf_counter()
            value = orjson.dumps(self.record(now))
            await store.set(keys.rollup_current(self.prefix, self.lane), value, self.retention)
            index = latency_bucket(time.perf_counter() - started)
            self._store_ms[index] = self._store_ms.get(index, 0) + 1
        except StoreError as exc:
            self.store_error(exc)
            self._renewed = 0.0  # check the lane at the next write: the store may come back empty
            return False
        return True

    async def _hold_lane(self, store: AsyncStore, now: float) -> None:
        """Take a lane (the lowest free one) or renew ours."""
        token = self.instance.encode()
        if self.lane is not None:
            key = keys.rollup_lane(self.prefix, self.lane)
            if await store.expire_if_equal(key, token, LEASE):
                self._renewed = now
                return
            self.lane = None  # lost (the store was away longer than the lease): take one again
        for lane in range(self.max_lanes):
            if await store.add(keys.rollup_lane(self.prefix, lane), token, LEASE):
                await store.incr(keys.rollup_lanes(self.prefix), {str(lane): 1})
                await self._adopt(store, lane)
                self.lane, self._renewed = lane, now
                return
        self._renewed = now  # tried again in a minute, not at every flush
        if not self._crowded:
            self._crowded = True
            log.warning(
                "llmemo: all %d rollup lanes are taken (LLMEMO_DASHBOARD_MAX_INSTANCES): this "
                "instance's rollups are not kept until one is free",
                self.max_lanes,
            )

    async def _adopt(self, store: AsyncStore, lane: int) -> None:
        """Carry on the buckets the lane's previous owner left: those of the current periods are
        merged into ours, older ones are written as finished."""
        old = decode(await store.get(keys.rollup_current(self.prefix, lane)))
        if old is None or old.get("instance") == self.instance:
            return
        for data in old.get("buckets", {}).values():
            bucket = Bucket.from_dict(data)
            if bucket is None:
                continue
            same = [b for b in self._finished if (b.level, b.start) == (bucket.level, bucket.start)]
            mine = self.current.get(bucket.level)
            if mine is not None and mine.start == bucket.start:
                mine.merge(bucket, self.max_names)
            elif same:  # ours of that period, waiting to be written: one key holds both
                same[0].merge(bucket, self.max_names)
            else:
                self._finished.append(bucket)

    async def run(self) -> None:
        """Flush every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:  # never let the loop die: the next flush tries again
                log.exception("llmemo: rollup flush failed")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self.run())

    async def aclose(self) -> None:
        """Stop the loop, write what is left and give the lane up (the next instance to start
        takes it at once and carries on its buckets)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if await self.flush() and self.store is not None and self.lane is not None:
            key = keys.rollup_lane(self.prefix, self.lane)
            with contextlib.suppress(StoreError):
                await self.store.delete_if_equal(key, self.instance.encode())
            self.lane = None


# -- reading ------------------------------------------------------------------------------------


async def read_stats(
    store: AsyncStore,
    prefix: str,
    window: Window,
    now: float,
    where: Filter = None,
    live_for: float = 30.0,
) -> dict[str, Any]:
    """The /admin/stats answer for `window`, from every instance's rollups in the store."""
    lanes = sorted(int(name) for name in await store.counters(keys.rollup_lanes(prefix)))
    starts = window.starts(now)
    wanted = [keys.rollup_current(prefix, lane) for lane in lanes]
    wanted += [keys.rollup_key(prefix, window.level, s, lane) for s in starts for lane in lanes]
    values = await store.heads(wanted, _READ_SIZE) if wanted else []
    currents = [d for d in map(decode, values[: len(lanes)]) if d is not None]
    chosen: dict[tuple[int, int], Bucket] = {}  # (start, lane) -> the newest copy
    for i, raw in enumerate(values[len(lanes) :]):
        bucket = Bucket.from_dict(decode(raw) or {})
        if bucket is not None:
            chosen[(starts[i // len(lanes)], lanes[i % len(lanes)])] = bucket
    for current in currents:
        data = current.get("buckets", {}).get(window.level)
        bucket = Bucket.from_dict(data or {})
        lane = current.get("lane")
        if bucket is None or not isinstance(lane, int) or bucket.start not in starts:
            continue
        other = chosen.get((bucket.start, lane))
        if other is None or bucket.seq >= other.seq:
            chosen[(bucket.start, lane)] = bucket
    series = [Bucket(window.level, start) for start in starts]
    position = {start: i for i, start in enumerate(starts)}
    for (start, _lane), bucket in chosen.items():
        series[position[start]].merge(bucket)
    return build(window, now, series, currents, where, live_for=live_for)


def window_of(name: str | None) -> Window | None:
    return WINDOWS.get(name or "hour")
