"""Verified semantic hits (opt-in): serve a paraphrase only where a learned bound says the share of
wrong answers stays under `max_error`. The decisions, without I/O (the store I/O is in
`core/_async/verified.py`, sync twin generated).

The idea is vCache's ("verified semantic caching", arXiv 2502.03771), written from the paper's
description: whether a cached answer is right for a paraphrase is learned from observations
(similarity, was the cached answer the same as a fresh one?), and candidates the evidence does
not clearly cover are checked against the upstream instead of served.

- **Observations.** A candidate that passed the threshold and the guard but is not served goes to
  the upstream anyway (the request is a miss); its fresh answer is compared with the cached one
  by a judge (`JUDGES`), and the pair (similarity, same?) is recorded. Refused candidates cost no
  extra upstream call: the miss would have called it anyway. Served candidates are checked too,
  with a probability that falls as evidence accumulates (exploration: the one extra cost).
- **Per namespace** (the prior every entry starts from): counts of same / different per
  similarity bin of 0.01 (`{prefix}:{namespace}:~verified:{space}`). The learned threshold is
  the lowest bin `b` whose pooled observations at similarity >= b have a Wilson upper confidence
  bound on the error rate at most `max_error`: serving every candidate above it keeps the share
  of wrong hits under `max_error` at that confidence.
- **Per entry** (a few numbers at `{prefix}:~vstate:{entry key}`, the entry's lifetime): how often
  it was judged the same / different and the highest similarity at which it was wrong. An entry
  seen wrong at similarity s never answers at s or below: its own threshold rises above the
  namespace's. A few observations per entry cannot support a bound of a few percent, so an
  entry's threshold never falls below the namespace's.
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from llmemo.errors import ConfigError

JUDGES = ("exact", "embedding", "llm")
"""How a fresh answer is compared with the cached one: `exact` (normalised text equality, the
default), `embedding[:X]` (cosine of the two answers' vectors >= X, default 0.95, with the layer's
embedder), `llm` (the layer's LLM verifier asked whether the two requests ask the same thing)."""
ANSWER_SIMILARITY = 0.95
"""The `embedding` judge's default: two answers whose vectors are at least this close are one."""
BINS = 100
"""Similarity bins per unit: observations are counted per 0.01 of cosine similarity."""
PRIOR_REFRESH = 5.0
"""Seconds a process keeps a namespace's observation counts before reading them again (its own
observations are added at once)."""

HELD = 10_000
"""Probes found by `lookup` kept per process until `store` brings the request's answer (emptied
when full: a lost probe is a verdict not learned, never a wrong answer)."""

Choice = Literal["serve", "explore", "refuse"]
COUNTERS: dict[Choice, str] = {
    "serve": "verified_served",
    "explore": "verified_explored",
    "refuse": "verified_refused_by_bound",
}
"""The counter each choice adds (`verified_same` / `verified_differ` count the judge's verdicts)."""
_SPACE = re.compile(r"\s+")
_VOLATILE = frozenset({"id", "created", "created_at", "usage", "system_fingerprint"})


@dataclass(frozen=True)
class Verified:
    """Verified semantic hits: `SemanticLayer(max_error=Verified(0.02, ...))` (or `max_error=0.02`).

    max_error: the largest share of wrong semantic hits accepted, in (0, 0.5]. judge: "exact",
    "embedding", "embedding:X" or "llm" (`JUDGES`). confidence: of the one-sided bound, in
    [0.5, 1). min_explore: the exploration probability a served candidate never falls under.
    seed: for the exploration draws (tests, benchmarks); None: random.
    """

    max_error: float
    judge: str = "exact"
    confidence: float = 0.99
    min_explore: float = 0.01
    prior_refresh: float = PRIOR_REFRESH
    seed: int | None = None
    answer_similarity: float = field(init=False, default=ANSWER_SIMILARITY)
    z: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        check_max_error(self.max_error)
        kind, similarity = parse_judge(self.judge)
        if not isinstance(self.confidence, float | int) or not 0.5 <= self.confidence < 1:
            raise ConfigError(f"confidence must be in [0.5, 1), got {self.confidence!r}")
        if not isinstance(self.min_explore, float | int) or not 0 <= self.min_explore <= 1:
            raise ConfigError(f"min_explore must be in [0, 1], got {self.min_explore!r}")
        if not isinstance(self.prior_refresh, float | int) or self.prior_refresh < 0:
            raise ConfigError(f"prior_refresh must be >= 0 seconds, got {self.prior_refresh!r}")
        object.__setattr__(self, "judge", kind)
        object.__setattr__(self, "answer_similarity", similarity)
        object.__setattr__(self, "z", statistics.NormalDist().inv_cdf(self.confidence))

    @classmethod
    def of(cls, value: float | Verified, judge: str | None = None) -> Verified:
        """The layer's `max_error=` argument as a Verified (a bare number takes the defaults)."""
        if isinstance(value, Verified):
            if judge is not None:
                raise ConfigError("pass judge= to Verified(...), not to the layer as well")
            return value
        return cls(value, judge or "exact")


def check_max_error(value: object) -> float:
    """`value` as a float if it is a share of wrong hits in (0, 0.5]; ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 0.5:
        raise ConfigError(
            f"max_error must be the share of wrong semantic hits accepted, in (0, 0.5] "
            f"(e.g. 0.02), got {value!r}"
        )
    return float(value)


def parse_judge(spec: object) -> tuple[str, float]:
    """A judge spec ("exact", "embedding", "embedding:0.9", "llm") as (kind, answer similarity)."""
    if not isinstance(spec, str):
        raise ConfigError(f"judge must be one of exact, embedding[:X], llm; got {spec!r}")
    kind, _, value = spec.strip().lower().partition(":")
    if kind not in JUDGES or (value and kind != "embedding"):
        raise ConfigError(f"judge must be one of exact, embedding[:X], llm; got {spec!r}")
    if not value:
        return kind, ANSWER_SIMILARITY
    try:
        similarity = float(value)
    except ValueError:
        similarity = -1.0
    if not 0 < similarity <= 1:
        raise ConfigError(f"judge embedding:X needs a cosine similarity X in (0, 1], got {spec!r}")
    return kind, similarity


# -- the answers ------------------------------------------------------------------------------


def answer_text(response: Mapping[str, Any]) -> str:
    """The answer of a chat, Anthropic or Responses API response as one text (tool calls as their
    JSON); any other shape: its JSON without the fields that differ between two calls."""
    parts: list[str] = []
    for choice in response.get("choices") or ():
        message = choice.get("message") or {}
        parts.append(str(message.get("content") or ""))
        for call in message.get("tool_calls") or ():
            parts.append(json.dumps(call.get("function"), sort_keys=True))
    for block in _list(response.get("content")):
        parts.append(str(block.get("text") or "") or json.dumps(block.get("input"), sort_keys=True))
    for item in _list(response.get("output")):
        for block in _list(item.get("content")):
            parts.append(str(block.get("text") or ""))
        if item.get("type") == "function_call":
            parts.append(f"{item.get('name')}:{item.get('arguments')}")
    if parts:
        return "\n".join(parts)
    rest = {k: v for k, v in response.items() if k not in _VOLATILE}
    return json.dumps(rest, sort_keys=True, default=str)


def _list(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def normalise(text: str) -> str:
    """The text the exact judge compares: NFKC, case folded, whitespace collapsed, outer
    punctuation dropped ("Paris." and " paris" are one answer)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", folded).strip().strip(".!?,;: ")


def same_text(cached: Mapping[str, Any], fresh: Mapping[str, Any]) -> bool:
    """The exact judge: are the two responses' answers equal once normalised?"""
    return normalise(answer_text(cached)) == normalise(answer_text(fresh))


# -- the evidence -----------------------------------------------------------------------------


def bin_of(similarity: float) -> int:
    """The 0.01-wide bin a similarity is counted in (0..BINS)."""
    return max(0, min(BINS, int(similarity * BINS + 1e-9)))


def observation(similarity: float, same: bool) -> dict[str, float]:
    """The namespace counters one observation adds."""
    return {f"{'ok' if same else 'bad'}:{bin_of(similarity)}": 1}


def wilson_upper(bad: float, n: float, z: float) -> float:
    """The one-sided Wilson score upper bound of an error rate (`bad` of `n`) at normal quantile z."""
    if n <= 0:
        return 1.0
    p = bad / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z2 / n))


