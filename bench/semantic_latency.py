"""Semantic-hit latency, stage by stage: embed (added with the hybrid flow), index search, payload.

Run: .venv/bin/python bench/semantic_latency.py [--stages index|memory|hit] [--sizes 10000 100000]
         [--million] [--queries 2000] [--hit-entries 3000] [--hit-queries 500]
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

Stage `hit`: the whole semantic hit as a user gets it, for each size and both indexes
(RediSearchIndex on Redis Stack, LocalIndex on plain Redis): a sync `Cache(store,
semantic=SemanticLayer(MiniLM, index, threshold=0.75))` holds n entries in ONE scope. Of them,
`--hit-entries` (default 3,000) go through the real flow: distinct synthetic prompts (templates
over frames, topics and qualifiers, below), really embedded by MiniLM (in one batch, seeded into
the embedding cache so that `cache.store` costs no forward pass each), then `cache.store`: the
entry at its exact key, its vector added by the layer. The rest is padding, so the KNN walks n
vectors: entries the cache encodes (`prepare`, `encode_entry`, `key_of`) for placeholder prompts,
SET at their exact keys, with unit vectors drawn from a Gaussian fitted to the real embeddings
(same mean and covariance: as close to the queries as unrelated real prompts are, cosine p50
~0.2, a query's nearest pad ~0.7 at p99, under the threshold) in the queries' scope; RediSearch gets them through `add_many`,
LocalIndex as the records an earlier process wrote (`encode_add`), loaded when it starts. Then
`--hit-queries` paraphrases the cache has never seen (each of a stored prompt; 20 more first as
warm-up) go through `cache.lookup`: exact GET miss, live MiniLM embedding (embedding-cache GET
miss, forward pass, SET), KNN (+ GET of the entry for LocalIndex; RediSearch reads it in its
script), guard, backfill SET. Reported: that lookup, the forward pass alone (timed inside it),
lookup minus forward pass, the KNN alone (`index.search`, timed inside it), and the same lookup
again, which must be an exact hit with no embedding (checked on every query). BLAS runs one thread
for the whole script (see bench/semantic_hit.py).

Stages are functions in STAGES.
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # before numpy: see bench/semantic_hit.py (stage `hit`)

import argparse  # noqa: E402
import hashlib  # noqa: E402
import itertools  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import checkout  # noqa: E402, F401 - the repository root on sys.path, for devtools/
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import redis  # noqa: E402
from semantic_hit import Timed, answer, chat  # noqa: E402  (bench/, the script's directory)

from devtools.redis_server import RedisServer  # noqa: E402
from devtools.redis_stack import redis_stack_server  # noqa: E402
from llmemo import Cache  # noqa: E402
from llmemo.core.entry import Entry, encode  # noqa: E402
from llmemo.core.semantic import SemanticLayer  # noqa: E402
from llmemo.embed.cached_base import embedding_key, encode_vector  # noqa: E402
from llmemo.embed.minilm import MiniLMEmbedder  # noqa: E402
from llmemo.index import (  # noqa: E402
    HNSW,
    LocalIndex,
    RediSearchIndex,
    open_index,
)
from llmemo.index.base import IndexItem, IndexScope, Match, record_key  # noqa: E402
from llmemo.index.changelog import encode_add  # noqa: E402
from llmemo.stores import RedisStore  # noqa: E402
from llmemo.stores.memory import MemoryStore  # noqa: E402

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


# -- stage `hit`: the whole semantic hit through a Cache, live MiniLM, at n entries in scope ----

TOPICS = [
    "chess", "piano", "python", "spanish", "cooking", "running", "drawing", "poker", "guitar",
    "swimming", "algebra", "typing", "public speaking", "essay writing", "photography", "knitting",
    "rock climbing", "sailing", "baking bread", "chemistry", "calculus", "golf", "tennis", "yoga",
    "rust programming", "gardening", "woodworking", "painting", "singing", "cycling", "skiing",
    "surfing", "juggling", "sewing", "pottery", "dancing", "boxing", "meditation", "statistics",
    "accounting", "negotiation", "data analysis", "bird watching", "beekeeping", "calligraphy",
    "archery", "fencing", "rowing", "origami", "astronomy",
]  # fmt: skip
FRAMES = [  # (prompt, its paraphrase)
    ("How do I get better at {t}{q}?", "What is the best way to improve at {t}{q}?"),
    ("What are common mistakes beginners make in {t}{q}?",
     "Which errors do new learners usually make in {t}{q}?"),
    ("How long does it take to learn {t}{q}?", "How much time do I need to learn {t}{q}?"),
    ("What equipment do I need to start {t}{q}?", "Which gear is required to begin {t}{q}?"),
    ("Can you recommend a good book about {t}{q}?", "Which book would you suggest for {t}{q}?"),
    ("How can I stay motivated to practise {t}{q}?",
     "What helps me keep my motivation to practise {t}{q}?"),
    ("Is {t} a good hobby{q}?", "Would {t} make a good pastime{q}?"),
    ("How much does it cost to take up {t}{q}?", "What is the price of getting into {t}{q}?"),
    ("What should I practise first when learning {t}{q}?",
     "Where should I begin my practice when studying {t}{q}?"),
    ("How do I find a teacher for {t}{q}?", "Where can I find an instructor for {t}{q}?"),
]  # fmt: skip
QUALIFIERS = [
    "", " as an adult", " on a small budget", " at home", " in the winter", " with a busy job",
    " as a teenager", " in a group",
]  # fmt: skip
HIT_THRESHOLD = 0.75  # every paraphrase clears it (cosine to its own prompt: p1 ~0.81)


def prompt_pairs(n: int) -> list[tuple[str, str]]:
    """n distinct (prompt, paraphrase) pairs from the templates above (4,000 at most)."""
    combos = list(itertools.product(FRAMES, TOPICS, QUALIFIERS))
    random.Random(1).shuffle(combos)
    if n > len(combos):
        raise SystemExit(f"--hit-entries: at most {len(combos)} distinct prompts")
    return [(a.format(t=t, q=q), b.format(t=t, q=q)) for (a, b), t, q in combos[:n]]


def pad_prompt(j: int) -> str:
    """A stored prompt for padding entry j (its number makes the guard reject it as a match)."""
    return f"Question {j} of the archive: what did {TOPICS[j % len(TOPICS)]} cost in year {j}?"


def like(real: F32, n: int, seed: int) -> F32:
    """n unit vectors drawn from a Gaussian fitted to `real` (mean and covariance of the real
    MiniLM embeddings): as anisotropic as real prompts, none a paraphrase of any of them."""
    rng = np.random.default_rng(seed)
    rows = rng.multivariate_normal(real.mean(0), np.cov(real.T), size=n, method="eigh")
    rows = rows.astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class TimedIndex:
    """A VectorIndex that times its searches (the KNN alone; RediSearch reads the entry in it)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.times: list[float] = []

    def search(self, *args: Any, **kwargs: Any) -> list[Match]:
        started = time.perf_counter()
        found: list[Match] = self.inner.search(*args, **kwargs)
        self.times.append(time.perf_counter() - started)
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def pad(cache: Cache, kind: str, n: int, vectors: F32, scope: IndexScope, version: int) -> None:
    """Entries 0..n-1 stored at their exact keys as the cache encodes them, their vectors in the
    index: RediSearch through `add_many`; LocalIndex as the records an earlier process wrote
    (`encode_add`), which the index loads when it starts (its restart path)."""
    store = cache.backend
    client: Any = store.client  # type: ignore[attr-defined]
    assert cache.semantic is not None
    index = cache.semantic.open_index()
    for start in range(0, n, 1000):
        items = []
        pipe = client.pipeline(transaction=False)
        for j in range(start, min(n, start + 1000)):
            call = cache._prepare(chat(pad_prompt(j)))
            value, ttl, _ = cache._encode_entry(call, answer(j))
            assert value is not None and cache.semantic is not None
            if cache.semantic.scope(call, version) != scope:
                raise SystemExit("a padding entry is out of the queries' scope")
            key = cache._key_of(call, version)
            pipe.set(key, value, px=None if ttl is None else int(ttl * 1000))
            if kind == "local":
                blob = encode_add(
                    key, scope, vectors[j], None if ttl is None else time.time() + ttl, "float16"
                )
                pipe.set(
                    record_key(index.name, key), blob, px=None if ttl is None else int(ttl * 1000)
                )
            else:
                items.append(IndexItem(key, vectors[j], scope, value, ttl))
        pipe.execute()
        if items:
            index.add_many(items)  # type: ignore[attr-defined]


