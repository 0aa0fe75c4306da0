"""Calibrating the semantic threshold on labelled pairs (`llmemo calibrate PAIRS.jsonl`).

A pairs file has one JSON object a line: `{"a": "...", "b": "...", "duplicate": true|false}`. A
pair is a (predicted) hit at threshold t when cos(a, b) >= t and, with the guard, the guard lets
`a` answer `b`. Precision, recall and F1 are computed for a range of thresholds with and without
the guard; the recommendation is the lowest threshold whose precision reaches the target (lowest:
it keeps the most hits). Pure functions, except `embed_pairs` (the embedder) and `plot` (a file).

From feedback (`llmemo calibrate --from-feedback`): per namespace, the served semantic hits nobody
reported are weak positives and the reported ones negatives (core/feedback.py); `advise` picks the
lowest threshold at which the hits that would still be served reach the target precision, and
says "not enough data" below a minimum number of logged hits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from llmemo.core.guard import Guard
from llmemo.errors import ConfigError, require

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from llmemo.embed.base import Embedder

    Floats = npt.NDArray[np.float32]
    Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Pair:
    """Two prompts and whether one cached answer serves both."""

    a: str
    b: str
    duplicate: bool


@dataclass(frozen=True)
class Score:
    """Precision, recall and F1 at one threshold (hits: pairs predicted to be duplicates)."""

    threshold: float
    precision: float
    recall: float
    f1: float
    hits: int


def read_pairs(path: str | Path, limit: int | None = None) -> list[Pair]:
    """The pairs of a JSONL file; ConfigError naming the line of anything malformed."""
    pairs: list[Pair] = []
    try:
        handle = open(path, "rb")  # noqa: SIM115  (closed below; errors name the line)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
                a, b, duplicate = row["a"], row["b"], row["duplicate"]
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise ConfigError(
                    f'{path}:{number}: expected {{"a": str, "b": str, "duplicate": bool}} ({exc})'
                ) from None
            if not isinstance(a, str) or not isinstance(b, str) or not isinstance(duplicate, bool):
                raise ConfigError(f"{path}:{number}: a and b must be strings, duplicate a boolean")
            pairs.append(Pair(a, b, duplicate))
            if limit is not None and len(pairs) >= limit:
                break
    if not pairs:
        raise ConfigError(f"{path} holds no pairs")
    return pairs


def embed_pairs(
    embedder: Embedder,
    pairs: Sequence[Pair],
    batch: int = 256,
    progress: Callable[[int], None] | None = None,
) -> Floats:
    """cos(a, b) of every pair: each distinct text is embedded once, in batches of `batch`;
    `progress(n)` is told after each batch how many texts it held."""
    import numpy as np

    texts = list(dict.fromkeys(t for p in pairs for t in (p.a, p.b)))
    row = {text: i for i, text in enumerate(texts)}
    vectors = np.empty((len(texts), embedder.dim), dtype=np.float32)
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        vectors[start : start + len(chunk)] = embedder.embed(chunk)
        if progress is not None:
            progress(len(chunk))
    a = vectors[[row[p.a] for p in pairs]]
    b = vectors[[row[p.b] for p in pairs]]
    similarity: Floats = np.clip((a * b).sum(axis=1), 0.0, 1.0).astype(np.float32)
    return similarity


def labels_of(pairs: Sequence[Pair]) -> Bools:
    import numpy as np

    labels: Bools = np.fromiter((p.duplicate for p in pairs), dtype=np.bool_, count=len(pairs))
    return labels


def guard_passes(pairs: Sequence[Pair], guard: Guard) -> Bools:
    """Whether the guard lets each pair's `a` (the cached prompt) answer its `b` (the query)."""
    import numpy as np

    passes: Bools = np.fromiter(
        (guard.reject(p.b, p.a) is None for p in pairs), dtype=np.bool_, count=len(pairs)
    )
    return passes


def score(predicted: Bools, labels: Bools, threshold: float) -> Score:
    """Precision, recall and F1 of a set of predicted hits (precision 1.0 when there are none)."""
    hits = int(predicted.sum())
    true = int((predicted & labels).sum())
    positives = int(labels.sum())
    precision = true / hits if hits else 1.0
    recall = true / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(threshold, precision, recall, f1, hits)


def sweep(
    similarity: Floats, labels: Bools, thresholds: Iterable[float], passes: Bools | None = None
) -> list[Score]:
    """One Score per threshold; `passes` (the guard's verdicts) is ANDed in when given."""
    allowed = passes if passes is not None else True
    return [score((similarity >= t) & allowed, labels, t) for t in thresholds]