@dataclass(frozen=True)
class Prior:
    """A namespace's observations: (same, different) counts per similarity bin."""

    ok: tuple[float, ...] = (0.0,) * (BINS + 1)
    bad: tuple[float, ...] = (0.0,) * (BINS + 1)

    @classmethod
    def of(cls, counters: Mapping[str, float]) -> Prior:
        ok, bad = [0.0] * (BINS + 1), [0.0] * (BINS + 1)
        for name, value in counters.items():
            kind, _, where = name.partition(":")
            if kind in ("ok", "bad") and where.isdigit() and int(where) <= BINS:
                (ok if kind == "ok" else bad)[int(where)] += value
        return cls(tuple(ok), tuple(bad))

    def add(self, similarity: float, same: bool) -> Prior:
        b = bin_of(similarity)
        counts = list(self.ok if same else self.bad)
        counts[b] += 1
        return Prior(tuple(counts), self.bad) if same else Prior(self.ok, tuple(counts))

    @property
    def observed(self) -> float:
        return sum(self.ok) + sum(self.bad)

    def threshold(self, max_error: float, z: float) -> tuple[float, float] | None:
        """(the lowest similarity above which serving keeps the error bound, the observations
        behind it), or None while no bin does. Only a bin with observations of its own can be
        the threshold: the bound says nothing of similarities never seen."""
        found = None
        ok = bad = 0.0
        for b in range(BINS, -1, -1):
            if not self.ok[b] + self.bad[b]:
                continue
            ok, bad = ok + self.ok[b], bad + self.bad[b]
            if wilson_upper(bad, ok + bad, z) <= max_error:
                found = (b / BINS, ok + bad)
        return found


