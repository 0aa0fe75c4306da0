"""What encryption at rest costs an exact hit: `Cache.lookup` with encryption off vs on, in one run.

Run: .venv/bin/python bench/encryption.py [--distinct 10000] [--n 20000] [--redis-url URL]
Without --redis-url a private redis-server is started on a free port (Debian's redis-server).

Two caches on the same Redis, one without keys and one with an AES-256-GCM key (namespaces
`bench-off` and `bench-on`), hold the same entries. For each drawn request the two lookups are
timed back to back, the first of the two alternating (bench/exact.py's `measure_pairs`), so
drift on a shared machine falls on both alike. Rows: one request with a 1 KB answer repeated;
distinct requests with 1 KB answers (uniform order); the realistic mix of bench/workload.py
(answers from 200 B to 40 KB, uniform and Zipf orders). Then the 1 KB distinct row on an
in-process memory store (no network round trip), and the codec alone (`entries.read`,
no store), off vs on, per answer size. Prints p50/p99 in microseconds and the p50 difference;
the target is <= +10 us p50 for a 1 KB answer. The target row (1 KB answers, distinct requests)
is timed `--rounds` times (default 3); each round's difference is printed, and the verdict uses
their median, so one round disturbed by other jobs on the machine does not decide it.
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exact import machine, measure_pairs, pct
from workload import BEST_CASE, ORDERS, Workload, add_arguments, response_for

import llmemo
from llmemo import Cache
from llmemo.core import entry as entries
from llmemo.core.crypto import Keyring, new_key
from llmemo.stores.memory import MemoryStore

TARGET_US = 10.0  # p50 cost of encryption on an exact hit with a 1 KB answer
ONE_KB = ("A one-kilobyte answer, as a support bot would give it. " * 20)[:1024]


def codec_cost(keyring: Keyring, size: int, n: int) -> tuple[float, float]:
    """(read p50 off, read p50 on) in us for an entry with a `size`-byte answer (CPU only)."""
    response = response_for(BEST_CASE, ("x" * 7 + " lorem ipsum dolor ") * (size // 26 + 1), 0)
    response["choices"][0]["message"]["content"] = response["choices"][0]["message"]["content"][
        :size
    ]
    entry = entries.Entry(response=response, model="gpt-4o-mini")
    key = "llmemo:bench:v0:0123456789abcdef"
    plain, sealed = entries.encode(entry), entries.encode(entry, keyring, key)

    def off(_: int) -> object:
        return entries.read(plain, key, None)

    def on(_: int) -> object:
        return entries.read(sealed, key, keyring)

    a, b = measure_pairs(off, on, [0] * n)
    return pct(a, 0.5), pct(b, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--n", type=int, default=20_000, help="timed lookup pairs per row")
    parser.add_argument("--redis-url")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the target row")
    args = parser.parse_args()

    work = Workload.build(args.distinct, seed=args.seed, data=args.data)
    keyring = Keyring.parse([f"k1:{new_key()}"])
    load_before = os.getloadavg()[0]
    rows: list[tuple[str, list[float], list[float]]] = []
    misses: dict[str, int] = {}
    with ExitStack() as stack:
        url = args.redis_url
        if url is None:
            import checkout  # noqa: F401 - the repository root on sys.path, for devtools/

            from devtools.redis_server import RedisServer

            url = stack.enter_context(RedisServer()).url
        off = stack.enter_context(Cache.from_url(url, namespace="bench-off"))
        on = stack.enter_context(Cache.from_url(url, namespace="bench-on", encryption=keyring))
        server_version = redis.Redis.from_url(url).info("server")["redis_version"]

        def pair(requests: list[Any], order: list[int]) -> tuple[list[float], list[float]]:
            def lookup(cache: Cache) -> Callable[[int], object]:
                def one(i: int) -> object:
                    hit = cache.lookup(requests[i])
                    if hit is None:  # a store timeout on a loaded machine: counted, printed
                        misses[cache.namespace] = misses.get(cache.namespace, 0) + 1
                    return hit

                return one

            return measure_pairs(lookup(off), lookup(on), order)

        best = response_for(BEST_CASE, ONE_KB, 0)
        for cache in (off, on):
            cache.store(BEST_CASE, best)
        rows.append(("1 KB answer, one request repeated", *pair([BEST_CASE], [0] * args.n)))

        one_kb = [response_for(r, ONE_KB, i) for i, r in enumerate(work.requests)]
        for cache in (off, on):
            for request, response in zip(work.requests, one_kb, strict=True):
                cache.store(request, response)
        uniform = work.order("uniform", args.n)
        for turn in range(max(1, args.rounds)):
            name = f"1 KB answers, {args.distinct:,} distinct"
            rows.append((f"{name}, round {turn + 1}", *pair(work.requests, uniform)))

        for cache in (off, on):
            cache.bump_version()  # the realistic answers replace the 1 KB ones
            for request, response in zip(work.requests, work.responses, strict=True):
                cache.store(request, response)
        for kind in ORDERS:
            order = work.order(kind, args.n)
            rows.append((f"realistic mix, {kind}", *pair(work.requests, order)))

    # the same pairs on an in-process store: what the hit costs without a network round trip
    memory = MemoryStore()
    mem_off = Cache(memory, namespace="bench-off")
    mem_on = Cache(memory, namespace="bench-on", encryption=keyring)
    for cache in (mem_off, mem_on):
        for request, response in zip(work.requests, one_kb, strict=True):
            cache.store(request, response)
    local = measure_pairs(
        lambda i: mem_off.lookup(work.requests[i]),
        lambda i: mem_on.lookup(work.requests[i]),
        work.order("uniform", args.n),
    )
    codec = [(size, *codec_cost(keyring, size, args.n)) for size in (1024, 4096, 32768)]
    load_after = os.getloadavg()[0]
    import cryptography

    print(f"workload: {work.describe()}")
    print(
        f"machine: {machine()}; Python {platform.python_version()}, llmemo {llmemo.__version__}, "
        f"cryptography {cryptography.__version__}, redis-py {redis.__version__}, "
        f"redis-server {server_version}; load average {load_before:.1f} before, "
        f"{load_after:.1f} after; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(
        f"{'exact hit, Redis':38}{'off p50':>9}{'off p99':>9}{'on p50':>9}{'on p99':>9}{'p50 +us':>9}"
    )
    for name, a, b in rows:
        print(
            f"{name:38}{pct(a, 0.5):9.1f}{pct(a, 0.99):9.1f}{pct(b, 0.5):9.1f}"
            f"{pct(b, 0.99):9.1f}{pct(b, 0.5) - pct(a, 0.5):+9.1f}"
        )
    a, b = local
    print(
        f"{'memory store, 1 KB answers, distinct':38}{pct(a, 0.5):9.1f}{pct(a, 0.99):9.1f}"
        f"{pct(b, 0.5):9.1f}{pct(b, 0.99):9.1f}{pct(b, 0.5) - pct(a, 0.5):+9.1f}"
    )
    print(f"{'codec alone (entries.read)':38}{'off p50':>9}{'':9}{'on p50':>9}{'':9}{'p50 +us':>9}")
    for size, a50, b50 in codec:
        print(f"{f'  {size} B answer':38}{a50:9.1f}{'':9}{b50:9.1f}{'':9}{b50 - a50:+9.1f}")
    if misses:
        print(f"lookups that missed (store timeouts), by namespace: {misses}")
    deltas = [pct(b, 0.5) - pct(a, 0.5) for name, a, b in rows if ", round " in name]
    delta = statistics.median(deltas)
    verdict = "met" if delta <= TARGET_US else "NOT met"
    rounds = ", ".join(f"{d:+.1f}" for d in deltas)
    print(
        f"target: +{TARGET_US:.0f} us p50 at most for a 1 KB answer (distinct): "
        f"{delta:+.1f} us, the median of rounds {rounds} ({verdict})"
    )


if __name__ == "__main__":
    main()
