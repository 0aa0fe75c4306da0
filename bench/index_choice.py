"""Which in-process ANN library backs LocalIndex: usearch vs hnswlib (vs numpy brute force).

Run: .venv/bin/python bench/index_choice.py [--sizes 100000 1000000] [--queries 1000]
Random unit 384-d vectors (seeded); each query is a stored vector plus noise (cosine ~0.9 to its
source, like a paraphrase). Same HNSW parameters for both (M=16, ef_construction=128; ef_search
64 and 256). Build: wall time and CPU seconds (all threads; CPU time is what a shared, loaded
machine cannot inflate). Search: one thread, as a cache lookup is; the libraries are queried in
turn, query by query, so both see the same machine load; p50/p99 wall time and mean CPU time per
query; recall@10 and recall@1 against exact brute force. Then numpy brute force at small sizes,
to place the cross-over below which LocalIndex scans a scope instead of building a graph.
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

DIM = 384
M = 16
EF_CONSTRUCTION = 128
EF_SEARCH = (64, 256)
K = 10
NOISE = 0.025  # per dimension: a query's cosine to its source is about 0.9, like a paraphrase

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


def unit_rows(n: int, seed: int) -> F32:
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):  # in chunks: keeps the temporaries small
        block = rng.standard_normal((min(100_000, n - start), DIM), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + len(block)] = block
    return out


def queries_near(data: F32, n: int, seed: int) -> F32:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(data), n)
    q = data[picks] + rng.standard_normal((n, DIM), dtype=np.float32) * NOISE
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def exact_top(data: F32, queries: F32, k: int) -> I64:
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 100):
        sims = queries[start : start + 100] @ data.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
        out[start : start + 100] = np.take_along_axis(top, order, axis=1)
    return out


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Candidate:
    """One built index: how to search it, how to set its ef, what the build cost."""

    name: str
    search: Callable[[F32], I64]
    set_ef: Callable[[int], None]
    build_wall: float
    build_cpu: float
    mb: float
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    found: list[I64] = field(default_factory=list)


def build(
    name: str, make: Callable[[], tuple[Callable[[F32], I64], Callable[[int], None]]]
) -> Candidate:
    before = rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    search, set_ef = make()
    return Candidate(
        name,
        search,
        set_ef,
        time.perf_counter() - wall,
        time.process_time() - cpu,
        rss_mb() - before,
    )


def make_usearch(
    data: F32, dtype: str
) -> Callable[[], tuple[Callable[[F32], I64], Callable[[int], None]]]:
    def make() -> tuple[Callable[[F32], I64], Callable[[int], None]]:
        from usearch.index import Index

        index = Index(
            ndim=DIM,
            metric="ip",  # unit rows: inner product is cosine, without re-normalising
            dtype=dtype,
            connectivity=M,
            expansion_add=EF_CONSTRUCTION,
        )
        index.add(np.arange(len(data), dtype=np.uint64), data, threads=os.cpu_count() or 1)

        def search(q: F32) -> I64:
            return index.search(q, K, threads=1).keys.astype(np.int64)

        def set_ef(ef: int) -> None:
            index.expansion_search = ef

        return search, set_ef

    return make


def make_hnswlib(data: F32) -> Callable[[], tuple[Callable[[F32], I64], Callable[[int], None]]]:
    def make() -> tuple[Callable[[F32], I64], Callable[[int], None]]:
        import hnswlib

        index = hnswlib.Index(space="ip", dim=DIM)  # unit rows: inner product is cosine
        index.init_index(max_elements=len(data), ef_construction=EF_CONSTRUCTION, M=M)
        index.set_num_threads(os.cpu_count() or 1)
        index.add_items(data, np.arange(len(data)))
        index.set_num_threads(1)

        def search(q: F32) -> I64:
            labels, _ = index.knn_query(q, k=K)
            return labels[0].astype(np.int64)

        return search, index.set_ef

    return make


def interleaved(candidates: list[Candidate], queries: F32) -> None:
    """Query every candidate with each query in turn, so load spikes hit them alike."""
    for c in candidates:
        c.wall, c.cpu, c.found = [], [], []
        for q in queries[:50]:
            c.search(q)
    for q in queries:
        for c in candidates:
            wall, cpu = time.perf_counter(), time.thread_time()
            ids = c.search(q)
            c.cpu.append(time.thread_time() - cpu)
            c.wall.append(time.perf_counter() - wall)
            c.found.append(ids)


def recall(found: list[I64], truth: I64) -> tuple[float, float]:
    """recall@10, and recall@1 (is the true nearest neighbour the first answer: what a cache needs)."""
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    first = sum(int(f[0] == t[0]) for f, t in zip(found, truth, strict=True))
    return hits / truth.size, first / len(truth)


def ms(values: list[float], p: float | None = None) -> float:
    array = np.array(values) * 1000
    return float(np.mean(array) if p is None else np.percentile(array, p))


def brute_force(sizes: list[int], n_queries: int) -> None:
    print(
        "\n| numpy brute force (f32 matvec + argpartition) | n | p50 ms | p99 ms | CPU ms/query |"
    )
    print("|---|---|---|---|---|")
    for n in sizes:
        data = unit_rows(n, 1)
        queries = queries_near(data, n_queries, 2)

        def search(q: F32, data: F32 = data) -> I64:
            return np.argpartition(-(data @ q), K)[:K].astype(np.int64)

        c = Candidate("numpy", search, lambda ef: None, 0.0, 0.0, 0.0)
        interleaved([c], queries)
        print(f"| numpy | {n:,} | {ms(c.wall, 50):.3f} | {ms(c.wall, 99):.3f} | {ms(c.cpu):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--no-brute", action="store_true", help="skip the numpy brute-force table")
    args = parser.parse_args()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {DIM}-d")
    print(f"# M={M} ef_construction={EF_CONSTRUCTION} k={K} query noise={NOISE}/dim")
    print(
        "| library | n | build s (CPU s) | ef | search p50 ms | p99 ms | CPU ms/query "
        "| recall@10 | recall@1 | RSS MB | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        data = unit_rows(n, 1)
        queries = queries_near(data, args.queries, 2)
        truth = exact_top(data, queries, K)
        candidates = [
            build("hnswlib f32", make_hnswlib(data)),
            build("usearch f16", make_usearch(data, "f16")),
        ]
        for ef in EF_SEARCH:
            for c in candidates:
                c.set_ef(ef)
            interleaved(candidates, queries)
            for c in candidates:
                r10, r1 = recall(c.found, truth)
                print(
                    f"| {c.name} | {n:,} | {c.build_wall:.0f} ({c.build_cpu:.0f}) | {ef} "
                    f"| {ms(c.wall, 50):.3f} | {ms(c.wall, 99):.3f} | {ms(c.cpu):.3f} "
                    f"| {r10:.3f} | {r1:.3f} | {c.mb:,.0f} | {os.getloadavg()[0]:.1f} |",
                    flush=True,
                )
        del candidates, data
    if not args.no_brute:
        brute_force([500, 1000, 2000, 5000, 10_000, 20_000], args.queries)


if __name__ == "__main__":
    main()
