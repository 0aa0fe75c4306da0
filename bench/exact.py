"""Exact-hit latency on a realistic workload: `Cache.lookup` vs a raw redis-py GET of the same bytes.

Run: .venv/bin/python bench/exact.py [--distinct 10000] [--n 20000] [--redis-url URL] [--profile]
Without --redis-url a private redis-server is started on a free port (Debian's redis-server).

The workload (bench/workload.py) is `--distinct` chat requests built from real questions, every
one stored with its answer (sizes from 200 B to 40 KB, some compressed). Each order (uniform,
Zipf s=1.0) draws `--n` requests; for each draw one raw `GET` of the entry's key and one
`Cache.lookup` of the request are timed back to back (which goes first alternates), so drift on a
shared machine falls on both alike. The best case (one request repeated, so every per-body memo
answers) is one extra row. Prints p50/p99 in microseconds and the lookup/GET ratios.
--profile: cProfile of lookups in the uniform order, and the stages of a distinct lookup timed
one by one over every request (perf counters): where a distinct lookup's time goes.
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workload import BEST_CASE, ORDERS, Workload, add_arguments, response_for

import llmemo
from llmemo import Cache

TARGET = 1.3  # Cache.lookup p50 / raw GET p50 on the uniform order


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
    a: Callable[[int], object], b: Callable[[int], object], order: list[int], warm: int = 500
) -> tuple[list[float], list[float]]:
    """Time a(i) and b(i) for each i of `order`, back to back, the first of the two alternating:
    drift on a shared machine hits both alike."""
    for i in order[:warm]:
        a(i)
        b(i)
    clock = time.perf_counter
    out_a, out_b = [], []
    for turn, i in enumerate(order):
        if turn % 2:
            t = clock()
            a(i)
            t1 = clock()
            b(i)
            t2 = clock()
            out_a.append(t1 - t)
            out_b.append(t2 - t1)
        else:
            t = clock()
            b(i)
            t1 = clock()
            a(i)
            t2 = clock()
            out_b.append(t1 - t)
            out_a.append(t2 - t1)
    return out_a, out_b


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cpus, {platform.system()} {platform.release()}"


def stages(
    cache: Cache, requests: list[Any], values: list[Any], keys: list[str]
) -> dict[str, float]:
    """Each stage of a distinct lookup alone, µs per request (no store round trip)."""
    import orjson

    from llmemo.core.entry import decode_parts
    from llmemo.core.request import Scope, digest, to_request

    scope = Scope(namespace="bench")
    canonical = [to_request(r) for r in requests]

    def timed(fn: Callable[[int], object]) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for i in range(len(requests)):
                fn(i)
            best = min(best, time.perf_counter() - start)
        return best / len(requests) * 1e6

    return {
        "orjson.dumps(body) (the per-body memo's key)": timed(lambda i: orjson.dumps(requests[i])),
        "to_request (normalise, canonical JSON)": timed(lambda i: to_request(requests[i])),
        "digest (SHA-256 of the canonical bytes)": timed(lambda i: digest(canonical[i], scope)),
        "decode_parts (header, zstd, orjson.loads)": timed(lambda i: decode_parts(values[i])),
        "hit_from (decode + the Hit)": timed(lambda i: cache._hit_from(values[i], keys[i])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--n", type=int, default=20_000, help="timed lookups per order")
    parser.add_argument("--redis-url")
    parser.add_argument("--profile", action="store_true", help="cProfile uniform lookups")
    parser.add_argument("--compress-from", type=int, help=argparse.SUPPRESS)  # entry.py's threshold
    args = parser.parse_args()
    if args.compress_from is not None:
        from llmemo.core import entry

        entry._COMPRESS_FROM = args.compress_from

    work = Workload.build(args.distinct, seed=args.seed, data=args.data)
    load_before = os.getloadavg()[0]
    with ExitStack() as stack:
        url = args.redis_url
        server_version = "?"
        if url is None:
            import checkout  # noqa: F401 - the repository root on sys.path, for devtools/

            from devtools.redis_server import RedisServer

            url = stack.enter_context(RedisServer()).url
        cache = stack.enter_context(Cache.from_url(url, namespace="bench"))
        raw = redis.Redis.from_url(url)
        server_version = raw.info("server")["redis_version"]
        keys: list[str] = []
        sizes: list[int] = []
        for request, response in zip(work.requests, work.responses, strict=True):
            cache.store(request, response)
        for request in work.requests:
            hit = cache.lookup(request)
            assert hit is not None, "an entry was not stored"
            keys.append(hit.key)
        pipe = raw.pipeline(transaction=False)
        for key in keys:
            pipe.strlen(key)
        sizes = pipe.execute()
        requests = work.requests

        def get(i: int) -> Any:
            return raw.get(keys[i])

        def lookup(i: int) -> Any:
            return cache.lookup(requests[i])

        rows: list[tuple[str, list[float], list[float]]] = []
        for kind in ORDERS:
            order = work.order(kind, args.n)
            got, looked = measure_pairs(get, lookup, order)
            rows.append((f"{kind}, {args.distinct:,} distinct", got, looked))

        best_response = response_for(
            BEST_CASE, "A short, fixed answer of a few sentences. " * 12, 0
        )
        cache.store(BEST_CASE, best_response)
        best_hit = cache.lookup(BEST_CASE)
        assert best_hit is not None
        best_key = best_hit.key
        got, looked = measure_pairs(
            lambda _: raw.get(best_key), lambda _: cache.lookup(BEST_CASE), [0] * args.n
        )
        rows.append(("best case: one request repeated", got, looked))

        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        lite = stack.enter_context(Cache.from_url(f"sqlite:///{os.path.join(tmp, 'b.db')}"))
        lite.store(BEST_CASE, best_response)
        sqlite_samples = measure(lambda: lite.lookup(BEST_CASE), args.n)

        if args.profile:
            profile = cProfile.Profile()
            order = work.order("uniform", args.n, seed=99)
            profile.enable()
            for i in order:
                cache.lookup(requests[i])
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
            values = raw.mget(keys)
            print("stages of a lookup, CPU only, per request over all requests (best of 3):")
            for stage, us in stages(cache, requests, values, keys).items():
                print(f"  {stage:44}{us:8.2f} us")

    load_after = os.getloadavg()[0]
    ordered = sorted(sizes)
    print(f"workload: {work.describe()}")
    print(
        f"stored entries: p50 {ordered[len(ordered) // 2]} B, p90 {ordered[int(len(ordered) * 0.9)]} B, "
        f"max {ordered[-1]} B"
    )
    print(
        f"machine: {machine()}; Python {platform.python_version()}, llmemo {llmemo.__version__}, "
        f"redis-py {redis.__version__}, redis-server {server_version}; "
        f"load average {load_before:.1f} before, {load_after:.1f} after"
    )
    print(
        f"{'':34}{'GET p50':>9}{'GET p99':>9}{'lookup p50':>12}{'lookup p99':>12}"
        f"{'p50 ratio':>11}{'p99 ratio':>11}"
    )
    for name, got, looked in rows:
        print(
            f"{name:34}{pct(got, 0.5):9.1f}{pct(got, 0.99):9.1f}{pct(looked, 0.5):12.1f}"
            f"{pct(looked, 0.99):12.1f}{pct(looked, 0.5) / pct(got, 0.5):11.2f}"
            f"{pct(looked, 0.99) / pct(got, 0.99):11.2f}"
        )
    print(
        f"{'best case, SQLite (no GET)':34}{'':18}{pct(sqlite_samples, 0.5):12.1f}"
        f"{pct(sqlite_samples, 0.99):12.1f}"
    )
    uniform = rows[0]
    ratio = pct(uniform[2], 0.5) / pct(uniform[1], 0.5)
    mean = statistics.mean(uniform[2]) / statistics.mean(uniform[1])
    verdict = "met" if ratio <= TARGET else "NOT met"
    print(
        f"target: lookup p50 <= {TARGET}x GET on uniform: {ratio:.2f} ({verdict}; mean {mean:.2f})"
    )


if __name__ == "__main__":
    main()
