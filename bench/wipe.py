"""What a wipe costs: `Cache.wipe(user=...)` on a filled store, against `invalidate` with the same
user filter (the same SCAN and header reads, without the vector, embedding and notice steps).

Run: .venv/bin/python bench/wipe.py [--entries 20000] [--users 1000] [--rounds 3]
A private redis-server is started on a free port (Debian's redis-server); the SQLite file is a
temporary one. Each round refills the store, then times one wipe and one invalidate of two
different users, alternating which goes first. Prints the median seconds of each and the ratio.
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import checkout  # noqa: F401  (devtools on sys.path)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exact import machine

from devtools.redis_server import RedisServer
from llmemo import Cache


def fill(cache: Cache, entries: int, users: int) -> None:
    answer = {
        "choices": [
            {"message": {"role": "assistant", "content": "ok " * 40}, "finish_reason": "stop"}
        ]
    }
    for i in range(entries):
        request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q{i}"}]}
        cache.store(request, answer, user=f"user-{i % users}")


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def measure(url: str, entries: int, users: int, rounds: int) -> tuple[float, float, int]:
    wipes, invalidations, deleted = [], [], 0
    for r in range(rounds):
        with Cache.from_url(url) as cache:
            cache.invalidate(namespace="*")
            fill(cache, entries, users)
            steps = [
                ("wipe", lambda: cache.wipe(user="user-1")),
                ("invalidate", lambda: cache.invalidate(namespace="*", user="user-2")),
            ]
            for name, step in steps if r % 2 == 0 else steps[::-1]:
                seconds = timed(step)
                (wipes if name == "wipe" else invalidations).append(seconds)
            deleted = entries // users
    return statistics.median(wipes), statistics.median(invalidations), deleted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"# {machine()}; {args.entries} entries, {args.users} users, {args.rounds} rounds")
    print("store    per-user  wipe s  invalidate s  ratio")
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        for name, url in (("redis", server.url), ("sqlite", f"sqlite:///{tmp}/bench.db")):
            wipe, invalidate, deleted = measure(url, args.entries, args.users, args.rounds)
            print(
                f"{name:<8} {deleted:>8}  {wipe:>6.3f}  {invalidate:>12.3f}  {wipe / invalidate:.2f}"
            )


if __name__ == "__main__":
    main()
