"""Technical paraphrase pairs built from templates, for developing the guard.

Run: .venv/bin/python bench/guard_pairs.py [--split tune|check] [--out PAIRS.jsonl]

Prompts in the style the QQP dev set lacks: a task, a language, a platform, a constraint, e.g.
"How do I sort a graph edge list in Rust without running out of memory on Kubernetes?" /
"What is the best way to sort a graph edge list using Rust on Kubernetes while avoiding running
out of memory?". Duplicates say the same thing in other words (another frame, "while avoiding"
for "without", the names in another order, "ten" for "10", "8GB" for "8 GB"); hard negatives
change one detail that changes the answer (the polarity of the same statement, a number, a name,
the direction between two names).

Two disjoint splits, deterministic (no randomness beyond a fixed seed): `tune`, used while
writing the guard's rules, and `check`, other topics and other frames, looked at only to report.
Nothing here comes from a dataset; the pairs are written for this bench (labels by construction).
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from pathlib import Path

import orjson

from llmemo.calibrate import Pair

TASKS = {
    "tune": [
        "sort a graph edge list", "parse a large JSON file", "resize images", "stream a CSV file",
        "deduplicate log lines", "compress backups", "hash passwords", "cache HTTP responses",
        "schedule background jobs", "merge two sorted arrays",
    ],
    "check": [
        "serialize a syntax tree", "validate email addresses", "paginate database queries",
        "retry failed requests", "profile memory usage", "encrypt files at rest",
        "watch a directory for changes", "rate limit an API", "batch database inserts",
        "index full-text documents",
    ],
}  # fmt: skip
LANGUAGES = {
    "tune": ["Rust", "Go", "Python", "Java", "TypeScript", "Elixir"],
    "check": ["Kotlin", "Haskell", "Scala", "Ruby", "Swift", "OCaml"],
}
PLATFORMS = {
    "tune": ["Kubernetes", "AWS Lambda", "Docker", "Ubuntu", "FreeBSD"],
    "check": ["Heroku", "Windows Server", "macOS", "Azure Functions", "OpenShift"],
}
PROBLEMS = {
    "tune": [
        "running out of memory", "blocking the main thread", "losing data", "leaking file handles",
    ],
    "check": [
        "copying the whole buffer", "hitting the rate limit", "breaking backwards compatibility",
        "spawning extra processes",
    ],
}  # fmt: skip
# (plain, the same constraint in other words): the guard must let these through.
AVOIDING = ["while avoiding {p}", "and avoid {p}", "in a way that avoids {p}", "without {p}"]
NUMBERS = [("8 GB", "8GB", "16 GB"), ("10 threads", "ten threads", "12 threads"),
           ("2,000 requests a second", "2000 requests per second", "3,000 requests a second"),
           ("25 workers", "twenty-five workers", "35 workers"),
           ("3 million rows", "3,000,000 rows", "4 million rows"),
           ("200 files", "two hundred files", "300 files")]  # fmt: skip

# Frames: (question, paraphrase); {t} task, {l} language, {m} platform, {c} constraint.
FRAMES = {
    "tune": [
        ("How do I {t} in {l} {c} on {m}?", "What is the best way to {t} using {l} on {m} {c2}?"),
        ("How can I {t} with {l} on {m} {c}?", "On {m}, how would I {t} in {l} {c2}?"),
        ("What's the right way to {t} in {l} on {m} {c}?", "How should one {t} in {l} on {m} {c2}?"),
    ],
    "check": [
        ("How to {t} in {l} on {m} {c}?", "Using {l} on {m}, how do you {t} {c2}?"),
        ("I need to {t} in {l} on {m} {c}. How?", "What approach lets me {t} in {l} on {m} {c2}?"),
        ("Best way to {t} in {l} {c} when deploying to {m}?",
         "When deploying to {m}, how do I {t} in {l} {c2}?"),
    ],
}  # fmt: skip


def _pairs(split: str, rng: random.Random) -> Iterator[Pair]:
    tasks, langs, plats, probs = TASKS[split], LANGUAGES[split], PLATFORMS[split], PROBLEMS[split]
    frames = FRAMES[split]
    for i, task in enumerate(tasks):
        for j in range(10):
            lang = langs[(i + j) % len(langs)]
            other_lang = langs[(i + j + 1) % len(langs)]
            plat = plats[(i * 3 + j) % len(plats)]
            other_plat = plats[(i * 3 + j + 2) % len(plats)]
            prob = probs[(i + 2 * j) % len(probs)]
            q, p = frames[j % len(frames)]
            c = f"without {prob}"
            c2 = rng.choice(AVOIDING).format(p=prob)
            base = q.format(t=task, l=lang, m=plat, c=c)
            # duplicates
            yield Pair(base, p.format(t=task, l=lang, m=plat, c2=c2), True)
            yield Pair(
                f"How do I {task} in {lang} and {other_lang}?",
                f"How do I {task} in {other_lang} and {lang}?",
                True,
            )
            yield Pair(
                f"How do I {task} in {lang} on {plat}?",
                f"On {plat}, what is the way to {task} in {lang}?",
                True,
            )
            yield Pair(
                f"Should I {task} in {lang} or not?",
                f"Is it a good idea to {task} in {lang}?",
                True,
            )
            yield Pair(
                f"How do I {task} in {lang} with no external libraries?",
                f"How can I {task} in {lang} free of external libraries?",
                True,
            )
            n_a, n_b, n_other = NUMBERS[(i + j) % len(NUMBERS)]
            yield Pair(
                f"How do I {task} in {lang} with {n_a}?",
                f"In {lang}, how can I {task} with {n_b}?",
                True,
            )
            # hard negatives: one detail that changes the answer
            yield Pair(
                f"How do I {task} in {lang} with {n_a}?",
                f"How do I {task} in {lang} with {n_other}?",
                False,
            )
            yield Pair(base, q.format(t=task, l=other_lang, m=plat, c=c), False)
            yield Pair(base, q.format(t=task, l=lang, m=other_plat, c=c), False)
            yield Pair(
                f"How do I port code that does '{task}' from {lang} to {other_lang}?",
                f"How do I port code that does '{task}' from {other_lang} to {lang}?",
                False,
            )
            verb = task.split()[0]
            yield from (
                Pair(
                    f"Can I {task} in {lang} on {plat}?",
                    f"Can't I {task} in {lang} on {plat}?",
                    False,
                ),
                Pair(
                    f"Why does {verb} work in {lang} on {plat}?",
                    f"Why does {verb} not work in {lang} on {plat}?",
                    False,
                ),
                Pair(
                    f"Is it safe to {task} in {lang} with a lock?",
                    f"Is it safe to {task} in {lang} without a lock?",
                    False,
                ),
                Pair(
                    f"Is {lang} able to {task} on {plat}?",
                    f"Isn't {lang} able to {task} on {plat}?",
                    False,
                ),
            )


def pairs(split: str = "tune") -> list[Pair]:
    """The split's pairs (the same list on every call)."""
    if split not in TASKS:
        raise ValueError(f"split must be one of {sorted(TASKS)}, got {split!r}")
    return list(_pairs(split, random.Random(f"guard-pairs-{split}")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="tune", choices=sorted(TASKS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = pairs(args.split)
    lines = b"".join(
        orjson.dumps({"a": p.a, "b": p.b, "duplicate": p.duplicate}) + b"\n" for p in rows
    )
    if args.out:
        args.out.write_bytes(lines)
    else:
        print(lines.decode(), end="")


if __name__ == "__main__":
    main()
