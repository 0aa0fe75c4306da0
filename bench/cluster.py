"""Exact-hit latency on a Redis Cluster vs a single Redis, in one run.

Run: .venv/bin/python bench/cluster.py [--n 4000] [--rounds 3]
Starts a private Debian `redis-server` and a 3 primary + 3 replica cluster of the same binary on
free loopback ports. Prints p50/p99 in microseconds of a raw redis-py GET and of `Cache.lookup`
(a hit) on each, and the cluster/single ratios. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Callable
from contextlib import ExitStack

import checkout  # noqa: F401 - the repository root on sys.path, for devtools/
import redis
import redis.cluster

# Same payload and timing helpers as the single-node benchmark (bench/ is on sys.path here).
from exact import REQUEST, RESPONSE, measure, pct

from devtools.redis_cluster import RedisClusterServer
from devtools.redis_server import RedisServer
from llmemo import Cache


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3, help="alternate the sides this many times")
    args = parser.parse_args()

    with ExitStack() as stack:
        server = stack.enter_context(RedisServer())
        cluster = stack.enter_context(RedisClusterServer(primaries=3, replicas=1))
        single = stack.enter_context(Cache.from_url(server.url, namespace="bench"))
        sharded = stack.enter_context(Cache.from_url(cluster.url, namespace="bench"))
        for cache in (single, sharded):
            assert cache.store(REQUEST, RESPONSE)
            assert cache.lookup(REQUEST) is not None, "the entry was not stored"
        hit = single.lookup(REQUEST)
        assert hit is not None
        raw_single = redis.Redis.from_url(server.url)
        raw_cluster = redis.cluster.RedisCluster(startup_nodes=cluster.startup_nodes)
        payload = raw_single.get(hit.key)
        assert payload is not None and raw_cluster.get(hit.key) is not None

        sides: dict[str, tuple[Callable[[], object], list[float]]] = {
            "raw GET, single node": (lambda: raw_single.get(hit.key), []),
            "raw GET, cluster": (lambda: raw_cluster.get(hit.key), []),
            "Cache.lookup hit, single node": (lambda: single.lookup(REQUEST), []),
            "Cache.lookup hit, cluster": (lambda: sharded.lookup(REQUEST), []),
        }
        for _ in range(args.rounds):  # alternate, so drift on a shared machine hits every side
            for fn, samples in sides.values():
                samples += measure(fn, args.n)

        version = raw_single.info("server")["redis_version"]
        print(
            f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cpus, load "
            f"{os.getloadavg()[0]:.1f}, Python {platform.python_version()}, redis-py "
            f"{redis.__version__}, redis-server {version}; entry {len(payload)} bytes"
        )
        print(f"{'':32}{'p50 us':>10}{'p99 us':>10}")
        for name, (_, samples) in sides.items():
            print(f"{name:32}{pct(samples, 0.5):10.1f}{pct(samples, 0.99):10.1f}")
        for what in ("raw GET", "Cache.lookup hit"):
            c, s = sides[f"{what}, cluster"][1], sides[f"{what}, single node"][1]
            print(
                f"ratio cluster/single, {what}: p50 {pct(c, 0.5) / pct(s, 0.5):.2f}  "
                f"p99 {pct(c, 0.99) / pct(s, 0.99):.2f}"
            )
        raw_single.close()
        raw_cluster.close()


if __name__ == "__main__":
    main()
