"""Semantic hit latency through the Cache, with live embedding (the hybrid flow end to end).

Run: .venv/bin/python bench/semantic_hit.py [--entries 2000] [--queries 300]
Starts a private Debian redis-server and a private Redis Stack on free ports.

For each backend (memory + LocalIndex, plain Redis + LocalIndex, Redis Stack + RediSearch), a
sync `Cache` with the semantic layer is filled with `--entries` answers (their prompts' vectors
pre-seeded in the embedding cache, so filling is fast), then asked `--queries` paraphrases it has
never seen: each is a live MiniLM embedding + one KNN + (LocalIndex) one GET + the backfill SET.
Reported: `compute()` p50/p99 of those semantic hits, the embedding alone (p50/p99 of
MiniLMEmbedder.embed on one new text, measured in the same loop), and the same query asked again
(an exact hit on the backfilled key: no embedding; the embedder's call count is checked).
The threshold is 0.8 here (latency does not depend on it; the paraphrases are all hits at 0.8).
BLAS runs one thread (OPENBLAS_NUM_THREADS=1 unless set): for one short text its threads only
add hand-offs, and on this shared 2-core machine they doubled the embedding p50 (17.6 -> 7.3 ms).
Not a test: nothing is asserted but that the hits are hits.
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # before numpy is imported

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from contextlib import ExitStack  # noqa: E402

import checkout  # noqa: E402, F401 - the repository root on sys.path, for devtools/
import numpy as np  # noqa: E402

from devtools.redis_server import RedisServer  # noqa: E402
from devtools.redis_stack import redis_stack_server  # noqa: E402
from llmemo import Cache  # noqa: E402
from llmemo.core.semantic import SemanticLayer  # noqa: E402
from llmemo.embed.base import Matrix  # noqa: E402
from llmemo.embed.cached_base import embedding_key, encode_vector  # noqa: E402
from llmemo.embed.minilm import MiniLMEmbedder  # noqa: E402
from llmemo.stores import from_url  # noqa: E402

TOPICS = [
    "chess", "piano", "python", "spanish", "cooking", "running", "drawing", "poker", "guitar",
    "swimming", "algebra", "typing", "public speaking", "writing", "photography", "knitting",
    "climbing", "sailing", "baking", "chemistry", "calculus", "golf", "tennis", "yoga", "rust",
]  # fmt: skip


def prompt(i: int) -> str:
    return f"How do I get better at {TOPICS[i % len(TOPICS)]} as a member of club {i}?"


def paraphrase(i: int) -> str:
    return f"What is the best way to improve at {TOPICS[i % len(TOPICS)]} for club {i} members?"


class Timed:
    """MiniLM, timing each call and counting texts (to show a repeat embeds nothing)."""

    def __init__(self, inner: MiniLMEmbedder) -> None:
        self.inner, self.name, self.model, self.dim = inner, inner.name, inner.model, inner.dim
        self.times: list[float] = []
        self.texts = 0

    def embed(self, texts: Sequence[str]) -> Matrix:
        started = time.perf_counter()
        out = self.inner.embed(texts)
        self.times.append(time.perf_counter() - started)
        self.texts += len(texts)
        return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q))


def chat(text: str) -> dict[str, object]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


def answer(i: int) -> dict[str, object]:
    text = f"Practise a little every day ({i}). " * 30  # ~1 KB answer
    return {
        "id": f"c{i}", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 200, "total_tokens": 220},
    }  # fmt: skip


def run(
    name: str, url: str, model: MiniLMEmbedder, vectors: Matrix, entries: int, queries: int
) -> None:
    store = from_url(url)
    for i in range(entries):  # seed the embedding cache: filling must not cost an embedding each
        key = embedding_key("llmemo", model.name, model.model, model.dim, prompt(i))
        store.set(key, encode_vector(vectors[i], "float32"), None)
    timed = Timed(model)
    cache = Cache(store, semantic=SemanticLayer(timed, threshold=0.8))
    for i in range(entries):
        cache.store(chat(prompt(i)), answer(i))
    index = type(cache.semantic.open_index()).__name__ if cache.semantic else "-"
    hits, repeats, embeds = [], [], []
    for i in range(queries):
        before = len(timed.times)
        started = time.perf_counter()
        result = cache.compute(chat(paraphrase(i)), lambda: answer(-1))
        hits.append(time.perf_counter() - started)
        if result.status != "semantic":
            raise SystemExit(f"{name}: query {i} was a {result.status}, not a semantic hit")
        embeds.extend(timed.times[before:])
        texts = timed.texts
        started = time.perf_counter()
        again = cache.compute(chat(paraphrase(i)), lambda: answer(-1))
        repeats.append(time.perf_counter() - started)
        assert again.status == "hit" and timed.texts == texts, "a repeat must be an exact hit"
    print(
        f"| {name} | {index} | {pct(hits, 50):.2f} | {pct(hits, 99):.2f} | "
        f"{pct(embeds, 50):.2f} | {pct(embeds, 99):.2f} | {pct(repeats, 50):.3f} | "
        f"{pct(repeats, 99):.3f} |"
    )
    cache.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    model = MiniLMEmbedder()
    model.embed(["warm up"])
    vectors = model.embed([prompt(i) for i in range(args.entries)])
    print(f"{platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
          f"{args.entries} entries, {args.queries} new paraphrases each (ms)\n")  # fmt: skip
    print(
        "| store | index | semantic hit p50 | p99 | embed alone p50 | p99 | repeat (exact hit) p50 | p99 |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    with ExitStack() as stack:
        plain = stack.enter_context(RedisServer())
        stackd = stack.enter_context(redis_stack_server())
        for name, url in (
            ("memory", "memory://"),
            ("Redis 7 (plain)", plain.url),
            ("Redis Stack", stackd.url),
        ):
            run(name, url, model, vectors, args.entries, args.queries)
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
