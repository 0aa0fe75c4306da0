"""Semantic-hit latency, stage by stage: embed (added with the hybrid flow), index search, payload.

Run: .venv/bin/python bench/semantic_latency.py [--stages index|memory] [--sizes 10000 100000]
         [--million] [--queries 2000]
Starts a private Redis Stack (RediSearch) and a private Debian redis-server on free ports.

Stage `index`: for each size, n random unit 384-d vectors in ONE scope (the worst case: the scope
is the whole index, so HNSW is walked; a real cache spreads entries over many fingerprints) with
a 1 KB answer each. Queries are stored vectors plus noise (cosine ~0.9 to their source, like a
paraphrase). Reported per index: search p50/p99, the semantic-hit minus embedding (search +
payload: one KNN query on RediSearch; search + one GET for LocalIndex), recall@1 against exact
numpy, and for RediSearch the FLAT index as the baseline. `--million`: LocalIndex rebuilt from
1M records in a memory store (restart time), then searched (target p99 <= 10 ms). Memory: Redis
bytes per semantic entry (used_memory delta) for the shipped layout (the exact-key entry plus a
vector hash without a copy of it) against the layout before it, and with a server setting.
Not a test: nothing is asserted.

Stages are functions in STAGES; the embedding stage (`embed`: embed time alone, and the full
hit: embed + search + fetch) plugs in there without touching the index stage.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import redis

from llmemo.core.entry import Entry, encode
from llmemo.index.base import IndexItem, IndexScope, Match, record_key
from llmemo.index.changelog import encode_add
from llmemo.index.local import LocalIndex
from llmemo.index.redisearch import HNSW, RediSearchIndex
from llmemo.stores.memory import MemoryStore
from llmemo.stores.redis import RedisStore
from llmemo.testing.redis_server import RedisServer
from llmemo.testing.redis_stack import redis_stack_server

DIM = 384
NOISE = 0.025
F32 = npt.NDArray[np.float32]
SCOPE = IndexScope("default", 1, None, hashlib.sha256(b"bench").hexdigest(), "minilm:bench")
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "at",
    "from",
    "his",
    "her",
    "it",
    "an",
    "be",
    "this",
    "which",
    "or",
    "are",
    "have",
    "had",
    "not",
    "but",
    "were",
    "all",
    "one",
    "their",
    "they",
    "been",
    "has",
    "when",
    "who",
    "more",
    "will",
    "would",
    "there",
    "city",
    "capital",
    "river",
    "France",
    "Paris",
    "population",
    "museum",
    "history",
    "century",
    "north",
    "because",
    "between",
]


@dataclass
class Servers:
    stack: str
    plain: str


def unit_rows(n: int, seed: int) -> F32:
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        block = rng.standard_normal((min(100_000, n - start), DIM), dtype=np.float32)
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def near(data: F32, n: int, seed: int) -> tuple[F32, npt.NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(data), n)
    q = data[picks] + rng.standard_normal((n, DIM), dtype=np.float32) * NOISE
    return q / np.linalg.norm(q, axis=1, keepdims=True), picks


def exact_first(data: F32, queries: F32) -> npt.NDArray[np.int64]:
    out = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), 200):
        out[start : start + 200] = np.argmax(queries[start : start + 200] @ data.T, axis=1)
    return out


def answer_entry(rng: random.Random) -> bytes:
    """An encoded entry holding a chat completion with a 1 KB answer (as the cache stores it)."""
    text = " ".join(rng.choice(WORDS) for _ in range(200))[:1024]
    response = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 30, "completion_tokens": 250, "total_tokens": 280},
    }
    return encode(Entry(response=response, model="gpt-4o-mini", created=1.7e9, prompt="q?"))


def entry_key(i: int) -> str:
    return f"llmemo:default:1:x:{{{hashlib.sha256(str(i).encode()).hexdigest()}}}"


def timed_queries(fn: Callable[[F32], list[Match]], queries: F32) -> tuple[list[float], list[str]]:
    for q in queries[:100]:
        fn(q)
    times, firsts = [], []
    for q in queries:
        start = time.perf_counter()
        found = fn(q)
        times.append(time.perf_counter() - start)
        firsts.append(found[0].key if found else "")
    return times, firsts


def pct(times: Sequence[float], p: float) -> float:
    return float(np.percentile(np.array(times) * 1000, p))


def row(name: str, n: int, search: list[float], hit: list[float], recall: float) -> None:
    print(
        f"| {name} | {n:,} | {pct(search, 50):.3f} | {pct(search, 99):.3f} "
        f"| {pct(hit, 50):.3f} | {pct(hit, 99):.3f} | {recall:.3f} |",
        flush=True,
    )


def recall_at_1(firsts: list[str], truth: npt.NDArray[np.int64]) -> float:
    return sum(f == entry_key(int(t)) for f, t in zip(firsts, truth, strict=True)) / len(truth)


def redisearch_rows(url: str, n: int, data: F32, payloads: list[bytes], queries: F32) -> None:
    truth = exact_first(data, queries)
    client = redis.Redis.from_url(url)
    for algorithm in ("HNSW", "FLAT"):
        for index_id in client.execute_command("FT._LIST"):
            client.execute_command("FT.DROPINDEX", index_id, "DD")
        client.flushall()
        index = RediSearchIndex(client, DIM, dtype="float16")
        if algorithm == "FLAT":  # the baseline: exact scan inside the server
            client.execute_command(
                "FT.CREATE", index.name, "ON", "HASH", "PREFIX", 1, f"{index.name}:", "SCHEMA",
                "s", "TAG", "CASESENSITIVE",
                "v", "VECTOR", "FLAT", 6, "TYPE", "FLOAT16", "DIM", DIM, "DISTANCE_METRIC", "COSINE",
            )  # fmt: skip
        start = time.perf_counter()
        for s in range(0, n, 1000):
            pipe = client.pipeline(transaction=False)
            for i in range(s, min(n, s + 1000)):  # the entries the search reads (the cache's)
                pipe.set(entry_key(i), payloads[i % len(payloads)], px=86_400_000)
            pipe.execute()
            index.add_many(
                [
                    IndexItem(entry_key(i), data[i], SCOPE, payloads[i % len(payloads)], 86_400)
                    for i in range(s, min(n, s + 1000))
                ]
            )
        build = time.perf_counter() - start
        times, firsts = timed_queries(lambda q, ix=index: ix.search(q, SCOPE), queries)
        name = f"RediSearch {algorithm} f16 (build {build:.0f} s)"
        row(name, n, times, times, recall_at_1(firsts, truth))  # the payload came with the KNN
    client.close()


def local_rows(url: str, n: int, data: F32, payloads: list[bytes], queries: F32) -> None:
    truth = exact_first(data, queries)
    store = RedisStore.from_url(url)
    store.client.flushall()
    writer = store.client.pipeline(transaction=False)
    for i in range(n):  # the records (and entries) another process wrote
        key = entry_key(i)
        record = encode_add(key, SCOPE, data[i], None, "float16")
        writer.set(record_key("llmemo:~vec:f16:384", key), record)
        writer.set(key, payloads[i % len(payloads)])
        if i % 2000 == 1999:
            writer.execute()
    writer.execute()
    index = LocalIndex(store, DIM)
    start = time.perf_counter()
    index.count()  # the restart rebuild
    build = time.perf_counter() - start
    times, firsts = timed_queries(lambda q: index.search(q, SCOPE), queries)

    def hit(q: F32) -> list[Match]:
        found = index.search(q, SCOPE)
        if found:
            store.get(found[0].key)
        return found

    hits, _ = timed_queries(hit, queries)
    name = f"LocalIndex usearch f16 + GET (rebuild {build:.1f} s)"
    row(name, n, times, hits, recall_at_1(firsts, truth))
    index.close()
    store.client.flushall()
    store.close()


def local_million(n: int, queries_n: int) -> None:
    data = unit_rows(n, 11)
    queries, _ = near(data, queries_n, 12)
    truth = exact_first(data, queries)
    store = MemoryStore()
    name = "llmemo:~vec:f16:384"
    for i in range(n):
        key = entry_key(i)
        store.set(record_key(name, key), encode_add(key, SCOPE, data[i], None, "float16"), None)
    del data
    index = LocalIndex(store, DIM)
    start = time.perf_counter()
    index.count()
    build = time.perf_counter() - start
    times, firsts = timed_queries(lambda q: index.search(q, SCOPE), queries)
    row(
        f"LocalIndex usearch f16 (rebuild {build:.0f} s)",
        n,
        times,
        times,
        recall_at_1(firsts, truth),
    )


def _drop_all(client: redis.Redis) -> None:
    for index_id in client.execute_command("FT._LIST"):
        client.execute_command("FT.DROPINDEX", index_id, "DD")
    client.flushall()
    time.sleep(0.5)


def _shipped_layout(client: redis.Redis, batch: range, data: F32, payloads: list[bytes]) -> str:
    """What the cache writes today: the entry at its exact key, then the index's record."""
    index = RediSearchIndex(client, DIM, dtype="float16")
    pipe = client.pipeline(transaction=False)
    for i in batch:
        pipe.set(entry_key(i), payloads[i % len(payloads)], px=86_400_000)
    pipe.execute()
    index.add_many(
        [
            IndexItem(entry_key(i), data[i], memory_scope(i), payloads[i % len(payloads)], 86_400)
            for i in batch
        ]
    )
    return record_key(index.name, entry_key(0))


