"""What the sync and async twins do differently, behind one name each (httpcore's shape).

The async sources under `*/_async/` use the `Async*` names and `to_thread`; the generated sync
twins get the plain names (`scripts/gen_sync.py` renames them). Nothing else differs by face.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import TracebackType
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class AsyncLock:
    """An asyncio.Lock, made on first use (inside the running loop, not at construction)."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None

    def _get(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; with blocking=False, False at once when it is held."""
        lock = self._get()
        if not blocking and lock.locked():
            return False
        await lock.acquire()
        return True

    def release(self) -> None:
        self._get().release()

    async def __aenter__(self) -> None:
        await self._get().acquire()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._get().release()


class Lock:
    """A threading.Lock with AsyncLock's face."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, blocking: bool = True) -> bool:
        return self._lock.acquire(blocking)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()


async def to_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Async: CPU work (or a blocking call) runs on a worker thread, off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def call_inline(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Sync: the calling thread does the work itself."""
    return fn(*args, **kwargs)