def hit_cell(
    url: str, kind: str, n: int, model: MiniLMEmbedder, pairs: list[tuple[str, str]],
    real: F32, args: argparse.Namespace,
) -> None:  # fmt: skip
    """One row: n entries in one scope (len(pairs) through the flow, the rest padding)."""
    client = redis.Redis.from_url(url)
    if kind == "redisearch":
        _drop_all(client)
    client.flushall()
    client.close()
    timed = Timed(model)
    store = RedisStore.from_url(url)
    index = TimedIndex(open_index(store, DIM, kind=kind))  # type: ignore[arg-type]
    layer = SemanticLayer(timed, index=index, threshold=HIT_THRESHOLD)  # type: ignore[arg-type]
    cache = Cache(store, semantic=layer)
    version = int(store.counters(cache._meta_key(cache.namespace)).get("version", 0))
    scope = layer.scope(cache._prepare(chat(pairs[0][0])), version)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    pad(cache, kind, n - len(pairs), like(real, n - len(pairs), n), scope, version)
    for i, (text, _) in enumerate(
        pairs
    ):  # the embedding cache seeded: filling costs no forward pass
        key = embedding_key(cache.prefix, model.name, model.model, model.dim, text)
        store.set(key, encode_vector(real[i], "float32"), None)
    for i, (text, _) in enumerate(pairs):  # the real flow: entry, then its vector indexed
        if not cache.store(chat(text), answer(i)):
            raise SystemExit(f"entry {i} was not stored")
    fill = time.perf_counter() - started
    count = index.count()
    if count != n:
        raise SystemExit(f"{kind}: {count} vectors indexed, expected {n}")
    picks = random.Random(7).sample(range(len(pairs)), args.hit_queries + 20)
    hits, embeds, knns, rests, repeats, own = [], [], [], [], [], 0
    for turn, i in enumerate(picks):
        before, searches = len(timed.times), len(index.times)
        started = time.perf_counter()
        hit = cache.lookup(chat(pairs[i][1]))
        took = time.perf_counter() - started
        if hit is None or hit.kind != "semantic":
            raise SystemExit(f"{kind} {n}: query {i} was not a semantic hit")
        embed = sum(timed.times[before:])
        texts = timed.texts
        started = time.perf_counter()
        again = cache.lookup(chat(pairs[i][1]))
        repeat = time.perf_counter() - started
        if again is None or again.kind != "exact" or timed.texts != texts:
            raise SystemExit(f"{kind} {n}: the repeat of query {i} was not an exact hit")
        if turn < 20:
            continue  # warm-up
        hits.append(took)
        embeds.append(embed)
        knns.append(sum(index.times[searches:]))
        rests.append(took - embed)
        repeats.append(repeat)
        own += hit.key == cache._key_of(cache._prepare(chat(pairs[i][0])), version)
    cells = " | ".join(
        f"{pct(values, 50):.2f} | {pct(values, 99):.2f}" for values in (hits, embeds, rests, knns)
    )
    print(
        f"| {'RediSearchIndex (Redis Stack)' if kind == 'redisearch' else 'LocalIndex (Redis 7)'} "
        f"| {n:,} | {cells} | {pct(repeats, 50):.3f} | {pct(repeats, 99):.2f} "
        f"| {own}/{len(hits)} | {fill:.0f} | {load:.1f} / {os.getloadavg()[0]:.1f} |",
        flush=True,
    )
    cache.close()


