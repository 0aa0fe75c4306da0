"""Semantic-match quality on labelled pairs: the shipped default vs plain fixed cosine thresholds.

Run: .venv/bin/python bench/semantic_quality.py ../shared/data/qqp_dev_20k.jsonl
         [--embedding-cache sqlite:///$TMPDIR/llmemo-bench/embeddings.db] [--threshold 0.93]
         [--embedder minilm-f32] [--no-ideas]

Same embeddings, same run, for every row (all-MiniLM-L6-v2 on the runtime `--embedder` names,
default "minilm": int8 on onnxruntime; embeddings are cached in a SQLite file outside the
repository, so a rerun embeds nothing). `--no-ideas` prints the shipped rule's tables only (the
ideas below always use the float32 numpy runtime's token vectors). Two measures:

- pairwise: a pair is a hit when cos(a, b) >= t (and, with the guard, the guard lets a answer b);
  precision/recall against `duplicate`. The shipped default (with and without the guard) is set
  beside plain thresholds, and beside the plain threshold that keeps the SAME recall (the fair
  comparison: a higher threshold always buys precision with recall).
- cache-style: store every distinct `a`, query with every `b`; the cache's decision is the
  layer's (up to k=4 nearest stored prompts, best first, the first that passes threshold and
  guard). A hit is correct only if it returns the pair's own `a` and the pair is a duplicate.

Also measured, not shipped (only the last score gains over the guard, about one point):

- two lexical checks on top of the guard (same question word; content-word overlap);
- a BERTScore-like token alignment from MiniLM's own contextual token vectors (the hidden states
  mean pooling averages, `MiniLMEmbedder.embed_tokens`): every content word of each text is
  matched to its best token in the other (cosine, averaged over the word's WordPiece pieces), and
  the worst-matched word's score is the pair's; a pair is rejected below a cut-off. Swept over
  thresholds x cut-offs, so any operating point on the curve counts (`--alignment-depths 0,3,6`
  also tries the static token embeddings and a middle layer);
- the guard's name rejections rescued when each differing name aligns with the other text;
- a "semantic beyond lexical" score, cos(a, b) - 0.25 * cos of the static (layer 0) mean vectors,
  its cut-off set to keep the guard's recall at 0.90 and at the default;
- the cost of the alignment on a semantic hit: the candidate's prompt needs its own forward pass.

Token states are computed only for pairs with cos >= 0.85 (no operating point of interest lies
below it). The pairs file is read from the path given; nothing of it is written anywhere but the
embedding cache. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from llmemo import calibrate as cal
from llmemo.core.guard import _COMMON, Guard, features
from llmemo.core.semantic import DEFAULT_K, DEFAULT_THRESHOLDS
from llmemo.embed import CachedEmbedder, from_spec
from llmemo.embed.minilm import MiniLMEmbedder, TokenStates
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


# Words that carry no content of their own (the guard's function words and a few more).
_STOP = _COMMON | {"s", "t", "d", "ll", "re", "ve", "m", "get", "make", "one", "like", "much"}
_STOP |= {"many", "thing", "things", "know", "want", "someone", "anyone", "people", "really"}
_STOP |= {"possible", "use", "ever", "even", "yet", "there", "does", "did"}
ALIGN_FROM = 0.85
"""Token states are computed for pairs at or above this cosine only."""


def words_of(states: TokenStates) -> dict[int, str]:
    """Each word's text, rebuilt from its WordPiece tokens."""
    text: dict[int, str] = {}
    for token, word in zip(states.tokens, states.words, strict=True):
        text[word] = text.get(word, "") + (token[2:] if token.startswith("##") else token)
    return text


def content_rows(states: TokenStates) -> list[list[int]]:
    """The token rows of each content word (not punctuation, not a function word)."""
    text = words_of(states)
    rows: dict[int, list[int]] = {}
    for row, word in enumerate(states.words):
        if text[word][0].isalnum() and text[word] not in _STOP:
            rows.setdefault(word, []).append(row)
    return list(rows.values())


def alignment(a: TokenStates, b: TokenStates) -> float:
    """The worst-aligned content word of either text: for each, the best cosine of its tokens to
    any token of the other text (averaged over its pieces); 1.0 when there is nothing to align."""
    sims = a.vectors @ b.vectors.T
    if sims.size == 0:
        return 1.0
    scores = [float(sims[rows].max(axis=1).mean()) for rows in content_rows(a)]
    scores += [float(sims[:, rows].max(axis=0).mean()) for rows in content_rows(b)]
    return min(scores, default=1.0)


