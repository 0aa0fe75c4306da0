"""Single-flight primitives: one in-process leader per key (threads or asyncio) and lease renewal.

The cross-process half (a `SET NX PX` lease in the store, followers polling for the value) lives
in the Cache, which owns the store; these are the pieces that differ between threads and asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
Op = Callable[[], T]  # a store operation, sync
AsyncOp = Callable[[], Awaitable[T]]  # the same, awaited


class Flights:
    """In-process flights for threads: the first caller of a key leads, the others wait on it."""

    def __init__(self) -> None:
        self._flights: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()

    def join(self, key: str) -> tuple[bool, Future[Any]]:
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return False, flight
            flight = self._flights[key] = Future()
            return True, flight

    def finish(
        self, key: str, flight: Future[Any], result: Any = None, error: BaseException | None = None
    ) -> None:
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
        if error is not None:
            flight.set_exception(error)
        else:
            flight.set_result(result)

    @staticmethod
    def wait(flight: Future[Any]) -> Any:
        return flight.result()


class AsyncFlights:
    """In-process flights for one event loop."""

    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Future[Any]] = {}

    def join(self, key: str) -> tuple[bool, asyncio.Future[Any]]:
        flight = self._flights.get(key)
        if flight is not None and not flight.done():
            return False, flight
        flight = self._flights[key] = asyncio.get_running_loop().create_future()
        return True, flight

    def finish(
        self,
        key: str,
        flight: asyncio.Future[Any],
        result: Any = None,
        error: BaseException | None = None,
    ) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if flight.done():
            return
        if error is not None:
            flight.set_exception(error)
            flight.exception()  # marks it retrieved: a flight nobody waited on must not warn
        else:
            flight.set_result(result)

    @staticmethod
    async def wait(flight: asyncio.Future[Any]) -> Any:
        return await asyncio.shield(flight)


def invoke(fn: Callable[[], Any]) -> Any:
    return fn()


async def ainvoke(fn: Callable[[], Any]) -> Any:
    result = fn()
    if inspect.isawaitable(result):
        result = await result
    return result


class Background:
    """A cache's background refreshes, run in daemon threads and tracked, so that `close()` can
    wait for them before the store closes (a refresh that outlives its cache would reopen it)."""

    def __init__(self) -> None:
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    def spawn(self, fn: Callable[[], object]) -> None:
        """Run fn in a daemon thread (a background refresh must not hold the caller)."""

        def run() -> None:
            try:
                fn()
            finally:
                with self._lock:
                    self._threads.discard(thread)

        thread = threading.Thread(target=run, daemon=True, name="llmemo-refresh")
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def drain(self, timeout: float) -> int:
        """Wait up to `timeout` seconds in all for the running refreshes; how many still run
        (a thread cannot be stopped: it ends on its own, its store errors counted)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            running = list(self._threads)
        for thread in running:
            thread.join(max(0.0, deadline - time.monotonic()))
        return sum(thread.is_alive() for thread in running)


class AsyncBackground:
    """A cache's background refreshes, run as tasks and tracked (strong references keep a running
    task from being collected; `close()` waits for them, then cancels what is left)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()

    def spawn(self, fn: Callable[[], Coroutine[Any, Any, object]]) -> None:
        """Run fn as a task on the running loop (a background refresh must not hold the caller)."""
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(fn())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for the running refreshes, then cancel the rest; how many
        were cancelled."""
        running = [t for t in self._tasks if t.get_loop() is asyncio.get_running_loop()]
        if not running:
            return 0
        _, pending = await asyncio.wait(running, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return len(pending)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


async def asleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


class Renewer:
    """Calls `renew()` every `interval` seconds in a daemon thread until the block exits."""

    def __init__(self, renew: Callable[[], object], interval: float) -> None:
        self._renew = renew
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="llmemo-lease")

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with contextlib.suppress(Exception):  # a failed renewal only risks a duplicate call
                self._renew()

    def __enter__(self) -> Renewer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


class AsyncRenewer:
    """Awaits `renew()` every `interval` seconds in a task until the block exits."""

    def __init__(self, renew: Callable[[], Awaitable[object]], interval: float) -> None:
        self._renew = renew
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            with contextlib.suppress(Exception):  # a failed renewal only risks a duplicate call
                await self._renew()

    async def __aenter__(self) -> AsyncRenewer:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