_V1 = "llmemo:~vec:f16:384"


def _v1_layout(client: redis.Redis, batch: range, data: F32, payloads: list[bytes]) -> str:
    """The layout before LAYOUT 2 (raw commands): five TAGs and a copy of the entry in the hash."""
    if not client.execute_command("FT._LIST"):
        tags = [
            x
            for tag in ("ns", "ver", "tenant", "fp", "model")
            for x in (tag, "TAG", "CASESENSITIVE")
        ]
        client.execute_command(
            "FT.CREATE", _V1, "ON", "HASH", "PREFIX", 1, f"{_V1}:", "SCHEMA", *tags,
            "vec", "VECTOR", "HNSW", 12, "TYPE", "FLOAT16", "DIM", DIM, "DISTANCE_METRIC", "COSINE",
            "M", 16, "EF_CONSTRUCTION", 200, "EF_RUNTIME", 128,
        )  # fmt: skip
    pipe = client.pipeline(transaction=False)
    for i in batch:
        payload = payloads[i % len(payloads)]
        pipe.set(entry_key(i), payload, px=86_400_000)
        key = record_key(_V1, entry_key(i))
        fields = {**memory_scope(i).tags(), "vec": data[i].astype("<f2").tobytes(), "p": payload}
        pipe.hset(key, mapping=fields)
        pipe.pexpire(key, 86_400_000)
    pipe.execute()
    return record_key(_V1, entry_key(0))


