"""Which runtime for the default `minilm` embedder? numpy (llmemo) vs sentence-transformers on torch.

    .venv/bin/python bench/embed_runtime.py            # both, side by side, ratios vs torch
    .venv/bin/python bench/embed_runtime.py --rounds 3 # interleaved rounds, medians (busy hosts)

Each runtime runs in its own fresh process (so cold load and RSS are its own): cold load (import +
weights + tokenizer), texts/s at batch 1 (one short query at a time, as a cache lookup does), at
batch 32 of short queries, and at batch 32 of mixed lengths (28 short, 4 past 256 tokens), p50
latency and CPU time per text at batch 1, peak RSS. Each runtime runs twice: with its default
threads (2 here) and with one (OPENBLAS_NUM_THREADS=1 / torch.set_num_threads(1)). Parity: cosine of every vector against
the sentence-transformers one, on short, long (truncated at 256 tokens) and non-English texts.
Needs the `semantic` extra, and sentence-transformers + torch for the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # the reference must not reach for the hub either
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

QUERIES = [
    "What is the capital of France?",
    "How do I reset my password?",
    "Summarise this article in three bullet points.",
    "Is 7 a prime number?",
    "Convert 10 USD to EUR",
    "What's the weather like in Berlin tomorrow?",
    "Write a haiku about autumn leaves.",
    "Explain the difference between TCP and UDP.",
    "How many calories are in a banana?",
    "Translate 'good morning' into Spanish.",
    "Why is the sky blue?",
    "Give me a recipe for vegan pancakes.",
    "Quelle est la capitale de la France ?",
    "Wie spät ist es in Tokio?",
    "東京の人口は何人ですか？",
    "Can't I cancel my subscription online?",
]
LONG = [
    " ".join(["The quick brown fox jumps over the lazy dog near the river bank."] * 40),
    "Caching LLM responses saves money and latency. " * 30,
    "Der schnelle braune Fuchs springt über den faulen Hund. " * 35,
    "Le cache sémantique répond aux questions équivalentes sans rappeler le modèle. " * 25,
]
MIXED = (QUERIES + LONG) * 2  # 40 texts: batch 32 sees short and long ones together
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
PARITY = QUERIES + LONG + ["", "   ", "¿Dónde está la biblioteca?", "Привет, как дела?", "🙂👍"]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(runtime: str, out: Path, seconds: float) -> None:
    import numpy as np

    start = time.perf_counter()
    if runtime == "numpy":
        from llmemo.embed.minilm import MiniLMEmbedder

        model = MiniLMEmbedder()

        def embed(texts: list[str]) -> np.ndarray:
            return model.embed(texts)
    else:
        import torch
        from sentence_transformers import SentenceTransformer

        from llmemo.embed.weights import find_model_dir

        if os.environ.get("OMP_NUM_THREADS") == "1":
            torch.set_num_threads(1)
        reference = SentenceTransformer(str(find_model_dir()), device="cpu")

        def embed(texts: list[str]) -> np.ndarray:
            with torch.inference_mode():
                return reference.encode(texts, batch_size=32, convert_to_numpy=True)

    cold = time.perf_counter() - start
    embed(QUERIES[:2])  # warm-up

    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    cpu = time.process_time()
    i = 0
    while time.perf_counter() < deadline:
        t = time.perf_counter()
        embed([QUERIES[i % len(QUERIES)]])
        latencies.append(time.perf_counter() - t)
        i += 1
    cpu_ms = (time.process_time() - cpu) / len(latencies) * 1000
    batch1 = len(latencies) / sum(latencies)

    def rate(batch: list[str]) -> float:
        texts, spent = 0, 0.0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            embed(batch)
            spent += time.perf_counter() - t
            texts += len(batch)
        return texts / spent

    short32 = rate(QUERIES * 2)
    mixed32 = rate(MIXED[:32])
    np.save(out, np.asarray(embed(PARITY), dtype=np.float32))
    result = {
        "runtime": runtime,
        "cold_load_s": cold,
        "batch1_texts_per_s": batch1,
        "batch1_p50_ms": statistics.median(latencies) * 1000,
        "batch1_cpu_ms": cpu_ms,
        "batch32_short_texts_per_s": short32,
        "batch32_mixed_texts_per_s": mixed32,
        "peak_rss_mb": _rss_mb(),
    }
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    parser.add_argument(
        "--rounds", type=int, default=1, help="runs of each runtime, interleaved; medians shown"
    )
    parser.add_argument("--child", choices=["numpy", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.out, args.seconds)
        return

    import numpy as np

    runs = {
        "torch": ("torch", {}),
        "numpy": ("numpy", {}),
        "torch-1t": ("torch", ONE_THREAD),
        "numpy-1t": ("numpy", ONE_THREAD),
    }
    rounds: dict[str, list[dict[str, float]]] = {label: [] for label in runs}
    vectors = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for label, (runtime, env) in runs.items():
                out = Path(tmp) / f"{label}.npy"
                cmd = [sys.executable, __file__, "--child", runtime, "--out", str(out)]
                cmd += ["--seconds", str(args.seconds)]
                line = subprocess.run(
                    cmd, check=True, capture_output=True, text=True, env={**os.environ, **env}
                ).stdout
                rounds[label].append(json.loads(line.strip().splitlines()[-1]))
                vectors[label] = np.load(out)
    results = {
        label: {
            key: statistics.median(run[key] for run in runs_)
            for key in runs_[0]
            if key != "runtime"
        }
        for label, runs_ in rounds.items()
    }
    cosines = (vectors["numpy"] * vectors["torch"]).sum(axis=1)
    base = results["torch"]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.seconds:g}s per figure, "
        f"median of {args.rounds} round(s), load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(f"{'':28}{'default threads':^30}{'1 thread':^30}")
    print(
        f"{'':28}{'torch (s-t)':>12}{'numpy':>10}{'ratio':>8}{'torch':>12}{'numpy':>10}{'ratio':>8}"
    )
    for key, label in [
        ("cold_load_s", "cold load (s)"),
        ("batch1_texts_per_s", "batch 1 (texts/s)"),
        ("batch1_p50_ms", "batch 1 p50 (ms)"),
        ("batch1_cpu_ms", "batch 1 CPU (ms/text)"),
        ("batch32_short_texts_per_s", "batch 32 short (texts/s)"),
        ("batch32_mixed_texts_per_s", "batch 32 mixed (texts/s)"),
        ("peak_rss_mb", "peak RSS (MB)"),
    ]:
        t, n = base[key], results["numpy"][key]
        t1, n1 = results["torch-1t"][key], results["numpy-1t"][key]
        print(f"{label:28}{t:12.2f}{n:10.2f}{n / t:7.2f}x{t1:12.2f}{n1:10.2f}{n1 / t1:7.2f}x")
    print(
        f"parity: min cosine {cosines.min():.7f} over {len(PARITY)} texts (mean {cosines.mean():.7f})"
    )


if __name__ == "__main__":
    main()
