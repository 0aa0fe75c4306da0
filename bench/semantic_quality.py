"""Semantic-match quality on labelled pairs: the shipped default vs plain fixed cosine thresholds.

Run: .venv/bin/python bench/semantic_quality.py ../shared/data/qqp_dev_20k.jsonl
         [--embedding-cache sqlite:///$TMPDIR/llmemo-bench/embeddings.db] [--threshold 0.93]

Same embeddings, same run, for every row (all-MiniLM-L6-v2, llmemo's numpy runtime; embeddings
are cached in a SQLite file outside the repository, so a rerun embeds nothing). Two measures:

- pairwise: a pair is a hit when cos(a, b) >= t (and, with the guard, the guard lets a answer b);
  precision/recall against `duplicate`. The shipped default (with and without the guard) is set
  beside plain thresholds, and beside the plain threshold that keeps the SAME recall (the fair
  comparison: a higher threshold always buys precision with recall).
- cache-style: store every distinct `a`, query with every `b`; the cache's decision is the
  layer's (up to k=4 nearest stored prompts, best first, the first that passes threshold and
  guard). A hit is correct only if it returns the pair's own `a` and the pair is a duplicate.

Also measured, not shipped: two lexical checks (same question word; content-word overlap) on
top of the guard. The pairs file is read from the path given; nothing of it is written anywhere
but the embedding cache. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from llmemo import calibrate as cal
from llmemo.core.guard import Guard, features
from llmemo.core.semantic import DEFAULT_K, DEFAULT_THRESHOLDS
from llmemo.embed.cached import CachedEmbedder
from llmemo.embed.minilm import MiniLMEmbedder
from llmemo.stores.sqlite import SQLiteStore

FIXED = [0.80, 0.85, 0.90, 0.93, 0.95, 0.97, 0.98]
_QUESTION = re.compile(r"\b(what|why|how|which|who|whom|whose|when|where)\b")


def question_word(text: str) -> str | None:
    match = _QUESTION.search(text.lower())
    return match.group(1) if match else None


def content_overlap(a: str, b: str) -> float:
    """Jaccard overlap of the longer words (stems) of two texts."""
    wa = {w for w in features(a).words if len(w) > 3}
    wb = {w for w in features(b).words if len(w) > 3}
    return len(wa & wb) / max(len(wa | wb), 1)


def same_recall(
    similarity: npt.NDArray[np.float32], labels: npt.NDArray[np.bool_], recall: float
) -> cal.Score:
    """The plain fixed threshold whose recall is closest to `recall` (a 0.001 grid)."""
    grid = cal.sweep(similarity, labels, [round(0.5 + i / 1000, 3) for i in range(500)])
    return min(grid, key=lambda s: abs(s.recall - recall))


def cache_style(
    pairs: list[cal.Pair],
    vectors: dict[str, npt.NDArray[np.float32]],
    threshold: float,
    guard: Guard,
) -> tuple[int, int, int]:
    """(hits, correct hits, duplicates) with every distinct `a` stored and every `b` asked."""
    stored = list(dict.fromkeys(p.a for p in pairs))
    matrix = np.stack([vectors[t] for t in stored])
    hits = correct = 0
    for start in range(0, len(pairs), 2000):
        chunk = pairs[start : start + 2000]
        sims = np.stack([vectors[p.b] for p in chunk]) @ matrix.T
        top = np.argpartition(-sims, DEFAULT_K, axis=1)[:, :DEFAULT_K]
        for row, pair in enumerate(chunk):
            order = top[row][np.argsort(-sims[row, top[row]])]
            for j in order:
                similarity = float(sims[row, j])
                if similarity < threshold:
                    break
                if guard.reject(pair.b, stored[j]) is not None:
                    continue
                hits += 1
                correct += int(stored[j] == pair.a and pair.duplicate)
                break
    return hits, correct, sum(p.duplicate for p in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pairs", type=Path)
    default_cache = Path(tempfile.gettempdir()) / "llmemo-bench" / "embeddings.db"
    parser.add_argument("--embedding-cache", type=Path, default=default_cache)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLDS["minilm"])
    args = parser.parse_args()

    pairs = cal.read_pairs(args.pairs)
    args.embedding_cache.parent.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(str(args.embedding_cache))
    embedder = CachedEmbedder(MiniLMEmbedder(), store, ttl=None)
    texts = list(dict.fromkeys(t for p in pairs for t in (p.a, p.b)))
    vectors = dict(zip(texts, embedder.embed(texts), strict=True))
    store.close()
    a = np.stack([vectors[p.a] for p in pairs])
    b = np.stack([vectors[p.b] for p in pairs])
    similarity = np.clip((a * b).sum(axis=1), 0.0, 1.0).astype(np.float32)
    labels = cal.labels_of(pairs)
    guard = Guard()
    passes = cal.guard_passes(pairs, guard)
    t = args.threshold
    print(
        f"{args.pairs.name}: {len(pairs)} pairs, {int(labels.sum())} duplicates; default threshold {t}\n"
    )

    print("Pairwise (hit: cos(a, b) >= t [and the guard passes])\n")
    print("| rule | precision | recall | F1 | hits |\n|---|---:|---:|---:|---:|")
    for fixed in FIXED:
        s = cal.sweep(similarity, labels, [fixed])[0]
        print(
            f"| cosine >= {fixed:.2f} | {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} | {s.hits} |"
        )
    plain = cal.sweep(similarity, labels, [t])[0]
    shipped = cal.sweep(similarity, labels, [t], passes)[0]
    print(
        f"| **default {t} without the guard** | {plain.precision:.3f} | {plain.recall:.3f} | {plain.f1:.3f} | {plain.hits} |"
    )
    print(
        f"| **default {t} with the guard (shipped)** | {shipped.precision:.3f} | {shipped.recall:.3f} | {shipped.f1:.3f} | {shipped.hits} |"
    )
    twin = same_recall(similarity, labels, shipped.recall)
    print(
        f"\nAt the shipped rule's recall ({shipped.recall:.3f}) a plain threshold ({twin.threshold:.3f}) "
        f"gives precision {twin.precision:.3f}: the guard buys {100 * (shipped.precision - twin.precision):+.1f} points."
    )
    print(
        f"The guard at {t}: precision {plain.precision:.3f} -> {shipped.precision:.3f}, "
        f"recall {plain.recall:.3f} -> {shipped.recall:.3f} "
        f"(it rejects {100 * (1 - passes[labels].mean()):.1f}% of all duplicates and "
        f"{100 * (1 - passes[~labels].mean()):.1f}% of all non-duplicates, at any similarity)."
    )

    print("\nIdeas measured on top of the guard at the default threshold (not shipped)\n")
    print("| rule | precision | recall | same-recall plain precision |\n|---|---:|---:|---:|")
    qw = np.array([question_word(p.a) == question_word(p.b) for p in pairs])
    overlap = np.array([content_overlap(p.a, p.b) >= 0.4 for p in pairs])
    for name, extra in (
        ("guard + same question word", qw),
        ("guard + content overlap >= 0.4", overlap),
    ):
        s = cal.sweep(similarity, labels, [t], passes & extra)[0]
        ref = same_recall(similarity, labels, s.recall)
        print(f"| {name} | {s.precision:.3f} | {s.recall:.3f} | {ref.precision:.3f} |")

    print("\nCache-style (store every a, ask every b; correct = its own a and a duplicate)\n")
    print("| rule | hits | correct | precision | recall |\n|---|---:|---:|---:|---:|")
    rules = [(f"cosine >= {x:.2f}", x, Guard.off()) for x in (0.90, 0.95)]
    rules += [
        (f"default {t} without the guard", t, Guard.off()),
        (f"**default {t} with the guard (shipped)**", t, guard),
    ]
    for name, threshold, g in rules:
        hits, correct, duplicates = cache_style(pairs, vectors, threshold, g)
        precision = correct / hits if hits else 1.0
        print(f"| {name} | {hits} | {correct} | {precision:.3f} | {correct / duplicates:.3f} |")


if __name__ == "__main__":
    main()