def name_alignment(query: str, candidate: str, a: TokenStates, b: TokenStates) -> float | None:
    """For a pair the guard rejects on names: the worst alignment of a name that only one text
    has (None when the names are the same and only their order differs)."""
    fa, fb = features(query), features(candidate)
    names = fa.names | fb.names
    sims = a.vectors @ b.vectors.T
    scores: list[float] = []
    for own, other, states, table in ((fa, fb, a, sims), (fb, fa, b, sims.T)):
        text = words_of(states)
        for name in names & set(own.words) - set(other.words):
            rows = [r for r, w in enumerate(states.words) if text[w] in (name, name + "s")]
            if rows and table.shape[1]:
                scores.append(float(table[rows].max(axis=1).mean()))
    return min(scores) if scores else None


def token_states(
    embedder: MiniLMEmbedder, texts: Sequence[str], depth: int | None
) -> dict[str, TokenStates]:
    out: dict[str, TokenStates] = {}
    for start in range(0, len(texts), 512):
        chunk = texts[start : start + 512]
        out.update(zip(chunk, embedder.embed_tokens(chunk, depth)[1], strict=True))
    return out


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


CUTS = (0.3, 0.4, 0.5, 0.6, 0.7)


def row(
    name: str, keep: npt.NDArray[np.bool_], similarity: npt.NDArray[np.float32], labels: Bools
) -> None:
    """One table row: precision and recall of `keep`, and the plain threshold at that recall."""
    s = cal.score(keep, labels, 0.0)
    ref = same_recall(similarity, labels, s.recall)
    delta = 100 * (s.precision - ref.precision)
    print(f"| {name} | {s.precision:.3f} | {s.recall:.3f} | {ref.precision:.3f} | {delta:+.1f} |")


Bools = npt.NDArray[np.bool_]


def frontier(
    similarity: npt.NDArray[np.float32],
    labels: Bools,
    passes: Bools,
    verdict: npt.NDArray[np.float64],
) -> tuple[str, str]:
    """Over thresholds 0.85..0.97 x cut-offs 0.20..0.90: the operating point with the largest
    gain over the same-recall plain threshold (recall >= 0.10), and the one with the most recall
    at precision >= 0.90."""
    best: tuple[float, str] = (-1.0, "")
    widest: tuple[float, str] = (-1.0, "none")
    for threshold in np.arange(0.85, 0.975, 0.01):
        for cut in np.arange(0.20, 0.905, 0.05):
            s = cal.score((similarity >= threshold) & passes & (verdict >= cut), labels, 0.0)
            if s.recall < 0.10:
                continue
            ref = same_recall(similarity, labels, s.recall)
            text = (
                f"cos >= {threshold:.2f}, cut-off {cut:.2f}: precision {s.precision:.3f}, recall "
                f"{s.recall:.3f}, plain at that recall {ref.precision:.3f} "
                f"({100 * (s.precision - ref.precision):+.1f})"
            )
            best = max(best, (s.precision - ref.precision, text))
            if s.precision >= 0.90:
                widest = max(widest, (s.recall, text))
    return best[1], widest[1]