def memory_scope(i: int) -> IndexScope:
    """Entry i's scope: 1,000 context fingerprints, so ~n/1000 entries per scope."""
    fp = hashlib.sha256(str(i % 1000).encode()).hexdigest()
    return IndexScope("default", 1, None, fp, "minilm:all-MiniLM-L6-v2")


MemoryLayout = Callable[[redis.Redis, range, F32, list[bytes]], str]


def memory_rows(url: str, n: int, payloads: list[bytes]) -> None:
    """Redis bytes per semantic entry (used_memory delta / n), everything the flow keeps counted:
    the exact-key entry, the vector hash and RediSearch's own structures (HNSW M=16)."""
    client = redis.Redis.from_url(url)
    data = unit_rows(n, 21)
    layouts: list[tuple[str, MemoryLayout, int | None]] = [
        ("before: entry + hash (5 TAGs, vector, entry copy) + index", _v1_layout, None),
        ("shipped: entry + hash (1 TAG, vector) + index", _shipped_layout, None),
        ("shipped, server hash-max-listpack-value 1024", _shipped_layout, 1024),
    ]
    print("\n| layout | Redis bytes per semantic entry | hash MEMORY USAGE | entry MEMORY USAGE |")
    print("|---|---:|---:|---:|")
    default = client.config_get("hash-max-listpack-value")["hash-max-listpack-value"]
    for name, write, listpack in layouts:
        _drop_all(client)
        client.config_set("hash-max-listpack-value", listpack or default)
        before = int(client.info("memory")["used_memory"])
        for s in range(0, n, 1000):
            record = write(client, range(s, min(n, s + 1000)), data, payloads)
        time.sleep(0.5)
        used = (int(client.info("memory")["used_memory"]) - before) / n
        vector_hash = client.memory_usage(record, samples=0)
        entry = client.memory_usage(entry_key(0), samples=0)
        print(f"| {name} | {used:,.0f} | {vector_hash:,} | {entry:,} |", flush=True)
    client.config_set("hash-max-listpack-value", default)
    _drop_all(client)
    mean = sum(map(len, payloads)) / len(payloads)
    print(f"(encoded entry: {mean:.0f} bytes on average for a 1 KB answer; {n:,} entries)")
    client.close()


def index_stage(args: argparse.Namespace, servers: Servers) -> None:
    rng = random.Random(5)
    payloads = [answer_entry(rng) for _ in range(500)]
    print(
        "\n| index | n | search p50 ms | search p99 ms | search + payload p50 ms "
        "| search + payload p99 ms | recall@1 |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in args.sizes:
        data = unit_rows(n, n)
        queries, _ = near(data, args.queries, n + 1)
        redisearch_rows(servers.stack, n, data, payloads, queries)
        local_rows(servers.plain, n, data, payloads, queries)
    if args.million:
        local_million(1_000_000, args.queries)
    memory_rows(servers.stack, args.memory_entries, payloads)


def memory_stage(args: argparse.Namespace, servers: Servers) -> None:
    rng = random.Random(5)
    memory_rows(servers.stack, args.memory_entries, [answer_entry(rng) for _ in range(500)])


STAGES: dict[str, Callable[[argparse.Namespace, Servers], None]] = {
    "index": index_stage,  # includes the memory rows
    "memory": memory_stage,  # the memory rows alone
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="+", default=["index"], choices=list(STAGES))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--million", action="store_true", help="also LocalIndex at 1M vectors")
    parser.add_argument("--memory-entries", type=int, default=10_000)
    args = parser.parse_args()
    print(
        f"# {platform.node()}: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}; HNSW {HNSW()}"
    )
    with ExitStack() as stack:
        servers = Servers(
            stack=stack.enter_context(redis_stack_server()).url,
            plain=stack.enter_context(RedisServer()).url,
        )
        for name in args.stages:
            STAGES[name](args, servers)


if __name__ == "__main__":
    main()
