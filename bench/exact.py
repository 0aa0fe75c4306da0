"""Exact-hit latency: raw redis-py GET vs `Cache.lookup` on the same Redis, plus a SQLite hit.

Run: .venv/bin/python bench/exact.py [--n 10000] [--redis-url URL]
Without --redis-url a private redis-server is started on a free port (Debian's redis-server).
Prints p50/p99 in microseconds and the lookup/GET ratio. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack

import redis

from llmemo import Cache
from llmemo.core.entry import encode

REQUEST = {
    "model": "gpt-4o-mini",
    "temperature": 0,
    "messages": [
        {"role": "system", "content": "You are a concise assistant for an online bookshop."},
        {"role": "user", "content": "Summarise 'Pride and Prejudice' in three sentences."},
    ],
}
RESPONSE = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": (
                    "Elizabeth Bennet, the sharp-witted second of five daughters, meets the proud "
                    "Mr Darcy and takes an instant dislike to him. Misunderstandings, a disastrous "
                    "proposal and a scandalous elopement test them both. Each learns to see past "
                    "pride and prejudice, and they marry."
                ),
            },
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 38, "completion_tokens": 61, "total_tokens": 99},
}


def measure(fn: Callable[[], object], n: int) -> list[float]:
    for _ in range(min(500, n)):  # warm up connections and caches
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def measure_pairs(
    a: Callable[[], object], b: Callable[[], object], n: int
) -> tuple[list[float], list[float]]:
    """Time a and b alternately, call by call: drift on a shared machine hits both alike."""
    for _ in range(min(500, n)):
        a()
        b()
    clock = time.perf_counter
    out_a, out_b = [], []
    for _ in range(n):
        t = clock()
        a()
        t1 = clock()
        b()
        t2 = clock()
        out_a.append(t1 - t)
        out_b.append(t2 - t1)
    return out_a, out_b


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--redis-url")
    args = parser.parse_args()

    with ExitStack() as stack:
        url = args.redis_url
        if url is None:
            import checkout  # noqa: F401 - the repository root on sys.path, for devtools/

            from devtools.redis_server import RedisServer

            url = stack.enter_context(RedisServer()).url
        cache = stack.enter_context(Cache.from_url(url, namespace="bench"))
        cache.store(REQUEST, RESPONSE)
        hit = cache.lookup(REQUEST)
        assert hit is not None, "the entry was not stored"
        key = hit.key
        raw = redis.Redis.from_url(url)
        payload = raw.get(key)
        assert payload is not None
        raw.set("bench:raw", payload)

        raw_samples, cache_samples = measure_pairs(
            lambda: raw.get("bench:raw"), lambda: cache.lookup(REQUEST), args.n
        )

        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        lite = stack.enter_context(Cache.from_url(f"sqlite:///{os.path.join(tmp, 'b.db')}"))
        lite.store(REQUEST, RESPONSE)
        sqlite_samples = measure(lambda: lite.lookup(REQUEST), args.n)

        print(
            f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}, redis-py {redis.__version__}"
        )
        print(
            f"redis: {raw.info('server')['redis_version']} at {url}; payload {len(payload)} bytes (entry of a {len(encode.__name__) and len(str(RESPONSE))}-char response)"
        )
        print(f"{'':28}{'p50 us':>10}{'p99 us':>10}")
        rows = [
            ("raw redis-py GET", raw_samples),
            ("Cache.lookup hit (Redis)", cache_samples),
            ("Cache.lookup hit (SQLite)", sqlite_samples),
        ]
        for name, samples in rows:
            print(f"{name:28}{pct(samples, 0.5):10.1f}{pct(samples, 0.99):10.1f}")
        p50 = pct(cache_samples, 0.5) / pct(raw_samples, 0.5)
        p99 = pct(cache_samples, 0.99) / pct(raw_samples, 0.99)
        print(
            f"ratio lookup/GET: p50 {p50:.2f}  p99 {p99:.2f}  (mean {statistics.mean(cache_samples) / statistics.mean(raw_samples):.2f})"
        )


if __name__ == "__main__":
    main()