def verifiers(
    args: argparse.Namespace,
    pairs: list[cal.Pair],
    similarity: npt.NDArray[np.float32],
    labels: Bools,
    passes: Bools,
    t: float,
) -> None:
    """The MiniLM token-vector verifiers on top of the guard, and what one costs on a hit."""
    minilm = MiniLMEmbedder()
    band = [i for i in range(len(pairs)) if similarity[i] >= ALIGN_FROM]
    texts = list(dict.fromkeys(x for i in band for p in (pairs[i],) for x in (p.a, p.b)))
    header = "| rule | precision | recall | plain, same recall | gain |\n|---|---:|---:|---:|---:|"
    for depth_text in args.alignment_depths.split(","):
        depth = int(depth_text)
        states = token_states(minilm, texts, None if depth >= 6 else depth)
        align = np.ones(len(pairs))
        rescue = np.zeros(len(pairs), dtype=np.bool_)
        for i in band:
            a, b = states[pairs[i].a], states[pairs[i].b]
            align[i] = alignment(a, b)
            if passes[i]:
                continue
            if Guard().reject(pairs[i].b, pairs[i].a) == "entities":
                named = name_alignment(pairs[i].b, pairs[i].a, b, a)
                rescue[i] = named is not None and named >= 0.7
        where = "last layer" if depth >= 6 else f"layer {depth}"
        print(f"\nToken alignment ({where}) on top of the guard (not shipped)\n\n{header}")
        for threshold in (0.90, t):
            base = (similarity >= threshold) & passes
            row(f"cos >= {threshold:.2f} + guard", base, similarity, labels)
            for cut in CUTS:
                row(f"  + alignment >= {cut}", base & (align >= cut), similarity, labels)
            if depth >= 6:
                keep = (similarity >= threshold) & (passes | rescue)
                row("  guard, names rescued at alignment >= 0.7", keep, similarity, labels)
        best, widest = frontier(similarity, labels, passes, align)
        print(f"\nBest gain on the grid: {best}\nMost recall at precision >= 0.90: {widest}")

    everything = list(dict.fromkeys(x for p in pairs for x in (p.a, p.b)))
    static = dict(zip(everything, minilm.embed_tokens(everything, 0)[0], strict=True))
    lexical = np.array([float(static[p.a] @ static[p.b]) for p in pairs])
    residual = (similarity - 0.25 * lexical).astype(np.float32)
    print(f"\ncos - 0.25 * static-embedding cos, with the guard (not shipped)\n\n{header}")
    grid = [round(0.4 + i / 1000, 3) for i in range(600)]
    for threshold in (0.90, t):
        goal = cal.sweep(similarity, labels, [threshold], passes)[0].recall
        twin = min(cal.sweep(residual, labels, grid, passes), key=lambda s: abs(s.recall - goal))
        keep = (residual >= twin.threshold) & passes
        row(
            f"score >= {twin.threshold:.3f} (recall of guard at {threshold:.2f})",
            keep,
            similarity,
            labels,
        )

    print("\nLatency of the alignment on a semantic hit (one short text, p50 of 200)\n")
    sample = [p.a for p in pairs[:200]]
    for name, call in (
        ("embed (the query, as today)", lambda x: minilm.embed([x])),
        ("embed_tokens (the candidate's forward pass)", lambda x: minilm.embed_tokens([x])),
    ):
        took = []
        for text in sample:
            start = time.perf_counter()
            call(text)
            took.append(time.perf_counter() - start)
        print(f"- {name}: {1000 * float(np.median(took)):.2f} ms")
    pairs_states = [minilm.embed_tokens([p.a, p.b])[1] for p in pairs[:200]]
    took = []
    for a, b in pairs_states:
        start = time.perf_counter()
        alignment(a, b)
        took.append(time.perf_counter() - start)
    size = np.median([a.vectors.shape[0] for a, _ in pairs_states]) * minilm.dim * 2
    print(f"- alignment of two texts: {1000 * float(np.median(took)):.3f} ms")
    print(f"- storing a prompt's token vectors instead (FLOAT16): ~{size / 1024:.1f} KB per entry")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pairs", type=Path)
    default_cache = Path(tempfile.gettempdir()) / "llmemo-bench" / "embeddings.db"
    parser.add_argument("--embedding-cache", type=Path, default=default_cache)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLDS["minilm"])
    parser.add_argument(
        "--alignment-depths",
        default="6",
        help="encoder layers whose token vectors are aligned, e.g. 0,3,6 (6: MiniLM's last)",
    )
    parser.add_argument("--embedder", default="minilm", help="minilm, minilm-int8 or minilm-f32")
    parser.add_argument("--no-ideas", action="store_true", help="skip the ideas not shipped")
    args = parser.parse_args()

    pairs = cal.read_pairs(args.pairs)
    args.embedding_cache.parent.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(str(args.embedding_cache))
    embedder = CachedEmbedder(from_spec(args.embedder), store, ttl=None)
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
        f"{args.pairs.name}: {len(pairs)} pairs, {int(labels.sum())} duplicates; default threshold {t}; "
        f"embedder {embedder.name}:{embedder.model}\n"
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

    if not args.no_ideas:
        ideas(args, pairs, similarity, labels, passes, t)
    cache_rules(pairs, vectors, t, guard)


def ideas(
    args: argparse.Namespace,
    pairs: list[cal.Pair],
    similarity: npt.NDArray[np.float32],
    labels: Bools,
    passes: Bools,
    t: float,
) -> None:
    """The rules measured on top of the guard and not shipped."""
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

    verifiers(args, pairs, similarity, labels, passes, t)


def cache_rules(
    pairs: list[cal.Pair], vectors: dict[str, npt.NDArray[np.float32]], t: float, guard: Guard
) -> None:
    """The cache-style table: plain thresholds, the default without and with the guard."""
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
