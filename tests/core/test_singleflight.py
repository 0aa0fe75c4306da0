"""Single-flight: a burst of identical misses costs one upstream call (threads, tasks, processes)."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from llmemo import AsyncCache, Cache
from llmemo.stores.memory import AsyncMemoryStore, MemoryStore
from tests.core.helpers import Upstream, answer, chat


def test_fifty_threads_one_call() -> None:
    cache, upstream = Cache(MemoryStore()), Upstream(delay=0.2)
    barrier = threading.Barrier(50)

    def ask(_: int) -> str:
        barrier.wait()
        return cache.compute(chat(), upstream).status

    with ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(ask, range(50)))
    assert upstream.calls == 1
    assert statuses.count("miss") == 1
    assert statuses.count("hit") == 49


@pytest.mark.asyncio
async def test_fifty_tasks_one_call() -> None:
    cache, upstream = AsyncCache(AsyncMemoryStore()), Upstream(delay=0.2)
    results = await asyncio.gather(*(cache.compute(chat(), upstream.acall) for _ in range(50)))
    assert upstream.calls == 1
    assert all(r.response == answer() for r in results)
    assert [r.status for r in results].count("miss") == 1


def test_leader_failure_one_follower_retries() -> None:
    cache, upstream = Cache(MemoryStore()), Upstream(delay=0.2, fail=1)
    barrier = threading.Barrier(20)

    def ask(_: int) -> Any:
        barrier.wait()
        try:
            return cache.compute(chat(), upstream).response
        except RuntimeError as exc:
            return exc

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(ask, range(20)))
    assert upstream.calls == 2  # the failed leader, then exactly one retry
    assert sum(isinstance(o, RuntimeError) for o in outcomes) == 1
    assert sum(o == answer() for o in outcomes) == 19


def test_leader_failing_twice_raises_to_everyone_without_hanging() -> None:
    cache, upstream = Cache(MemoryStore()), Upstream(delay=0.1, fail=100)
    barrier = threading.Barrier(10)

    def ask(_: int) -> Any:
        barrier.wait()
        try:
            return cache.compute(chat(), upstream)
        except RuntimeError as exc:
            return exc

    with ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(ask, range(10), timeout=30))
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert upstream.calls == 2


@pytest.mark.asyncio
async def test_async_leader_failure_one_retry() -> None:
    cache, upstream = AsyncCache(AsyncMemoryStore()), Upstream(delay=0.1, fail=1)
    outcomes = await asyncio.gather(
        *(cache.get_or_compute(chat(), upstream.acall) for _ in range(20)), return_exceptions=True
    )
    assert upstream.calls == 2
    assert sum(isinstance(o, RuntimeError) for o in outcomes) == 1


def _process(url: str, start: Any, calls: Any, out: Any) -> None:
    cache = Cache.from_url(url)

    def fn() -> dict[str, Any]:
        with calls.get_lock():
            calls.value += 1
        import time

        time.sleep(0.5)
        return answer()

    start.wait(timeout=60)  # a barrier: every process has imported and opened its store
    results = []
    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda _: cache.compute(chat(), fn).status, range(5)))
    out.put(results)
    cache.close()


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_four_processes_one_call(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'c.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("redis_url")
    )
    ctx = mp.get_context("spawn")
    start, calls, out = ctx.Barrier(5), ctx.Value("i", 0), ctx.Queue()
    procs = [ctx.Process(target=_process, args=(url, start, calls, out)) for _ in range(4)]
    for p in procs:
        p.start()
    start.wait(timeout=60)
    statuses = [s for _ in procs for s in out.get(timeout=60)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert calls.value == 1
    assert statuses.count("miss") == 1
    assert len(statuses) == 20
