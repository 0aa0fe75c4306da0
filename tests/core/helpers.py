"""Small real helpers for cache tests: a counting upstream function and a counting store wrapper."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from llmemo.stores import Counters, Store


def chat(text: str = "What is the capital of France?", **params: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **params}


def answer(
    text: str = "Paris.", model: str = "gpt-4o-mini", finish: str = "stop"
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }


class Clock:
    """A clock that moves only when told to (inject it as a cache's `monotonic` or `clock`)."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Upstream:
    """A counting stand-in for the provider call (what `fn` does in get_or_compute)."""

    def __init__(
        self, response: dict[str, Any] | None = None, delay: float = 0.0, fail: int = 0
    ) -> None:
        self.response = response or answer()
        self.delay = delay
        self.fail = fail
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            failing = self.fail > 0
            self.fail -= 1
        time.sleep(self.delay)
        if failing:
            raise RuntimeError("upstream failed")
        return self.response

    async def acall(self) -> dict[str, Any]:
        import asyncio

        with self._lock:
            self.calls += 1
            failing = self.fail > 0
            self.fail -= 1
        await asyncio.sleep(self.delay)
        if failing:
            raise RuntimeError("upstream failed")
        return self.response


class CountingStore:
    """Wraps a real store and counts the operations (round trips) the cache makes."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.url = inner.url
        self.ops: Counter[str] = Counter()

    def get(self, key: str, refresh: float | None = None) -> bytes | None:
        self.ops["get"] += 1
        return self.inner.get(key, refresh)

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        self.ops["set"] += 1
        self.inner.set(key, value, ttl)

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        self.ops["add"] += 1
        return self.inner.add(key, value, ttl)

    def delete(self, keys: Sequence[str]) -> int:
        self.ops["delete"] += 1
        return self.inner.delete(keys)

    def delete_if_equal(self, key: str, value: bytes) -> bool:
        self.ops["delete_if_equal"] += 1
        return self.inner.delete_if_equal(key, value)

    def expire_if_equal(self, key: str, value: bytes, ttl: float) -> bool:
        self.ops["expire_if_equal"] += 1
        return self.inner.expire_if_equal(key, value, ttl)

    def scan(self, pattern: str, count: int = 500) -> Iterator[list[str]]:
        self.ops["scan"] += 1
        return self.inner.scan(pattern, count)

    def heads(self, keys: Sequence[str], size: int) -> list[bytes | None]:
        self.ops["heads"] += 1
        return self.inner.heads(keys, size)

    def incr(self, key: str, amounts: Counters) -> dict[str, float]:
        self.ops["incr"] += 1
        return self.inner.incr(key, amounts)

    def counters(self, key: str) -> dict[str, float]:
        self.ops["counters"] += 1
        return self.inner.counters(key)

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()
