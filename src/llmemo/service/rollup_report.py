"""The answer of `GET /admin/stats` (and `llmemo top`), made of merged rollup buckets (no I/O).

The shape is documented in docs/service.md ("Rollups and /admin/stats"); every key is always
present (0 or empty when there is no data).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmemo.service.rollup_data import (
    DIMENSIONS,
    HIT_STATUSES,
    OTHER,
    SIMILARITY_BUCKETS,
    STATUSES,
    Bucket,
    add_row,
    percentile,
    row_requests,
    similarity_bucket,
)


@dataclass(frozen=True)
class Window:
    """A window of the API: which bucket level it reads and how many buckets."""

    name: str
    level: str
    seconds: int  # one bucket's length
    count: int

    def starts(self, now: float) -> list[int]:
        """The starts of its buckets, oldest first; the last one holds `now`."""
        last = int(now // self.seconds) * self.seconds
        return [last - i * self.seconds for i in range(self.count - 1, -1, -1)]


WINDOWS = {
    "hour": Window("hour", "m", 60, 60),
    "day": Window("day", "t", 600, 144),
    "week": Window("week", "h", 3600, 168),
}
LEVELS = {w.level: w.seconds for w in WINDOWS.values()}
TOP = 20  # names listed per dimension; the rest are summed as `other`
SERVED_FROM = 0.80  # the served-similarity histogram starts here (lower when hits were lower)
NEAR_FROM = 0.50
BREAKER_ORDER = {"closed": 0, "half_open": 1, "open": 2}
MAX_ERRORS = 20

Filter = tuple[str, str] | None  # (dimension, name)


def _counts(bucket: Bucket, where: Filter) -> dict[str, float]:
    """The counters of a bucket, or of one namespace/model/tenant in it."""
    if where is None:
        return bucket.c
    row = bucket.by.get(where[0], {}).get(where[1])
    if row is None:
        return {}
    named = dict(zip(STATUSES, row, strict=False))
    n = len(STATUSES)
    named.update(tokens_saved=row[n], dollars_saved=row[n + 1], dollars_spent=row[n + 2])
    return named


def _figures(bucket: Bucket, where: Filter) -> dict[str, Any]:
    c = _counts(bucket, where)
    figures: dict[str, Any] = {"requests": int(sum(c.get(s, 0) for s in STATUSES))}
    figures.update({status: int(c.get(status, 0)) for status in STATUSES})
    figures["tokens_saved"] = int(c.get("tokens_saved", 0))
    figures["dollars_saved"] = round(c.get("dollars_saved", 0.0), 9)
    figures["dollars_spent"] = round(c.get("dollars_spent", 0.0), 9)
    figures["latency_ms"] = {
        kind: {
            "p50": percentile(bucket.latency.get(kind, {}), 0.5),
            "p99": percentile(bucket.latency.get(kind, {}), 0.99),
        }
        for kind in ("hit", "miss", "upstream")
    }
    return figures


def _breakdown(rows: Mapping[str, list[float]], top: int) -> list[dict[str, Any]]:
    ranked = sorted(rows, key=lambda name: (-row_requests(rows[name]), name))
    listed = [name for name in ranked if name != OTHER][:top]
    rest: dict[str, list[float]] = {}
    for name in ranked:
        if name not in listed:
            add_row(rest, OTHER, rows[name])
    out = []
    n = len(STATUSES)
    for name, row in [*((name, rows[name]) for name in listed), *rest.items()]:
        requests = row_requests(row)
        hits = sum(row[STATUSES.index(s)] for s in HIT_STATUSES)
        out.append(
            {
                "name": name,
                "requests": int(requests),
                "hits": int(hits),
                "hit_ratio": round(hits / requests, 4) if requests else 0.0,
                "tokens_saved": int(row[n]),
                "dollars_saved": round(row[n + 1], 9),
            }
        )
    return out


def _histogram(counts: Mapping[int, int], lowest: float) -> list[list[float]]:
    """`[[lo, hi, count], ...]` 0.01 wide, from `lowest` (or the lowest bucket with counts) to 1."""
    first = similarity_bucket(lowest)
    if counts:
        first = min(first, min(counts))
    return [
        [round(i / SIMILARITY_BUCKETS, 2), round((i + 1) / SIMILARITY_BUCKETS, 2), counts.get(i, 0)]
        for i in range(first, SIMILARITY_BUCKETS)
    ]


def build(
    window: Window,
    now: float,
    series: Sequence[Bucket],
    currents: Sequence[Mapping[str, Any]],
    where: Filter = None,
    top: int = TOP,
    live_for: float = 30.0,
) -> dict[str, Any]:
    """The /admin/stats answer: `series` are the window's buckets (merged across instances, oldest
    first), `currents` the instances' latest reports (breaker state, recent store errors);
    an instance that reported within `live_for` seconds counts for the breaker state."""
    total = Bucket(window.level, series[0].start if series else 0)
    for bucket in series:
        total.merge(bucket)
    since = series[0].start if series else now - window.seconds * window.count
    breakers = [
        {"instance": str(cur.get("instance", "")), "state": str(cur.get("breaker", "closed"))}
        for cur in currents
        if float(cur.get("at", 0)) >= now - live_for
    ]
    worst = max(
        (b["state"] for b in breakers), key=lambda s: BREAKER_ORDER.get(s, 0), default="closed"
    )
    recent = sorted(
        (
            (float(at), str(text))
            for cur in currents
            for at, text in cur.get("errors", ())
            if float(at) >= since
        ),
        reverse=True,
    )[:MAX_ERRORS]
    errors = [{"at": at, "error": text} for at, text in recent]
    c = total.c
    return {
        "window": window.name,
        "bucket_seconds": window.seconds,
        "now": round(now, 3),
        "instances": len(total.owners),
        "filter": None if where is None else {where[0]: where[1]},
        "totals": _figures(total, where),
        "series": [{"t": bucket.start, **_figures(bucket, where)} for bucket in series],
        "by": {dim: _breakdown(total.by.get(dim, {}), top) for dim in DIMENSIONS},
        "semantic": {
            "served": _histogram(total.similarity.get("served", {}), SERVED_FROM),
            "near_miss": _histogram(total.similarity.get("near", {}), NEAR_FROM),
            "guard_refusals": dict(sorted(total.guard.items())),
            "wrong_hit_reports": int(c.get("wrong_hit", 0)),
        },
        "health": {
            "store_ms": {
                "p50": percentile(total.latency.get("store", {}), 0.5),
                "p99": percentile(total.latency.get("store", {}), 0.99),
            },
            "breaker": worst,
            "breakers": breakers,
            "store_errors": errors,
            "singleflight": {
                "leaders": int(c.get("leaders", 0)),
                "followers": int(c.get("followers", 0)),
            },
            "rate_limited": int(c.get("rate_limited", 0)),
            "warm": {
                "runs": int(c.get("warm_runs", 0)),
                "items_ok": int(c.get("warm_ok", 0)),
                "items_failed": int(c.get("warm_failed", 0)),
            },
        },
    }