@dataclass(frozen=True)
class EntryState:
    """What one stored entry has been judged: same / different counts, and the highest
    similarity at which its answer was wrong (0: never)."""

    ok: int = 0
    bad: int = 0
    worst: float = 0.0

    def encode(self) -> bytes:
        return f"v1 {self.ok} {self.bad} {self.worst:.6f}".encode()

    @classmethod
    def decode(cls, data: bytes | None) -> EntryState:
        """The state stored for an entry; an absent or unreadable one is a fresh state."""
        try:
            tag, ok, bad, worst = (data or b"").decode().split()
            if tag == "v1":
                return cls(int(ok), int(bad), float(worst))
        except (UnicodeDecodeError, ValueError):
            pass
        return cls()

    def add(self, similarity: float, same: bool) -> EntryState:
        if same:
            return EntryState(self.ok + 1, self.bad, self.worst)
        return EntryState(self.ok, self.bad + 1, max(self.worst, similarity))


@dataclass(frozen=True, slots=True)
class Probe:
    """A candidate checked against the upstream instead of served: compare the miss's fresh
    answer with `response` (the cached one) and record the verdict."""

    key: str
    similarity: float
    response: dict[str, Any]
    query: str
    prompt: str | None
    namespace: str
    ttl: float | None  # the entry's remaining life: its state lives as long


def explore_probability(config: Verified, evidence: float) -> float:
    """How often a candidate the bound lets through is checked anyway: 1 / (max_error x
    observations behind the bound), never under `min_explore`. It falls as evidence grows, so
    exploration costs about 1/max_error x log(observations) upstream calls in all."""
    if evidence <= 0:
        return 1.0
    return max(config.min_explore, min(1.0, 1.0 / (config.max_error * evidence)))


def decide(
    config: Verified,
    prior: Prior,
    similarity: float,
    state: EntryState | None,
    rng: random.Random,
) -> Choice:
    """Serve, explore (serve-eligible, but checked against the upstream this time) or refuse
    (the bound does not cover this similarity: a miss, observed)."""
    bound = prior.threshold(config.max_error, config.z)
    if bound is None or similarity < bound[0]:
        return "refuse"
    if state is not None and state.bad and similarity <= state.worst:
        return "refuse"
    if rng.random() < explore_probability(config, bound[1]):
        return "explore"
    return "serve"


def covered(config: Verified, prior: Prior, similarity: float) -> bool:
    """Does the namespace's bound cover this similarity (before the entry's own state)?"""
    bound = prior.threshold(config.max_error, config.z)
    return bound is not None and similarity >= bound[0]
