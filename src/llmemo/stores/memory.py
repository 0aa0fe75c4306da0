"""An in-process store: a dict with expiry. For tests, notebooks and one-process scripts."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

from llmemo.stores.glob import glob_regex
from llmemo.stores.protocol import Counters, Store


class MemoryStore:
    """Thread-safe dict store; `clock` is injectable so TTL tests need not sleep."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, url: str = "memory://") -> None:
        self.url = url
        self._clock = clock
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._hashes: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> MemoryStore:
        return cls(url=url)

    def _deadline(self, ttl: float | None) -> float | None:
        return None if ttl is None else self._clock() + ttl

    def _live(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, deadline = item
        if deadline is not None and deadline <= self._clock():
            del self._data[key]
            return None
        return value

    def get(self, key: str, refresh: float | None = None) -> bytes | None:
        with self._lock:
            value = self._live(key)
            if value is not None and refresh is not None:
                self._data[key] = (value, self._deadline(refresh))
            return value

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        with self._lock:
            self._data[key] = (bytes(value), self._deadline(ttl))

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        with self._lock:
            if self._live(key) is not None:
                return False
            self._data[key] = (bytes(value), self._deadline(ttl))
            return True

    def delete(self, keys: Sequence[str]) -> int:
        with self._lock:
            gone = 0
            for key in keys:
                # A counters hash is a key too, as in Redis.
                if self._live(key) is not None or key in self._hashes:
                    gone += 1
                self._data.pop(key, None)
                self._hashes.pop(key, None)
            return gone

    def delete_if_equal(self, key: str, value: bytes) -> bool:
        with self._lock:
            if self._live(key) == value:
                del self._data[key]
                return True
            return False

    def expire_if_equal(self, key: str, value: bytes, ttl: float) -> bool:
        with self._lock:
            if self._live(key) == value:
                self._data[key] = (value, self._deadline(ttl))
                return True
            return False

    def scan(self, pattern: str, count: int = 500) -> Iterator[list[str]]:
        regex = glob_regex(pattern)
        with self._lock:
            keys = [k for k in list(self._data) if regex.fullmatch(k) and self._live(k) is not None]
        for i in range(0, len(keys), count):
            yield keys[i : i + count]

    def scan_page(self, pattern: str, cursor: str = "", count: int = 500) -> tuple[str, list[str]]:
        """One page of keys in key order after `cursor` (the last key of the page before)."""
        regex = glob_regex(pattern)
        with self._lock:
            found = [k for k in list(self._data) if k > cursor and regex.fullmatch(k)]
            keys = sorted(k for k in found if self._live(k) is not None)
        page = keys[: max(1, count)]
        return ("" if len(keys) <= len(page) else page[-1]), page

    def swap(self, key: str, old: bytes, new: bytes) -> bool:
        with self._lock:
            if self._live(key) != old:
                return False
            self._data[key] = (new, self._data[key][1])
            return True

    def swap_many(self, items: Sequence[tuple[str, bytes, bytes]]) -> list[bool]:
        return [self.swap(key, old, new) for key, old, new in items]

    def heads(self, keys: Sequence[str], size: int) -> list[bytes | None]:
        with self._lock:
            out: list[bytes | None] = []
            for key in keys:
                value = self._live(key)
                out.append(None if value is None else value[:size])
            return out

    def incr(self, key: str, amounts: Counters) -> dict[str, float]:
        with self._lock:
            table = self._hashes.setdefault(key, {})
            for name, amount in amounts.items():
                table[name] = table.get(name, 0) + amount
            return {name: table[name] for name in amounts}

    def counters(self, key: str) -> dict[str, float]:
        with self._lock:
            return dict(self._hashes.get(key, {}))

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None


class DirectAsyncStore:
    """The asyncio face of a sync store whose calls do not block (no I/O): calls are direct, no
    threads. Also what tests use to drive a sync store through the AsyncStore contract."""

    def __init__(self, store: Store) -> None:
        self.sync = store
        self.url = store.url

    async def get(self, key: str, refresh: float | None = None) -> bytes | None:
        return self.sync.get(key, refresh)

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        self.sync.set(key, value, ttl)

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        return self.sync.add(key, value, ttl)

    async def delete(self, keys: Sequence[str]) -> int:
        return self.sync.delete(keys)

    async def delete_if_equal(self, key: str, value: bytes) -> bool:
        return self.sync.delete_if_equal(key, value)

    async def expire_if_equal(self, key: str, value: bytes, ttl: float) -> bool:
        return self.sync.expire_if_equal(key, value, ttl)

    async def scan(self, pattern: str, count: int = 500) -> AsyncIterator[list[str]]:
        for batch in self.sync.scan(pattern, count):
            yield batch

    async def heads(self, keys: Sequence[str], size: int) -> list[bytes | None]:
        return self.sync.heads(keys, size)

    async def incr(self, key: str, amounts: Counters) -> dict[str, float]:
        return self.sync.incr(key, amounts)

    async def counters(self, key: str) -> dict[str, float]:
        return self.sync.counters(key)

    async def ping(self) -> None:
        self.sync.ping()

    async def close(self) -> None:
        self.sync.close()


class AsyncMemoryStore(DirectAsyncStore):
    """The asyncio face of a MemoryStore."""

    sync: MemoryStore

    def __init__(self, store: MemoryStore | None = None) -> None:
        super().__init__(store or MemoryStore())

    async def scan_page(
        self, pattern: str, cursor: str = "", count: int = 500
    ) -> tuple[str, list[str]]:
        return self.sync.scan_page(pattern, cursor, count)

    async def swap(self, key: str, old: bytes, new: bytes) -> bool:
        return self.sync.swap(key, old, new)

    async def swap_many(self, items: Sequence[tuple[str, bytes, bytes]]) -> list[bool]:
        return self.sync.swap_many(items)

    @classmethod
    def from_url(cls, url: str) -> AsyncMemoryStore:
        return cls(MemoryStore(url=url))
