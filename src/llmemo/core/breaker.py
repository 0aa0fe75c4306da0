"""A circuit breaker so a dead store costs nothing per call, and recovery is probed automatically."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class CircuitBreaker:
    """closed -> (threshold consecutive failures) -> open -> (after reset seconds) -> one probe.

    While open, `allow()` is False and the cache skips the store entirely (a miss, no timeout paid).
    After `reset` seconds one caller is let through as a probe; its success closes the circuit, its
    failure re-opens it for another `reset` seconds. `on_change(True)` is called when the circuit
    opens, `on_change(False)` when it closes again (outside the lock; a failed probe that re-opens
    it is no change).
    """

    threshold: int = 3
    reset: float = 5.0
    clock: Callable[[], float] = time.monotonic
    on_change: Callable[[bool], None] | None = None
    _failures: int = field(default=0, init=False)
    _opened_at: float | None = field(default=None, init=False)
    _probing: bool = field(default=False, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self.clock() - self._opened_at >= self.reset:
                return "half-open"
            return "open"

    @property
    def closed(self) -> bool:
        """The store is in use as normal (no lock: a read of one attribute)."""
        return self._opened_at is None

    def allow(self) -> bool:
        """May the next call use the store?"""
        if self._opened_at is None:  # closed: the hot path takes no lock
            return True
        with self._lock:
            if self._opened_at is None:
                return True
            if self._probing or self.clock() - self._opened_at < self.reset:
                return False
            self._probing = True
            return True

    def success(self) -> None:
        if self._failures == 0 and self._opened_at is None and not self._probing:
            return  # already closed: nothing to reset, no lock on the hot path
        with self._lock:
            closes = self._opened_at is not None
            self._failures = 0
            self._opened_at = None
            self._probing = False
        if closes and self.on_change is not None:
            self.on_change(False)

    def failure(self) -> None:
        opens = False
        with self._lock:
            self._failures += 1
            if self._probing or self._failures >= self.threshold:
                opens = self._opened_at is None
                self._opened_at = self.clock()
            self._probing = False
        if opens and self.on_change is not None:
            self.on_change(True)
