"""Cache counters: kept in memory, flushed to the store in batches (never a round trip on a hit)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CacheStats:
    """Totals for a namespace (all processes, when read back from the store)."""

    hits: int = 0
    semantic_hits: int = 0
    stale_hits: int = 0
    revalidations: int = 0
    semantic_errors: int = 0
    misses: int = 0
    stores: int = 0
    skips: int = 0
    bypasses: int = 0
    store_errors: int = 0
    corrupt: int = 0
    undecryptable: int = 0  # encrypted entries this cache could not open (docs/privacy.md)
    tokens_saved: int = 0
    dollars_saved: float = 0.0
    feedback_wrong_hit: int = 0  # semantic hits reported wrong (core/feedback.py)
    skip_reasons: dict[str, int] = field(default_factory=dict)
    skipped_sensitive: dict[str, int] = field(default_factory=dict)
    """Answers not stored for sensitive content, by category found (core/sensitive.py)."""
    source: str = "store"

    @property
    def lookups(self) -> int:
        return self.hits + self.semantic_hits + self.misses

    @property
    def hit_rate(self) -> float:
        return (self.hits + self.semantic_hits) / self.lookups if self.lookups else 0.0

    @classmethod
    def from_counters(cls, counters: dict[str, float], source: str = "store") -> CacheStats:
        reasons = {k[5:]: int(v) for k, v in counters.items() if k.startswith("skip:")}
        sensitive = {k[10:]: int(v) for k, v in counters.items() if k.startswith("sensitive:")}
        ints = {
            name: int(counters.get(name, 0))
            for name in (
                "hits", "semantic_hits", "stale_hits", "revalidations", "semantic_errors", "misses", "stores", "skips", "bypasses",
                "store_errors", "corrupt", "undecryptable", "tokens_saved", "feedback_wrong_hit",
            )
        }  # fmt: skip
        return cls(
            **ints,
            dollars_saved=float(counters.get("dollars_saved", 0.0)),
            skip_reasons=reasons,
            skipped_sensitive=sensitive,
            source=source,
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "hits": self.hits,
            "semantic_hits": self.semantic_hits,
            "stale_hits": self.stale_hits,
            "revalidations": self.revalidations,
            "semantic_errors": self.semantic_errors,
            "misses": self.misses,
            "hit_rate": round(self.hit_rate, 4),
            "stores": self.stores,
            "skips": self.skips,
            "skip_reasons": dict(self.skip_reasons),
            "skipped_sensitive": dict(self.skipped_sensitive),
            "bypasses": self.bypasses,
            "store_errors": self.store_errors,
            "corrupt": self.corrupt,
            "undecryptable": self.undecryptable,
            "tokens_saved": self.tokens_saved,
            "dollars_saved": round(self.dollars_saved, 6),
            "feedback_wrong_hit": self.feedback_wrong_hit,
            "source": self.source,
        }


class StatsBuffer:
    """Thread-safe pending increments, drained by whoever flushes them to the store."""

    def __init__(self) -> None:
        self._pending: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, name: str, amount: float = 1) -> None:
        with self._lock:
            self._pending[name] = self._pending.get(name, 0) + amount

    def add_many(self, amounts: Iterable[tuple[str, float]]) -> None:
        with self._lock:
            for name, amount in amounts:
                self._pending[name] = self._pending.get(name, 0) + amount

    def drain(self) -> dict[str, float]:
        with self._lock:
            pending = {k: v for k, v in self._pending.items() if v}
            self._pending.clear()
            return pending

    def restore(self, pending: dict[str, float]) -> None:
        """Put back what could not be flushed (the store was down), so nothing is lost."""
        with self._lock:
            for name, amount in pending.items():
                self._pending[name] = self._pending.get(name, 0) + amount

    def peek(self) -> dict[str, float]:
        with self._lock:
            return dict(self._pending)