def hit_stage(args: argparse.Namespace, servers: Servers) -> None:
    model = MiniLMEmbedder()
    model.embed(["warm up"])
    pairs = prompt_pairs(args.hit_entries)
    real = model.embed([text for text, _ in pairs])
    print(
        f"\n{args.hit_entries:,} entries through the flow, the rest padding; "
        f"{args.hit_queries} new paraphrases per row; threshold {HIT_THRESHOLD}; ms\n"
    )
    print(
        "| index | entries in scope | semantic hit p50 | p99 | embed alone p50 | p99 "
        "| hit minus embed p50 | p99 | KNN alone p50 | p99 | repeat (exact hit) p50 | p99 "
        "| own answer | fill s | load before / after |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in args.sizes:
        for kind, url in (("redisearch", servers.stack), ("local", servers.plain)):
            hit_cell(url, kind, n, model, pairs, real, args)


STAGES: dict[str, Callable[[argparse.Namespace, Servers], None]] = {
    "index": index_stage,  # includes the memory rows
    "memory": memory_stage,  # the memory rows alone
    "hit": hit_stage,  # the whole semantic hit through a Cache, live MiniLM embedding
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="+", default=["index"], choices=list(STAGES))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--million", action="store_true", help="also LocalIndex at 1M vectors")
    parser.add_argument("--memory-entries", type=int, default=10_000)
    parser.add_argument("--hit-entries", type=int, default=3000, help="stage hit: real entries")
    parser.add_argument("--hit-queries", type=int, default=500, help="stage hit: timed queries")
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
