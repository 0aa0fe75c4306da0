"""The dashboard's rollups (service/rollups.py) on a real store with an injected clock: exact counts,
periods, retention, lanes taken over, bounded names, mergeable percentiles."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from llmemo.service.rollup_data import Bucket, latency_bucket, percentile
from llmemo.service.rollup_report import WINDOWS
from llmemo.service.rollups import LEASE, Rollups, read_stats
from llmemo.stores import keys
from llmemo.stores.sqlite import AsyncSQLiteStore, SQLiteStore

T0 = 1_700_000_000.0 - 1_700_000_000.0 % 3600  # the start of an hour
PREFIX = "llmemo"


class Clock:
    def __init__(self, now: float = T0 + 5) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> AsyncSQLiteStore:
    return AsyncSQLiteStore(SQLiteStore(tmp_path / "r.db", clock=clock))


def rollups(store: AsyncSQLiteStore, clock: Clock, **options: Any) -> Rollups:
    r = Rollups(clock=clock, **options)
    r.bind(store, PREFIX, lambda: "closed")
    return r


async def stats(store: AsyncSQLiteStore, clock: Clock, window: str = "hour", **kw: Any) -> Any:
    return await read_stats(store, PREFIX, WINDOWS[window], clock(), **kw)


def known_mix(r: Rollups) -> None:
    """3 exact hits, 1 semantic, 1 stale, 2 misses, 1 bypass over two namespaces and tenants."""
    for _ in range(3):
        r.answered("hit", None, "gpt-4o-mini", "t1", 0.0004, (15, 0.001))
    r.answered("semantic", "faq", "gpt-4o-mini", "t2", 0.02, (10, 0.002))
    r.similar("served", 0.934)
    r.answered("stale", None, "gpt-4o-mini", "t1", 0.0005, (5, 0.0005))
    r.answered("miss", "faq", "gpt-4o", "t2", 0.8, spent=0.01)
    r.answered("miss", None, "gpt-4o", "t1", 1.2, spent=0.02)
    r.answered("hit", None, "gpt-4o", "t1", 0.9, (7, 0.003), shared=True)
    r.answered("bypass", None, "gpt-4o", "t1", 1.0)
    r.upstream_took(0.79)
    r.refused("numbers", 2)
    r.near("numbers", 0.91)
    r.count("wrong_hit")
    r.count("rate_limited", 3)


@pytest.mark.asyncio
async def test_a_known_mix_gives_exactly_those_counts(
    store: AsyncSQLiteStore, clock: Clock
) -> None:
    r = rollups(store, clock)
    known_mix(r)
    assert await r.flush()
    got = await stats(store, clock)
    totals = got["totals"]
    assert {k: totals[k] for k in ("requests", "exact", "semantic", "stale", "miss", "bypass")} == {
        "requests": 9, "exact": 4, "semantic": 1, "stale": 1, "miss": 2, "bypass": 1,
    }  # fmt: skip
    assert totals["tokens_saved"] == 3 * 15 + 10 + 5 + 7
    assert totals["dollars_saved"] == pytest.approx(0.003 + 0.002 + 0.0005 + 0.003)
    assert totals["dollars_spent"] == pytest.approx(0.03)
    assert got["series"][-1]["requests"] == 9 and sum(p["requests"] for p in got["series"]) == 9
    assert got["series"][-1]["t"] == T0 and len(got["series"]) == 60
    assert got["instances"] == 1
    by = {row["name"]: row for row in got["by"]["namespace"]}
    assert (by["faq"]["requests"], by["faq"]["hits"]) == (2, 1)
    assert (by["default"]["requests"], by["default"]["hits"], by["default"]["hit_ratio"]) == (
        7, 5, round(5 / 7, 4),
    )  # fmt: skip
    assert {row["name"] for row in got["by"]["tenant"]} == {"t1", "t2"}
    semantic = got["semantic"]
    assert [b for b in semantic["served"] if b[2]] == [[0.93, 0.94, 1]]
    assert [b for b in semantic["near_miss"] if b[2]] == [[0.91, 0.92, 1]]
    assert semantic["guard_refusals"] == {"numbers": 2} and semantic["wrong_hit_reports"] == 1
    health = got["health"]
    assert health["singleflight"] == {"leaders": 2, "followers": 1}
    assert health["rate_limited"] == 3 and health["breaker"] == "closed"
    assert health["store_ms"]["p50"] == 0  # the first write was not timed yet
    hit = totals["latency_ms"]["hit"]
    assert 0.35 < hit["p50"] < 0.6 and 700 < hit["p99"] < 1100
    filtered = (await stats(store, clock, where=("namespace", "faq")))["totals"]
    assert (filtered["requests"], filtered["semantic"], filtered["miss"]) == (2, 1, 1)
    assert filtered["dollars_spent"] == pytest.approx(0.01)


@pytest.mark.asyncio
async def test_each_write_replaces_the_last_so_nothing_counts_twice(
    store: AsyncSQLiteStore, clock: Clock
) -> None:
    r = rollups(store, clock)
    r.answered("hit", None, "m", None, 0.001)
    await r.flush()
    await r.flush()  # nothing new: the same totals written again
    r.answered("miss", None, "m", None, 0.5)
    clock.now += 1
    await r.flush()
    totals = (await stats(store, clock))["totals"]
    assert (totals["exact"], totals["miss"]) == (1, 1)
    assert (await stats(store, clock))["health"]["store_ms"]["p50"] > 0


@pytest.mark.asyncio
async def test_periods_roll_over_and_every_window_sees_them(
    store: AsyncSQLiteStore, clock: Clock
) -> None:
    r = rollups(store, clock)
    for minute in range(12):  # one answer a minute for 12 minutes: two 10-minute buckets
        clock.now = T0 + 60 * minute + 30
        r.answered("hit", None, "m", None, 0.001)
        await r.flush()
    hour = await stats(store, clock)
    assert [p["requests"] for p in hour["series"][-12:]] == [1] * 12
    day = await stats(store, clock, "day")
    assert [p["requests"] for p in day["series"][-2:]] == [10, 2]
    assert day["series"][-1]["t"] == T0 + 600
    week = await stats(store, clock, "week")
    assert week["series"][-1]["requests"] == 12 and week["totals"]["requests"] == 12
    finished = keys.rollup_key(PREFIX, "m", int(T0), 0)
    assert await store.get(finished) is not None  # a finished minute has its own key


@pytest.mark.asyncio
async def test_buckets_expire_with_the_retention(store: AsyncSQLiteStore, clock: Clock) -> None:
    r = rollups(store, clock, retention=3 * 86400.0)
    r.answered("hit", None, "m", None, 0.001)
    await r.flush()
    clock.now = T0 + 3600 + 5  # the next hour: the first hour's buckets are finished
    await r.flush()
    minute, hour = (keys.rollup_key(PREFIX, level, int(T0), 0) for level in ("m", "h"))
    assert await store.get(minute) is not None and await store.get(hour) is not None
    clock.now = T0 + 3605 + 86400 + 1  # minute buckets serve the hour window only: kept a day
    assert await store.get(minute) is None and await store.get(hour) is not None
    assert (await stats(store, clock, "week"))["totals"]["requests"] == 1
    clock.now = T0 + 3 * 86400 + 3700  # past the retention: gone on their own
    assert await store.get(hour) is None
    assert await store.get(keys.rollup_current(PREFIX, 0)) is None
    assert (await stats(store, clock, "week"))["totals"]["requests"] == 0


@pytest.mark.asyncio
async def test_a_new_instance_takes_a_dead_ones_lane_and_keeps_its_counts(
    store: AsyncSQLiteStore, clock: Clock
) -> None:
    dead = rollups(store, clock, instance="dead")
    dead.answered("miss", None, "m", None, 0.5)
    await dead.flush()  # then the process is gone: no close, its lease runs out
    clock.now += LEASE + 1
    alive = rollups(store, clock, instance="alive")
    running = rollups(store, clock, instance="other")
    alive.answered("hit", None, "m", None, 0.001)
    await alive.flush()
    running.answered("hit", None, "m", None, 0.001)
    await running.flush()
    assert (alive.lane, running.lane) == (0, 1)
    got = await stats(store, clock, "day")
    assert got["totals"]["requests"] == 3 and got["instances"] == 3
    assert (await stats(store, clock, "week"))["totals"]["requests"] == 3


@pytest.mark.asyncio
async def test_names_are_bounded_and_the_rest_is_other(
    store: AsyncSQLiteStore, clock: Clock
) -> None:
    r = rollups(store, clock, max_names=10)
    for i in range(50):
        for _ in range(50 - i):  # ns0 has the most requests
            r.answered("miss", f"ns{i}", "m", f"t{i}", 0.1)
    await r.flush()
    got = await stats(store, clock)
    rows = got["by"]["namespace"]
    assert [row["name"] for row in rows][:9] == [f"ns{i}" for i in range(9)]
    assert rows[-1]["name"] == "other" and len(rows) == 10
    assert sum(row["requests"] for row in rows) == got["totals"]["requests"] == 50 * 51 // 2
    stored = await store.get(keys.rollup_current(PREFIX, 0))
    assert stored is not None and b'"t9"' not in stored  # tenants capped too


@pytest.mark.asyncio
async def test_closing_writes_what_is_left(store: AsyncSQLiteStore, clock: Clock) -> None:
    r = rollups(store, clock, interval=3600)
    r.start()
    await asyncio.sleep(0)
    r.answered("hit", None, "m", None, 0.001)
    await r.aclose()
    assert (await stats(store, clock))["totals"]["exact"] == 1


def test_merged_histograms_give_the_percentiles_of_all_the_values() -> None:
    values = [0.001 * (1 + i % 50) for i in range(1000)] + [2.0] * 20  # 1-50 ms, and 2 s
    one, two = Bucket("m", 0), Bucket("m", 0)
    for i, value in enumerate(values):
        side = one if i % 3 else two
        histogram = side.latency.setdefault("hit", {})
        histogram[latency_bucket(value)] = histogram.get(latency_bucket(value), 0) + 1
    one.merge(two)
    exact = sorted(values)
    for q in (0.5, 0.99):
        truth = exact[int(q * len(exact)) - 1] * 1000
        assert percentile(one.latency["hit"], q) == pytest.approx(truth, rel=0.13)


@pytest.mark.asyncio
async def test_an_instance_over_the_lane_limit_waits_and_says_so_once(
    store: AsyncSQLiteStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    first = rollups(store, clock, max_lanes=1)
    first.answered("hit", None, "m", None, 0.001)
    await first.flush()
    crowded = rollups(store, clock, max_lanes=1)
    crowded.answered("miss", None, "m", None, 0.5)
    for _ in range(3):
        assert not await crowded.flush()
    assert crowded.lane is None and caplog.text.count("rollup lanes are taken") == 1
    assert (await stats(store, clock))["totals"]["requests"] == 1
    await first.aclose()  # gives its lane up
    assert not await crowded.flush()  # tried again a minute after the last try, not at once
    clock.now += 61
    assert await crowded.flush() and crowded.lane == 0
    assert (await stats(store, clock))["totals"]["requests"] == 2


@pytest.mark.asyncio
async def test_flushes_at_once_write_every_finished_bucket(
    store: AsyncSQLiteStore, clock: Clock
) -> None:
    r = rollups(store, clock)
    for minute in range(3):
        clock.now = T0 + 60 * minute + 1
        r.answered("hit", None, "m", None, 0.001)
        r.fold(clock.now)  # two finished minutes wait for the next write
    await asyncio.gather(r.flush(), r.flush(), r.flush())
    for minute in range(2):
        assert await store.get(keys.rollup_key(PREFIX, "m", int(T0) + 60 * minute, 0)) is not None
    hour = await stats(store, clock)
    assert [p["requests"] for p in hour["series"][-3:]] == [1, 1, 1]
