"""@cache.memoize: sync and async functions, single-flight, keys, values JSON can hold, TTL."""

from __future__ import annotations

import asyncio
import enum
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llmemo import AsyncCache, Cache, ConfigError, TtlPolicy, UnkeyableError
from llmemo.core.memoize import UnstorableValueError
from llmemo.stores.memory import MemoryStore
from tests.integrations.conftest import Clock


class Counter:
    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            self.calls += 1


def test_sync_function_runs_once_per_arguments(cache: Cache) -> None:
    counter = Counter()

    @cache.memoize()
    def summary(book: str, *, words: int = 50) -> dict[str, Any]:
        counter.tick()
        return {"book": book, "words": words, "tags": ("classic", "novel")}

    first = summary("Emma")
    assert first == {"book": "Emma", "words": 50, "tags": ["classic", "novel"]}
    assert summary("Emma") == first
    assert summary("Emma", words=50) == first  # same canonical arguments
    assert summary("Emma", words=10) != first
    assert summary("Persuasion")["book"] == "Persuasion"
    assert counter.calls == 3
    assert summary.__name__ == "summary" and summary.__wrapped__ is not None  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_async_function(acache: AsyncCache) -> None:
    counter = Counter()

    @acache.memoize(ttl="1h")
    async def answer(question: str) -> str:
        counter.tick()
        await asyncio.sleep(0)
        return question.upper()

    assert await answer("why?") == "WHY?"
    assert await answer("why?") == "WHY?"
    assert counter.calls == 1


def test_twenty_threads_one_call(cache: Cache) -> None:
    counter = Counter()
    barrier = threading.Barrier(20)

    @cache.memoize()
    def slow(x: int) -> int:
        counter.tick()
        time.sleep(0.2)
        return x * 2

    def run(_: int) -> int:
        barrier.wait()
        return slow(21)

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(run, range(20)))
    assert results == [42] * 20
    assert counter.calls == 1


@pytest.mark.asyncio
async def test_twenty_tasks_one_call(acache: AsyncCache) -> None:
    counter = Counter()

    @acache.memoize()
    async def slow(x: int) -> int:
        counter.tick()
        await asyncio.sleep(0.1)
        return x * 2

    assert await asyncio.gather(*(slow(21) for _ in range(20))) == [42] * 20
    assert counter.calls == 1


def test_single_flight_across_caches_on_one_redis(redis_url: str) -> None:
    counter = Counter()

    def decorated(cache: Cache) -> Any:
        @cache.memoize()
        def slow(x: int) -> int:
            counter.tick()
            time.sleep(0.3)
            return x + 1

        return slow

    caches = [Cache.from_url(redis_url) for _ in range(4)]  # like four processes
    functions = [decorated(c) for c in caches]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda f: f(1), functions)) == [2, 2, 2, 2]
    assert counter.calls == 1
    for cache in caches:
        cache.close()


def test_unkeyable_argument_is_a_clear_error(cache: Cache) -> None:
    @cache.memoize()
    def read(handle: object) -> str:
        return "never"

    with pytest.raises(UnkeyableError, match=r"cannot memoize .*read\(\).*key=") as caught:
        read(threading.Lock())
    assert isinstance(caught.value, TypeError)


def test_key_override(cache: Cache) -> None:
    counter = Counter()

    class Client:  # not keyable itself
        pass

    @cache.memoize(key=lambda client, city: city.lower())
    def weather(client: Client, city: str) -> str:
        counter.tick()
        return f"sunny in {city}"

    assert weather(Client(), "Paris") == "sunny in Paris"
    assert weather(Client(), "PARIS") == "sunny in Paris"
    assert counter.calls == 1


def test_same_arguments_different_functions_do_not_collide(cache: Cache) -> None:
    @cache.memoize()
    def double(x: int) -> int:
        return 2 * x

    @cache.memoize()
    def square(x: int) -> int:
        return x * x

    assert (double(3), square(3)) == (6, 9)


@dataclass
class Point:
    x: int


class Colour(enum.StrEnum):
    RED = "red"


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (Point(1), "the value is a Point"),
        ({"at": {1, 2}}, r"the value\['at'\] is a set"),
        ({1: "one"}, "dict key of type int"),
        ([1.0, float("nan")], r"the value\[1\] is the float nan"),
        (b"bytes", "is a bytes"),
    ],
)
def test_values_json_cannot_hold_are_a_clear_error(cache: Cache, value: Any, where: str) -> None:
    @cache.memoize()
    def produce() -> Any:
        return value

    with pytest.raises(UnstorableValueError, match=where):
        produce()
    assert cache.stats().stores == 0


def test_values_come_back_in_their_stored_form_on_miss_and_hit(cache: Cache) -> None:
    @cache.memoize()
    def produce() -> Any:
        return {"colour": Colour.RED, "pair": (1, 2), "none": None, "big": 2**62}

    first, second = produce(), produce()
    assert first == second == {"colour": "red", "pair": [1, 2], "none": None, "big": 2**62}
    assert type(first["colour"]) is str


def test_exceptions_are_not_cached(cache: Cache) -> None:
    counter = Counter()

    @cache.memoize()
    def flaky() -> int:
        counter.tick()
        if counter.calls == 1:
            raise RuntimeError("first call fails")
        return 7

    with pytest.raises(RuntimeError):
        flaky()
    assert flaky() == 7
    assert flaky() == 7
    assert counter.calls == 2


def test_none_is_cached(cache: Cache) -> None:
    counter = Counter()

    @cache.memoize()
    def nothing() -> None:
        counter.tick()

    assert nothing() is None and nothing() is None
    assert counter.calls == 1


def test_ttl_and_namespace(store: MemoryStore, clock: Clock) -> None:
    cache = Cache(store, clock=clock, ttl=TtlPolicy.build("1d", jitter=0))
    counter = Counter()

    @cache.memoize(ttl=60, namespace="reports", tags=["daily"])
    def report(day: str) -> str:
        counter.tick()
        return f"report {day}"

    report("mon")
    clock.now += 30
    report("mon")
    assert counter.calls == 1
    clock.now += 31
    report("mon")
    assert counter.calls == 2
    assert cache.invalidate(namespace="reports", tag="daily") == 1
    report("mon")
    assert counter.calls == 3


def test_sync_and_async_mismatch_is_a_clear_error(cache: Cache, acache: AsyncCache) -> None:
    async def coro() -> int:
        return 1

    def plain() -> int:
        return 1

    with pytest.raises(ConfigError, match="use an AsyncCache"):
        cache.memoize()(coro)
    with pytest.raises(ConfigError, match="memoize it with a Cache"):
        acache.memoize()(plain)


def test_sqlite_store_persists_between_caches(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/memo.db"
    counter = Counter()

    def fn(cache: Cache) -> Any:
        @cache.memoize()
        def total(xs: list[int]) -> int:
            counter.tick()
            return sum(xs)

        return total

    with Cache.from_url(url) as first:
        assert fn(first)([1, 2, 3]) == 6
    with Cache.from_url(url) as second:
        assert fn(second)([1, 2, 3]) == 6
    assert counter.calls == 1
