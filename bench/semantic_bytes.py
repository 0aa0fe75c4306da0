"""Bytes in Redis per semantic entry, everything the flow writes counted, by key kind.

    python bench/semantic_bytes.py                        # this checkout, N = 2,000
    python bench/semantic_bytes.py --src ../baseline/src --src src --rounds 2   # A/B, interleaved
    python bench/semantic_bytes.py --levers -n 20000     # the index's levers, without MiniLM

Each run is a child process importing llmemo from one `--src` (so two trees compare in one
command, alternating) on a fresh Redis Stack (RediSearch index, the default `SemanticLayer`):
N distinct QQP dev questions (`../shared/data/qqp_dev_20k.jsonl`, read in place), each asked
(a miss, or a semantic hit for the few that paraphrase an earlier one: counted) then stored with its own 1,024-byte answer, as an application fills a cache. The
vectors are all-MiniLM-L6-v2's, computed in batches before the fill (the bytes do not depend on
when they are computed). Reported per entry: `INFO memory used_memory` delta from an empty
database (the index's own memory included), and `MEMORY USAGE key SAMPLES 0` summed by kind:
entries, vector hashes, embedding-cache rows, other (counters, the namespace's meta).

`--levers`: what the vector hash and the RediSearch index hold per vector, and what each lever
moves: HNSW M (16 shipped, 8, 4), a FLAT index (no graph), and a shorter vector-hash key. N random
unit 384-d FLOAT16 vectors written as the shipped layout's hashes (`s` scope tag, `v` vector) on a
fresh Redis Stack per variant; `used_memory` delta per vector (hash + index, no entry).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import checkout  # noqa: F401 - the repository root on sys.path, for devtools/

DATA = next(
    (
        found
        for folder in Path(__file__).resolve().parents[1:]
        if (found := folder / "shared" / "data" / "qqp_dev_20k.jsonl").is_file()
    ),
    Path("../shared/data/qqp_dev_20k.jsonl"),
)
KINDS = ("entry", "vector hash", "embedding row", "other")


def questions(path: Path, n: int) -> list[str]:
    """The first `n` distinct questions of the data set, in file order."""
    seen: dict[str, None] = {}
    with path.open() as lines:
        for line in lines:
            if line.strip():
                row = json.loads(line)
                seen.setdefault(row["a"], None)
                seen.setdefault(row["b"], None)
                if len(seen) >= n:
                    break
    return list(seen)[:n]


def answers(texts: Sequence[str], size: int) -> list[str]:
    """One answer of `size` bytes per question: other questions strung together (text-like)."""
    out = []
    for i in range(len(texts)):
        parts, length, j = [f"Answer {i}:"], 10, i * 7
        while length < size:
            parts.append(texts[j % len(texts)])
            length += len(parts[-1]) + 1
            j += 1
        out.append(" ".join(parts)[:size])
    return out


def kind(key: bytes) -> str:
    text = key.decode(errors="replace")
    if ":emb:" in text:
        return "embedding row"
    if ":~vec" in text:
        return "vector hash"
    if ":x:" in text:
        return "entry"
    return "other"


def child(n: int, answer_bytes: int) -> dict[str, Any]:
    """One fill on a fresh Redis Stack, with the llmemo on sys.path; the figures per entry."""
    import numpy as np
    import redis

    from devtools.redis_stack import redis_stack_server
    from llmemo import Cache
    from llmemo.core.semantic import SemanticLayer
    from llmemo.embed.minilm import MiniLMEmbedder

    texts = questions(DATA, n)
    replies = answers(texts, answer_bytes)
    minilm = MiniLMEmbedder()
    memo: dict[str, Any] = {}
    for start in range(0, len(texts), 256):
        chunk = texts[start : start + 256]
        memo.update(zip(chunk, minilm.embed(chunk), strict=True))

    class Precomputed:  # MiniLM's name, model and vectors, computed above
        name, model, dim = minilm.name, minilm.model, minilm.dim

        def embed(self, batch: Sequence[str]) -> Any:
            return np.stack([memo[t] if t in memo else minilm.embed([t])[0] for t in batch])

    with redis_stack_server() as server:
        client = redis.Redis.from_url(server.url)
        cache = Cache.from_url(server.url, semantic=SemanticLayer(Precomputed(), "redisearch"))  # type: ignore[arg-type]
        before = int(client.info("memory")["used_memory"])
        hits = 0
        for i, (question, reply) in enumerate(zip(texts, replies, strict=True)):
            request = {"model": "gpt-4o-mini", "temperature": 0, "messages": [
                {"role": "user", "content": question}]}  # fmt: skip
            hits += cache.lookup(request) is not None  # a QQP paraphrase of an earlier one
            cache.store(request, {
                "id": f"chatcmpl-{i}", "object": "chat.completion", "created": 1_700_000_000,
                "model": "gpt-4o-mini", "choices": [{"index": 0, "message": {
                    "role": "assistant", "content": reply}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 20, "completion_tokens": 250, "total_tokens": 270},
            })  # fmt: skip
        cache.flush()
        used = int(client.info("memory")["used_memory"]) - before
        usage = dict.fromkeys(KINDS, 0)
        count = dict.fromkeys(KINDS, 0)
        for key in client.scan_iter(count=1000):
            usage[kind(key)] += int(client.memory_usage(key, samples=0) or 0)
            count[kind(key)] += 1
        cache.close()
        client.close()
    return {
        "hits": hits,
        "used_memory": used / n,
        "keys": sum(usage.values()) / n,
        **{f"usage:{k}": usage[k] / n for k in KINDS},
        **{f"count:{k}": count[k] / n for k in KINDS},
    }


def levers(n: int) -> None:
    """The `--levers` table (see the module doc)."""
    import hashlib

    import numpy as np
    import redis

    from devtools.redis_stack import redis_stack_server

    rows = np.random.default_rng(0).standard_normal((n, 384)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    shipped = "llmemo:~vec2:f16:384:"
    variants = [
        ("HNSW M 16, shipped key (shipped)", ["HNSW", 10, "M", 16], shipped),
        ("HNSW M 8", ["HNSW", 10, "M", 8], shipped),
        ("HNSW M 4", ["HNSW", 10, "M", 4], shipped),
        ("FLAT (no graph)", ["FLAT", 6], shipped),
        ("HNSW M 16, key 10 B shorter", ["HNSW", 10, "M", 16], "llmemo:~v2:"),
    ]
    print(f"N = {n:,} random 384-d FLOAT16 vectors; bytes per vector, hash + index (no entry)")
    print(
        "| variant | used_memory / vector | vector hash (MEMORY USAGE) | key bytes |\n|---|---:|---:|---:|"
    )
    with redis_stack_server() as server:
        client = redis.Redis.from_url(server.url, socket_timeout=60)
        for label, (algo, count, *graph), prefix in variants:
            client.flushall()
            schema = [algo, count, "TYPE", "FLOAT16", "DIM", 384, "DISTANCE_METRIC", "COSINE"]
            if graph:
                schema += [*graph, "EF_CONSTRUCTION", 200]
            client.execute_command(
                "FT.CREATE", "idx", "ON", "HASH", "PREFIX", 1, prefix, "SCHEMA",
                "s", "TAG", "CASESENSITIVE", "v", "VECTOR", *schema,
            )  # fmt: skip
            before = int(client.info("memory")["used_memory"])
            key = ""
            for start in range(0, n, 2000):
                pipe = client.pipeline(transaction=False)
                for i in range(start, min(n, start + 2000)):
                    digest = hashlib.sha256(str(i).encode()).hexdigest()
                    key = f"{prefix}llmemo:default:1:x:{{{digest}}}"
                    vector = rows[i].astype(np.float16).tobytes()
                    pipe.hset(key, mapping={"s": digest[:32], "v": vector})
                pipe.execute()
            used = (int(client.info("memory")["used_memory"]) - before) / n
            usage = client.memory_usage(key, samples=0)
            print(f"| {label} | {used:,.0f} | {usage:,} | {len(key)} |", flush=True)
        client.close()


def run(src: str, n: int, answer_bytes: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
    args = [sys.executable, __file__, "--child", "-n", str(n), "--answer-bytes", str(answer_bytes)]
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the run with {src} failed:\n{done.stderr}")
    out = done.stdout
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", action="append", help="a tree's src/ (repeat to compare)")
    parser.add_argument("-n", type=int, default=2000, help="entries stored")
    parser.add_argument("--answer-bytes", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=1, help="runs of each tree, alternating")
    parser.add_argument("--levers", action="store_true", help="the index levers (module doc)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.levers:
        levers(args.n)
        return
    if args.child:
        print(json.dumps(child(args.n, args.answer_bytes)))
        return
    srcs = args.src or [str(Path(__file__).resolve().parents[1] / "src")]
    print(f"N = {args.n}, answers of {args.answer_bytes} B, data {DATA}; bytes per entry")
    head = ["tree", "used_memory", "keys", *(f"{k} (keys/entry)" for k in KINDS), "lookup hits"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in range(args.rounds):
        for src in srcs:
            f = run(src, args.n, args.answer_bytes)
            cells = [f"{f['usage:' + k]:,.0f} ({f['count:' + k]:.2f})" for k in KINDS]
            row = [f"{src} (round {r + 1})", f"{f['used_memory']:,.0f}", f"{f['keys']:,.0f}"]
            print("| " + " | ".join([*row, *cells, str(f["hits"])]) + " |", flush=True)


if __name__ == "__main__":
    main()
