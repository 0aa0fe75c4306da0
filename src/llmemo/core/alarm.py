"""Warnings about a failing store. The cache fails open (a store error is a miss), so without
these a dead or misspelt store would look like a cache that never hits."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from llmemo.errors import StoreError, UndecryptableError

log = logging.getLogger("llmemo.cache")


class StoreAlarm:
    """Logs a WARNING on a store error at most once per `interval` seconds (the next one says how
    many were held back), and when the store's circuit opens or closes.

    An open is logged under the same limit; its close is logged when the open was. `store` gives
    the store's URL with any password redacted (called only when something is logged). It holds
    no reference to its cache (a cycle would delay closing the cache's connections to a GC pass).
    """

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._next_error = float("-inf")
        self._held_errors = 0
        self._next_open = float("-inf")
        self._held_opens = 0
        self._open_logged = False
        self._next_undecryptable = float("-inf")
        self._held_undecryptable = 0

    def error(self, exc: StoreError, store: Callable[[], str]) -> None:
        """A store call failed (the cache answered without it)."""
        now = self.clock()
        with self._lock:
            if now < self._next_error:
                self._held_errors += 1
                return
            held, self._held_errors = self._held_errors, 0
            self._next_error = now + self.interval
        cause = exc.__cause__
        kind = type(cause).__name__ if cause is not None else type(exc).__name__
        detail = str(exc) if kind in str(exc) else f"{kind}: {exc}"
        log.warning(
            "llmemo: the store %s failed, so the cache is failing open (calls go to the provider "
            "uncached): %s%s",
            store(),
            detail,
            self._held("store error", held),
        )

    def undecryptable(self, exc: UndecryptableError) -> None:
        """An entry could not be decrypted (a miss). The message names a key id at most."""
        now = self.clock()
        with self._lock:
            if now < self._next_undecryptable:
                self._held_undecryptable += 1
                return
            held, self._held_undecryptable = self._held_undecryptable, 0
            self._next_undecryptable = now + self.interval
        log.warning(
            "llmemo: an entry could not be decrypted, so it is a miss: %s%s",
            exc,
            self._held("undecryptable entry", held),
        )

    def circuit(self, opened: bool, retry: float, store: Callable[[], str]) -> None:
        """The circuit breaker opened (the store is skipped) or closed (it is used again)."""
        now = self.clock()
        with self._lock:
            if opened:
                if now < self._next_open:
                    self._held_opens += 1
                    self._open_logged = False
                    return
                held, self._held_opens = self._held_opens, 0
                self._next_open = now + self.interval
                self._open_logged = True
            elif not self._open_logged:
                return
            else:
                self._open_logged = False
        if opened:
            log.warning(
                "llmemo: the store %s keeps failing: circuit open, the cache skips it and tries "
                "again every %g s%s",
                store(),
                retry,
                self._held("circuit opening", held),
            )
        else:
            log.warning("llmemo: the store %s answers again: circuit closed", store())

    def _held(self, what: str, held: int) -> str:
        if not held:
            return ""
        plural = "s" if held > 1 else ""
        return f" ({held} more {what}{plural} since the last warning, not logged)"