def thresholds(start: float = 0.70, stop: float = 0.99, step: float = 0.01) -> list[float]:
    """start, start + step, ... up to stop (inclusive), each rounded to 4 decimals."""
    for name, value in (("start", start), ("stop", stop)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{name} must be a similarity in [0, 1], got {value}")
    if step <= 0 or start > stop:
        raise ConfigError(f"need start <= stop and step > 0, got {start}..{stop} by {step}")
    count = round((stop - start) / step) + 1
    return [round(start + i * step, 4) for i in range(count) if start + i * step <= stop + 1e-9]


def recommend(scores: Sequence[Score], precision: float) -> Score | None:
    """The lowest threshold whose precision reaches `precision` (with at least one hit), or None."""
    for s in sorted(scores, key=lambda s: s.threshold):
        if s.hits and s.precision >= precision:
            return s
    return None


def best(scores: Sequence[Score]) -> Score:
    """The threshold with the highest precision (ties: the lower threshold, more recall)."""
    with_hits = [s for s in scores if s.hits] or list(scores)
    return max(with_hits, key=lambda s: (s.precision, -s.threshold))


def plot(
    similarity: Floats,
    labels: Bools,
    path: str | Path,
    threshold: float | None,
    title: str = "llmemo calibrate",
) -> Path:
    """A PNG histogram of similarities, duplicates vs not, with `threshold` marked."""
    require("matplotlib", "calibrate")
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=110)
    bins = [i / 100 for i in range(101)]
    axes.hist(similarity[~labels], bins=bins, alpha=0.6, label="not duplicates", color="#c0504d")
    axes.hist(similarity[labels], bins=bins, alpha=0.6, label="duplicates", color="#4f81bd")
    if threshold is not None:
        axes.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:g}")
    axes.set_xlabel("cosine similarity")
    axes.set_ylabel("pairs")
    axes.set_title(title)
    axes.legend(loc="upper left")
    figure.tight_layout()
    out = Path(path)
    figure.savefig(out)
    plt.close(figure)
    return out


MIN_FEEDBACK = 30
"""Logged hits (served and reported) a namespace needs before `advise` recommends anything."""
STEP_ABOVE = 0.001
"""A recommended threshold sits this far above the reported similarity it shuts out."""


@dataclass(frozen=True)
class Advice:
    """A threshold recommended from feedback for one namespace. served: logged hits nobody
    reported (weak positives); reported: wrong-hit reports (negatives); threshold: None when
    there is not enough data; precision and kept: the estimated precision of the hits still
    served at that threshold, and how many of the logged hits those are."""

    namespace: str
    served: int
    reported: int
    current: float | None
    threshold: float | None
    precision: float | None
    kept: int
    note: str


def advise(
    namespace: str,
    served: Sequence[float],
    reported: Sequence[float],
    current: float | None = None,
    precision: float = 0.98,
    minimum: int = MIN_FEEDBACK,
) -> Advice:
    """The lowest threshold whose served hits reach `precision` among the logged ones.

    Only thresholds at or above what was served can be judged (a lower one would serve hits
    never seen), so the candidates are the current threshold and a step above each report.
    """
    total = len(served) + len(reported)
    if total < minimum:
        return Advice(
            namespace, len(served), len(reported), current, None, None, 0,
            f"not enough data: {total} logged hit(s), at least {minimum} needed",
        )  # fmt: skip
    lowest = min([*served, *reported])
    floor = current if current is not None and current <= lowest else lowest
    steps = sorted({floor, *(math.ceil((r + STEP_ABOVE) * 1000) / 1000 for r in reported)})
    for threshold in steps:
        good = sum(1 for s in served if s >= threshold)
        bad = sum(1 for r in reported if r >= threshold)
        if good + bad == 0:
            break
        share = good / (good + bad)
        if share >= precision:
            same = threshold == floor
            note = "keep the current threshold" if same else "raise the threshold"
            return Advice(
                namespace, len(served), len(reported), current,
                current if same and current is not None else threshold, share, good + bad, note,
            )  # fmt: skip
    return Advice(
        namespace, len(served), len(reported), current, None, None, 0,
        f"no threshold keeps precision {precision:g}: the hits served above the highest report "
        "are too few; review the reports or lower the target",
    )  # fmt: skip


def feedback_similarities(
    hits: Iterable[Any], reports: Iterable[Any]
) -> dict[str, tuple[list[float], list[float]]]:
    """Per namespace, (similarities of served hits not reported, of reported hits), from the
    records `semantic_hits` and `wrong_hits` return (a report without its hit is skipped)."""
    negatives = [r.hit for r in reports if r.hit is not None]
    reported = {(h.key, h.at) for h in negatives}
    out: dict[str, tuple[list[float], list[float]]] = {}
    for hit in hits:
        if (hit.key, hit.at) not in reported:
            out.setdefault(hit.namespace, ([], []))[0].append(hit.similarity)
    for hit in negatives:
        out.setdefault(hit.namespace, ([], []))[1].append(hit.similarity)
    return out
