"""Verified semantic hits (`max_error`) against fixed thresholds, on a stream built from labelled pairs.

Run: .venv/bin/python bench/verified.py ../shared/data/qqp_dev_20k.jsonl
         [--limit PAIRS] [--floor 0.85] [--seed 1]
         [--embedding-cache $TMPDIR/llmemo-bench/embeddings.db]

The stream: every distinct question of the pairs file, shuffled (seeded), each asked once. The
questions are grouped into classes of duplicates (connected components of the pairs labelled
duplicate), and a simulated upstream answers every question of a class with the class's one
answer. A semantic hit is right when it serves the query's class answer, wrong otherwise.

Every setting runs the whole stream through a real `Cache` (memory store, LocalIndex, the guard,
all-MiniLM-L6-v2 vectors from llmemo's numpy runtime, cached in a SQLite file outside the
repository): the fixed thresholds 0.90, 0.93 and 0.95, and verified hits at several `max_error`
with `--floor` as the layer threshold (candidates under it are never considered) and the exact
judge (the simulated answers are equal within a class, so equality is the truth).

Columns: hits (semantic), wrong (of them), error = wrong / hits, recall = right hits / the queries
whose class was asked before (the hits there were to get), upstream = calls to the simulated
upstream, explored = calls spent on candidates the bound would have served (the extra cost), and
refused = candidates the bound did not cover (misses, judged for free). Not a test: nothing is
asserted.
"""

from __future__ import annotations

import os

# One BLAS thread: a single query's matrix-vector product is 20x slower with several on a busy
# machine (as `llmemo serve --semantic` sets it). Before numpy is imported.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

import llmemo  # noqa: E402
from llmemo import AsyncCache  # noqa: E402
from llmemo import calibrate as cal  # noqa: E402
from llmemo.core.semantic import AsyncSemanticLayer  # noqa: E402
from llmemo.core.verified import Prior, Verified  # noqa: E402
from llmemo.embed import CachedEmbedder  # noqa: E402
from llmemo.embed.minilm import MiniLMEmbedder  # noqa: E402
from llmemo.stores import keys  # noqa: E402
from llmemo.stores.memory import AsyncMemoryStore  # noqa: E402
from llmemo.stores.sqlite import SQLiteStore  # noqa: E402

FIXED = (0.90, 0.93, 0.95)
MAX_ERRORS = (0.01, 0.02, 0.05, 0.10)


class TableEmbedder:
    """The stream's vectors, computed once by MiniLM (each run reads them instead of embedding
    37,672 texts again: the benchmark measures decisions, not embedding speed)."""

    def __init__(self, texts: Sequence[str], matrix: npt.NDArray[np.float32]) -> None:
        self.name = "minilm-f32"
        self.model = "all-MiniLM-L6-v2"
        self.dim = int(matrix.shape[1])
        self._rows = {text: i for i, text in enumerate(texts)}
        self._matrix = matrix

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return self._matrix[[self._rows[t] for t in texts]]


def classes(pairs: Sequence[cal.Pair], texts: Sequence[str]) -> dict[str, int]:
    """Each text's class: the connected components of the duplicate pairs (union-find)."""
    parent = list(range(len(texts)))
    row = {t: i for i, t in enumerate(texts)}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for p in pairs:
        if p.duplicate:
            parent[root(row[p.a])] = root(row[p.b])
    return {t: root(row[t]) for t in texts}


def chat(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


def reply(label: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"answer of class {label}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14},
    }


async def run(
    name: str,
    layer: AsyncSemanticLayer,
    stream: Sequence[str],
    label: dict[str, int],
    verbose: bool = False,
) -> None:
    cache = AsyncCache(AsyncMemoryStore(), semantic=layer, namespace="bench")
    seen: set[int] = set()
    calls = hits = wrong = chances = 0
    started = time.perf_counter()
    for text in stream:
        cls = label[text]
        chances += cls in seen
        seen.add(cls)

        async def upstream(cls: int = cls) -> dict[str, Any]:
            nonlocal calls
            calls += 1
            return reply(cls)

        result = await cache.compute(chat(text), upstream)
        if result.status == "semantic":
            hits += 1
            wrong += (
                result.response["choices"][0]["message"]["content"]
                != reply(cls)["choices"][0]["message"]["content"]
            )
    await cache.flush()
    counters = await cache.backend.counters(keys.stats_key(cache.prefix, "bench"))
    prior = await cache.backend.counters(keys.verified_key(cache.prefix, "bench", layer.space))
    await cache.close()
    error = wrong / hits if hits else 0.0
    recall = (hits - wrong) / chances if chances else 0.0
    print(
        f"| {name} | {hits:,} | {wrong:,} | {error:.4f} | {recall:.3f} | {calls:,} "
        f"| {int(counters.get('verified_explored', 0)):,} "
        f"| {int(counters.get('verified_refused_by_bound', 0)):,} "
        f"| {time.perf_counter() - started:.0f} s |",
        flush=True,
    )
    if prior and verbose:
        evidence = Prior.of(prior)
        print(
            "  observed (bin: same/different):",
            ", ".join(
                f"{b / 100:.2f}: {evidence.ok[b]:.0f}/{evidence.bad[b]:.0f}"
                for b in range(101)
                if evidence.ok[b] + evidence.bad[b]
            ),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pairs", type=Path)
    default_cache = Path(tempfile.gettempdir()) / "llmemo-bench" / "embeddings.db"
    parser.add_argument("--embedding-cache", type=Path, default=default_cache)
    parser.add_argument("--limit", type=int, help="the first N pairs only")
    parser.add_argument("--floor", type=float, default=0.85, help="the verified runs' threshold")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", action="store_true", help="print the observations per bin")
    parser.add_argument("--max-error", type=float, nargs="*", default=list(MAX_ERRORS))
    parser.add_argument("--fixed", type=float, nargs="*", default=list(FIXED))
    args = parser.parse_args()

    pairs = cal.read_pairs(args.pairs, args.limit)
    texts = list(dict.fromkeys(t for p in pairs for t in (p.a, p.b)))
    args.embedding_cache.parent.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(str(args.embedding_cache))
    matrix = np.asarray(CachedEmbedder(MiniLMEmbedder(), store, ttl=None).embed(texts), np.float32)
    store.close()
    label = classes(pairs, texts)
    stream = list(texts)
    random.Random(args.seed).shuffle(stream)
    sizes = np.bincount(np.unique(list(label.values()), return_inverse=True)[1])
    print(
        f"{args.pairs.name}: {len(pairs):,} pairs, a stream of {len(stream):,} questions in "
        f"{len(sizes):,} classes ({int((sizes > 1).sum()):,} with duplicates); seed {args.seed}; "
        f"llmemo {llmemo.__version__}, numpy {np.__version__}, Python {platform.python_version()}"
    )
    print(
        "\n| setting | hits | wrong | error | recall | upstream | explored | refused | time |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    embedder = TableEmbedder(texts, matrix)
    for threshold in args.fixed:
        layer = AsyncSemanticLayer(embedder, index="local", threshold=threshold)
        asyncio.run(run(f"fixed {threshold:.2f} + guard", layer, stream, label))
    for max_error in args.max_error:
        config = Verified(max_error, seed=args.seed)
        layer = AsyncSemanticLayer(embedder, index="local", threshold=args.floor, max_error=config)
        name = f"max_error {max_error:g} (floor {args.floor:g})"
        asyncio.run(run(name, layer, stream, label, args.verbose))


if __name__ == "__main__":
    main()
