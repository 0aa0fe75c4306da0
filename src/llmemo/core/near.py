"""The near cache: entries this process read or wrote lately, kept in memory for about a second.

A hot prompt asked thousands of times a second costs one store read per second instead of one
per request (microcaching). What is kept is the entry's stored bytes, decoded again on every
hit, so no two callers ever share a response object.

How stale it can be: a change made through this cache object (a store, delete, invalidate) is
seen at once. A change made by another process (another service instance deleting, refreshing
or invalidating an entry) is seen here within `ttl` seconds, the same bound the cache already
has for a namespace's version (`version_ttl`, 1 s by default). An entry is never kept past its
own expiry, and never while it is stale (stale-while-revalidate).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from llmemo.core.durations import Duration, seconds
from llmemo.errors import ConfigError


class NearCache:
    """Bounded in-process copies of store values: `ttl` seconds each, `max_bytes` in all.

    Thread-safe: reads are single dict operations; writes and evictions take a lock. When full,
    the entries put in longest ago go first. `clock`: seconds, monotonic (injected in tests).
    """

    __slots__ = ("_bytes", "_entries", "_lock", "clock", "max_bytes", "max_entry", "ttl")

    def __init__(
        self,
        ttl: float = 1.0,
        max_bytes: int = 32 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl > 0:
            raise ConfigError(f"the near cache's ttl must be positive, got {ttl!r}")
        if max_bytes < 1024:
            raise ConfigError(f"the near cache's max_bytes must be at least 1024, got {max_bytes}")
        self.ttl = float(ttl)
        self.max_bytes = max_bytes
        self.max_entry = max_bytes // 16  # one huge answer never pushes out all the others
        self._entries: dict[str, tuple[bytes, float]] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.clock = clock

    def get(self, key: str) -> bytes | None:
        """The value kept for key, or None (never kept, expired, or evicted)."""
        item = self._entries.get(key)
        if item is None:
            return None
        if item[1] > self.clock():
            return item[0]
        self.discard(key)
        return None

    def put(self, key: str, value: bytes, lifetime: float | None = None) -> None:
        """Keep value for min(ttl, lifetime) seconds (lifetime: what the entry has left)."""
        keep = self.ttl if lifetime is None else min(self.ttl, lifetime)
        if keep <= 0 or len(value) > self.max_entry:
            self.discard(key)
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old[0])
            self._entries[key] = (value, self.clock() + keep)
            self._bytes += len(value)
            while self._bytes > self.max_bytes:
                oldest = next(iter(self._entries))
                self._bytes -= len(self._entries.pop(oldest)[0])

    def discard(self, key: str) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old[0])

    def clear(self) -> None:
        with self._lock:
            self._entries = {}
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """Bytes of values kept."""
        return self._bytes


def near_cache(
    option: NearCache | Duration | None, clock: Callable[[], float] = time.monotonic
) -> NearCache | None:
    """The near cache an option asks for: a NearCache as it is; a duration (seconds or "1s")
    for one keeping entries that long (on `clock`); None or 0 for none."""
    if option is None or isinstance(option, NearCache):
        return option
    ttl = seconds(option)
    return NearCache(ttl, clock=clock) if ttl else None
