"""The semantic guard, rule by rule: how often each rule's refusals are right, what recall it costs.

Run: .venv/bin/python bench/guard_rules.py ../shared/data/qqp_dev_20k.jsonl [--threshold 0.93]
         [--embedding-cache $TMPDIR/llmemo-bench/embeddings.db]

For the pairs file given and for the template pairs of bench/guard_pairs.py (both splits), with
all-MiniLM-L6-v2 (llmemo's numpy runtime; embeddings cached in a SQLite file outside the
repository), each rule is run alone on the pairs whose cosine reaches the band's floor (the
default threshold, and 0.80 for the template pairs: below the threshold the guard decides
nothing). For each rule:

- refusals: pairs it rejects;
- precision: the share of its refusals that are non-duplicates (right refusals);
- recall cost: the duplicates it refuses, as a share of the duplicates in the band;
- alone off: precision / recall of the whole guard at the floor with only this rule switched off.

"names" is the name rule comparing sets; "name order" counts what order adds (same names, another
order, rejected only when order is compared). Run it with PYTHONPATH pointing at another checkout
to measure that checkout's guard with the same pairs and embeddings. Not a test: nothing is
asserted.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from llmemo import calibrate as cal
from llmemo.core.guard import Guard
from llmemo.core.semantic import DEFAULT_THRESHOLDS
from llmemo.embed import CachedEmbedder
from llmemo.embed.minilm import MiniLMEmbedder
from llmemo.stores.sqlite import SQLiteStore

Bools = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float32]

ONLY = Guard.off()
RULES: dict[str, tuple[Guard, Guard | None]] = {
    # name: (the rule alone, what it is measured against: None = accepts everything)
    "numbers": (replace(ONLY, numbers=True), None),
    "negation": (replace(ONLY, negation=True), None),
    "names": (replace(ONLY, entities=True), None),
    "name order": (
        replace(ONLY, entities=True, entity_order=True),
        replace(ONLY, entities=True),
    ),
}
WITHOUT: dict[str, Guard] = {
    "numbers": replace(Guard(), numbers=False),
    "negation": replace(Guard(), negation=False),
    "names": replace(Guard(), entities=False),
    "name order": replace(Guard(), entity_order=False),
}


def similarities(pairs: Sequence[cal.Pair], cache: Path) -> Floats:
    """cos(a, b) per pair, every text embedded once and kept in the SQLite embedding cache."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(str(cache))
    try:
        return cal.embed_pairs(CachedEmbedder(MiniLMEmbedder(), store, ttl=None), pairs, 1024)
    finally:
        store.close()


def refused(pairs: Sequence[cal.Pair], guard: Guard, base: Guard | None) -> Bools:
    """Pairs `guard` rejects (and `base`, when given, lets through)."""
    out = ~cal.guard_passes(pairs, guard)
    if base is not None:
        out &= cal.guard_passes(pairs, base)
    return out


def table(name: str, pairs: Sequence[cal.Pair], similarity: Floats, floor: float) -> None:
    labels = cal.labels_of(pairs)
    band = similarity >= floor
    dups = int((band & labels).sum())
    print(f"\n{name}: {int(band.sum())} pairs at cos >= {floor:.2f}, {dups} duplicates\n")
    print(
        "| rule | refusals | right (non-duplicates) | precision | duplicates refused "
        "| recall cost | guard with this rule off: precision / recall |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for rule, (alone, base) in RULES.items():
        no = refused(pairs, alone, base) & band
        right = int((no & ~labels).sum())
        wrong = int((no & labels).sum())
        total = int(no.sum())
        precision = f"{right / total:.2f}" if total else "-"
        off = cal.sweep(similarity, labels, [floor], cal.guard_passes(pairs, WITHOUT[rule]))[0]
        print(
            f"| {rule} | {total} | {right} | {precision} | {wrong} | "
            f"{wrong / max(dups, 1):.3f} | {off.precision:.3f} / {off.recall:.3f} |"
        )
    full = cal.sweep(similarity, labels, [floor], cal.guard_passes(pairs, Guard()))[0]
    plain = cal.sweep(similarity, labels, [floor])[0]
    print(
        f"| (whole guard) | | | | | | {full.precision:.3f} / {full.recall:.3f} "
        f"(no guard: {plain.precision:.3f} / {plain.recall:.3f}) |"
    )


def main() -> None:
    import guard_pairs  # bench/guard_pairs.py, next to this file

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pairs", type=Path)
    default_cache = Path(tempfile.gettempdir()) / "llmemo-bench" / "embeddings.db"
    parser.add_argument("--embedding-cache", type=Path, default=default_cache)
    parser.add_argument("--limit", type=int, help="the first N pairs only")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLDS["minilm"])
    args = parser.parse_args()

    dev = cal.read_pairs(args.pairs, args.limit)
    table(args.pairs.name, dev, similarities(dev, args.embedding_cache), args.threshold)
    for split in ("tune", "check"):
        made = guard_pairs.pairs(split)
        sims = similarities(made, args.embedding_cache)
        for floor in (0.80, args.threshold):
            table(f"template pairs, {split} split", made, sims, floor)


if __name__ == "__main__":
    main()
