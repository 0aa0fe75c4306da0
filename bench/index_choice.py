"""Which in-process ANN library backs LocalIndex: usearch vs hnswlib (vs numpy brute force).

Run: .venv/bin/python bench/index_choice.py [--sizes 100000 1000000] [--queries 1000]
Random unit 384-d vectors (seeded); queries are stored vectors plus noise so each has a true
neighbour. For each library and size: build time, single-query p50/p99 (one thread, as a cache
lookup is), recall@10 against exact brute force, and memory. The same HNSW parameters for both
(M=16, ef_construction=128, ef_search=64). Then the numpy brute-force latency at small sizes, to
place the cross-over below which LocalIndex does not build a graph. Not a test: nothing asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

DIM = 384
M = 16
EF_CONSTRUCTION = 128
EF_SEARCH = 64
K = 10

F32 = npt.NDArray[np.float32]


def unit_rows(n: int, seed: int) -> F32:
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):  # in chunks: keeps the float64 temporaries small
        block = rng.standard_normal((min(100_000, n - start), DIM), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + len(block)] = block
    return out


def queries_near(data: F32, n: int, seed: int) -> F32:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(data), n)
    q = data[picks] + rng.standard_normal((n, DIM), dtype=np.float32) * 0.04
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def exact_top(data: F32, queries: F32, k: int) -> npt.NDArray[np.int64]:
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 100):
        sims = queries[start : start + 100] @ data.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
        out[start : start + 100] = np.take_along_axis(top, order, axis=1)
    return out


def recall(found: list[npt.NDArray[np.int64]], truth: npt.NDArray[np.int64]) -> tuple[float, float]:
    """recall@10 and recall@1 (is the true nearest neighbour the first answer: what a cache needs)."""
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    first = sum(int(f[0] == t[0]) for f, t in zip(found, truth, strict=True))
    return hits / truth.size, first / len(truth)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def latencies(
    search: Callable[[F32], npt.NDArray[np.int64]], queries: F32
) -> tuple[list[float], list[npt.NDArray[np.int64]]]:
    for q in queries[:50]:
        search(q)
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        ids = search(q)
        times.append(time.perf_counter() - start)
        found.append(ids)
    return times, found


def pct(times: list[float], p: float) -> float:
    return float(np.percentile(np.array(times) * 1000, p))


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def bench_usearch(data: F32, queries: F32, truth: npt.NDArray[np.int64], dtype: str) -> None:
    from usearch.index import Index

    before = rss_mb()
    index = Index(
        ndim=DIM,
        metric="ip",  # rows are unit vectors: inner product is cosine, without re-normalising
        dtype=dtype,
        connectivity=M,
        expansion_add=EF_CONSTRUCTION,
        expansion_search=EF_SEARCH,
    )
    keys = np.arange(len(data), dtype=np.uint64)
    build = timed(lambda: index.add(keys, data, threads=os.cpu_count() or 1))

    def search(q: F32) -> npt.NDArray[np.int64]:
        return index.search(q, K, threads=1).keys.astype(np.int64)

    times, found = latencies(search, queries)
    report(f"usearch {dtype}", len(data), build, times, recall(found, truth), rss_mb() - before)


def bench_hnswlib(data: F32, queries: F32, truth: npt.NDArray[np.int64]) -> None:
    import hnswlib

    before = rss_mb()
    index = hnswlib.Index(space="ip", dim=DIM)  # unit rows: inner product is cosine
    index.init_index(max_elements=len(data), ef_construction=EF_CONSTRUCTION, M=M)
    index.set_num_threads(os.cpu_count() or 1)
    build = timed(lambda: index.add_items(data, np.arange(len(data))))
    index.set_ef(EF_SEARCH)
    index.set_num_threads(1)

    def search(q: F32) -> npt.NDArray[np.int64]:
        labels, _ = index.knn_query(q, k=K)
        return labels[0].astype(np.int64)

    times, found = latencies(search, queries)
    report("hnswlib f32", len(data), build, times, recall(found, truth), rss_mb() - before)


def report(
    name: str, n: int, build: float, times: list[float], rec: tuple[float, float], mb: float
) -> None:
    print(
        f"| {name} | {n:,} | {build:.1f} | {pct(times, 50):.3f} | {pct(times, 99):.3f} "
        f"| {rec[0]:.3f} | {rec[1]:.3f} | {mb:,.0f} |",
        flush=True,
    )


def brute_force(sizes: list[int], n_queries: int) -> None:
    print("\n| brute force (numpy f32 matvec + argpartition) | n | p50 ms | p99 ms |")
    print("|---|---|---|---|")
    for n in sizes:
        data = unit_rows(n, 1)
        queries = queries_near(data, n_queries, 2)

        def search(q: F32, data: F32 = data) -> npt.NDArray[np.int64]:
            sims = data @ q
            return np.argpartition(-sims, K)[:K].astype(np.int64)

        times, _ = latencies(search, queries)
        print(f"| numpy | {n:,} | {pct(times, 50):.3f} | {pct(times, 99):.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--libs", nargs="+", default=["hnswlib", "usearch-f16", "usearch-f32"])
    args = parser.parse_args()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {DIM}-d")
    print(f"# M={M} ef_construction={EF_CONSTRUCTION} ef_search={EF_SEARCH} k={K}")
    print(
        "| library | n | build s | search p50 ms | search p99 ms | recall@10 | recall@1 | RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        data = unit_rows(n, 1)
        queries = queries_near(data, args.queries, 2)
        truth = exact_top(data, queries, K)
        for lib in args.libs:
            if lib == "hnswlib":
                bench_hnswlib(data, queries, truth)
            else:
                bench_usearch(data, queries, truth, lib.split("-")[1])
        del data
    brute_force([500, 1000, 2000, 5000, 10_000, 20_000], args.queries)


if __name__ == "__main__":
    main()
