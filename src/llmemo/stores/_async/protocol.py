"""The Store protocol: bytes in, bytes out, TTL, scan, leases, counters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

Counters = Mapping[str, float]


@runtime_checkable
class AsyncStore(Protocol):
    """A key-value store with expiry. Every method raises StoreError (only) when the store fails.

    TTLs are seconds (float); None means no expiry. `get` with `refresh` sets a new TTL in the same
    round trip (Redis GETEX). `add` is SET NX PX: the single-flight lease. `heads` reads the first
    `size` bytes of each value (Redis GETRANGE), which is all invalidation needs.
    """

    url: str

    async def get(self, key: str, refresh: float | None = None) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None) -> None: ...

    async def add(self, key: str, value: bytes, ttl: float) -> bool: ...

    async def delete(self, keys: Sequence[str]) -> int: ...

    async def delete_if_equal(self, key: str, value: bytes) -> bool: ...

    async def expire_if_equal(self, key: str, value: bytes, ttl: float) -> bool: ...

    def scan(self, pattern: str, count: int = 500) -> AsyncIterator[list[str]]: ...

    async def heads(self, keys: Sequence[str], size: int) -> list[bytes | None]: ...

    async def incr(self, key: str, amounts: Counters) -> dict[str, float]: ...

    async def counters(self, key: str) -> dict[str, float]: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class AsyncRewritableStore(AsyncStore, Protocol):
    """A store whose values can be rewritten in place, resumably (what `llmemo rekey` needs).

    `scan_page` reads one page of keys from `cursor` ("" starts, "" back means done), so a
    walk can be stopped and continued from the cursor it saved; a key may come up twice.
    `swap` replaces `old` with `new` only while the key still holds `old`, its TTL kept;
    `swap_many` does it for several (key, old, new), in one round trip where the store can.
    """

    async def scan_page(
        self, pattern: str, cursor: str = "", count: int = 500
    ) -> tuple[str, list[str]]: ...

    async def swap(self, key: str, old: bytes, new: bytes) -> bool: ...

    async def swap_many(self, items: Sequence[tuple[str, bytes, bytes]]) -> list[bool]: ...
