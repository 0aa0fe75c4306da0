"""The dashboard's rollups as data, without I/O: buckets, mergeable histograms, their stored form.

A bucket holds what one service instance counted during one period (a minute, ten minutes or an
hour): answers by cache status, tokens and dollars, latency and similarity histograms, guard
refusals, and the same status counts by namespace, model and tenant (at most `max_names` names
each; the rest are counted under `other`). Buckets of several instances, or of several periods,
merge by adding their fields: the histograms have fixed log-spaced bounds, so a merged histogram
gives the same p50/p99 as if one process had seen every request.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

FORMAT = 1  # the stored form's version; another one is ignored on read
STATUSES = ("exact", "semantic", "stale", "miss", "bypass")
HIT_STATUSES = ("exact", "semantic", "stale")
DIMENSIONS = ("namespace", "model", "tenant")
LATENCIES = ("hit", "miss", "upstream", "store")
OTHER = "other"
# `c` counters besides the statuses: what the API reports (schema in docs/service.md)
COUNTERS = (
    *STATUSES,
    "tokens_saved", "dollars_saved", "dollars_spent", "leaders", "followers", "rate_limited",
    "warm_runs", "warm_ok", "warm_failed", "wrong_hit",
)  # fmt: skip
# a by-dimension row: the five statuses, then tokens saved, dollars saved, dollars spent
ROW = len(STATUSES) + 3

# Latency histograms: 10 buckets per decade from 1 microsecond; bucket i holds seconds in
# [1e-6 * 10^(i/10), 1e-6 * 10^((i+1)/10)); the last one holds everything from ~1000 s on.
LATENCY_BUCKETS = 90
_PER_DECADE = 10
_LOWEST = 1e-6

# Similarity histograms: 0.01 wide, bucket i holds [i/100, (i+1)/100) (1.0 goes in 99).
SIMILARITY_BUCKETS = 100


def latency_bucket(seconds: float) -> int:
    """The latency histogram bucket of a duration (`bisect_right(LATENCY_BOUNDS, seconds)`)."""
    return bisect_right(LATENCY_BOUNDS, seconds)


LATENCY_BOUNDS = tuple(_LOWEST * 10 ** (i / _PER_DECADE) for i in range(1, LATENCY_BUCKETS))
"""The upper bounds of the latency buckets but the last (for `bisect_right`)."""


def latency_bounds(index: int) -> tuple[float, float]:
    """The (low, high) seconds of a latency bucket."""
    low = 0.0 if index == 0 else _LOWEST * 10 ** (index / _PER_DECADE)
    return low, _LOWEST * 10 ** ((index + 1) / _PER_DECADE)


def similarity_bucket(similarity: float) -> int:
    return max(0, min(SIMILARITY_BUCKETS - 1, int(similarity * SIMILARITY_BUCKETS)))


def percentile(histogram: Mapping[int, int], q: float) -> float:
    """The q-quantile (0..1) of a latency histogram, in milliseconds (0 when it is empty): the
    geometric middle of the bucket it falls in, so within 12 % of the true value."""
    total = sum(histogram.values())
    if not total:
        return 0.0
    rank = q * total
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            low, high = latency_bounds(index)
            middle = math.sqrt(low * high) if low else high / 2
            return round(middle * 1000, 4)
    return 0.0  # not reached: seen ends at total >= rank


def _add_counts(into: dict[Any, Any], more: Mapping[Any, Any]) -> None:
    for key, value in more.items():
        into[key] = into.get(key, 0) + value


@dataclass
class Bucket:
    """One instance's (or a merge of several) counts over one period starting at `start`."""

    level: str  # "m" (a minute), "t" (ten minutes) or "h" (an hour)
    start: int  # epoch seconds
    seq: int = 0  # the writer's flush number: of two copies of a bucket, the higher wins
    owners: set[str] = field(default_factory=set)  # instances that counted into it
    c: dict[str, float] = field(default_factory=dict)
    latency: dict[str, dict[int, int]] = field(default_factory=dict)
    similarity: dict[str, dict[int, int]] = field(default_factory=dict)  # served, near
    guard: dict[str, int] = field(default_factory=dict)
    by: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def merge(self, other: Bucket, max_names: int | None = None) -> None:
        """Add `other`'s counts to this bucket (another instance's, or a shorter period's)."""
        self.owners |= other.owners
        _add_counts(self.c, other.c)
        for kind, histogram in other.latency.items():
            _add_counts(self.latency.setdefault(kind, {}), histogram)
        for kind, histogram in other.similarity.items():
            _add_counts(self.similarity.setdefault(kind, {}), histogram)
        _add_counts(self.guard, other.guard)
        for dimension, rows in other.by.items():
            mine = self.by.setdefault(dimension, {})
            for name, row in rows.items():
                add_row(mine, name, row)
            if max_names is not None:
                cap_names(mine, max_names)

    @property
    def requests(self) -> int:
        return int(sum(self.c.get(status, 0) for status in STATUSES))

    def encode(self) -> bytes:
        return orjson.dumps(self.as_dict())

    def as_dict(self) -> dict[str, Any]:
        return {
            "v": FORMAT,
            "level": self.level,
            "start": self.start,
            "seq": self.seq,
            "owners": sorted(self.owners),
            "c": self.c,
            "latency": {k: {str(i): n for i, n in h.items()} for k, h in self.latency.items()},
            "similarity": {
                k: {str(i): n for i, n in h.items()} for k, h in self.similarity.items()
            },
            "guard": self.guard,
            "by": self.by,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Bucket | None:
        """The bucket a stored dict holds; None for another format or a damaged one."""
        if not isinstance(data, Mapping) or data.get("v") != FORMAT:
            return None
        try:
            return cls(
                level=str(data["level"]),
                start=int(data["start"]),
                seq=int(data.get("seq", 0)),
                owners=set(data.get("owners", ())),
                c={str(k): float(v) for k, v in data.get("c", {}).items()},
                latency=_histograms(data.get("latency", {})),
                similarity=_histograms(data.get("similarity", {})),
                guard={str(k): int(v) for k, v in data.get("guard", {}).items()},
                by={
                    str(dim): {str(name): [float(x) for x in row] for name, row in rows.items()}
                    for dim, rows in data.get("by", {}).items()
                },
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def _histograms(data: Mapping[str, Mapping[str, int]]) -> dict[str, dict[int, int]]:
    return {str(k): {int(i): int(n) for i, n in h.items()} for k, h in data.items()}


def add_row(rows: dict[str, list[float]], name: str, row: Iterable[float]) -> None:
    mine = rows.get(name)
    if mine is None:
        rows[name] = list(row)
        return
    for i, value in enumerate(row):
        mine[i] += value


def row_requests(row: list[float]) -> float:
    return sum(row[: len(STATUSES)])


def cap_names(rows: dict[str, list[float]], max_names: int) -> None:
    """Keep the `max_names` names with the most requests; fold the others into `other`."""
    if len(rows) <= max_names:
        return
    ranked = sorted((n for n in rows if n != OTHER), key=lambda n: -row_requests(rows[n]))
    for name in ranked[max(0, max_names - 1) :]:
        add_row(rows, OTHER, rows.pop(name))


def decode(raw: bytes | None) -> dict[str, Any] | None:
    """A stored rollup value as a dict (None when missing or not JSON)."""
    if raw is None:
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None
