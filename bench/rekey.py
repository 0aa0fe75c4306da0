"""What `llmemo rekey` costs: entries re-encrypted per second, and entries checked per second when
they are current already (a second run, or the part of a resumed run already done).

Run: .venv/bin/python bench/rekey.py [--distinct 10000] [--redis-url URL]
Without --redis-url a private redis-server is started on a free port (Debian's redis-server).

The same entries (the answers of bench/workload.py: 200 B to 40 KB) are written under key `k1`
to a Redis store and to a SQLite file; `rekey` then rewrites them under `k2` (pass 1), and runs
again over entries that are all current (pass 2). Prints seconds and entries per second per store
and pass. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exact import machine
from workload import Workload, add_arguments

import llmemo
from llmemo import Cache
from llmemo.core.crypto import Keyring, new_key
from llmemo.core.rekey import RekeyReport, rekey
from llmemo.stores import from_url
from llmemo.stores.protocol import RewritableStore


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    work = Workload.build(args.distinct, seed=args.seed, data=args.data)
    k1, k2 = f"k1:{new_key()}", f"k2:{new_key()}"
    rotated = Keyring.parse([k2, k1])
    load_before = os.getloadavg()[0]
    results: list[tuple[str, str, RekeyReport, float]] = []
    with ExitStack() as stack:
        url = args.redis_url
        if url is None:
            import checkout  # noqa: F401 - the repository root on sys.path, for devtools/

            from devtools.redis_server import RedisServer

            url = stack.enter_context(RedisServer()).url
        server_version = redis.Redis.from_url(url).info("server")["redis_version"]
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        for name, store_url in (("Redis", url), ("SQLite", f"sqlite:///{folder}/rekey.db")):
            with Cache.from_url(store_url, namespace="bench", encryption=k1) as cache:
                for request, response in zip(work.requests, work.responses, strict=True):
                    cache.store(request, response)
            store = from_url(store_url)
            assert isinstance(store, RewritableStore)
            for label in ("pass 1: rewrite k1 -> k2", "pass 2: all current"):
                started = time.perf_counter()
                report = rekey(store, rotated)
                results.append((name, label, report, time.perf_counter() - started))
            store.close()
    load_after = os.getloadavg()[0]
    import cryptography

    print(f"workload: {work.describe()}")
    print(
        f"machine: {machine()}; Python {platform.python_version()}, llmemo {llmemo.__version__}, "
        f"cryptography {cryptography.__version__}, redis-py {redis.__version__}, "
        f"redis-server {server_version}; load average {load_before:.1f} before, "
        f"{load_after:.1f} after; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print(f"{'store':8}{'pass':28}{'rewritten':>11}{'current':>9}{'seconds':>9}{'entries/s':>11}")
    for name, label, report, seconds in results:
        rate = report.seen / seconds if seconds else 0.0
        print(
            f"{name:8}{label:28}{report.rewritten:11,}{report.current:9,}"
            f"{seconds:9.2f}{rate:11,.0f}"
        )


if __name__ == "__main__":
    main()
