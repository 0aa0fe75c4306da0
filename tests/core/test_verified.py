"""Verified semantic hits, the decisions (core/verified.py): the bound on a synthetic stream whose
truth is known, the evidence, the entry state, the judges' text, and one-line setting errors."""

from __future__ import annotations

import math
import random

import pytest

from llmemo.core.verified import (
    BINS,
    EntryState,
    Prior,
    Verified,
    answer_text,
    bin_of,
    decide,
    explore_probability,
    normalise,
    same_text,
    wilson_upper,
)
from llmemo.errors import ConfigError
from tests.core.helpers import answer


def stream(config: Verified, seed: int, steps: int, centre: float) -> tuple[int, int, int]:
    """(served, wrong among them, explored) over a stream of candidates whose similarity is
    uniform in [0.80, 1) and whose cached answer is right with a known logistic probability."""
    rng, world = random.Random(seed), random.Random(seed + 1000)
    prior = Prior()
    served = wrong = explored = 0
    for _ in range(steps):
        similarity = world.uniform(0.80, 1.0)
        right = world.random() < 1 / (1 + math.exp(-(similarity - centre) * 80))
        choice = decide(config, prior, similarity, None, rng)
        if choice == "serve":
            served, wrong = served + 1, wrong + (not right)
        else:  # refused or explored: the upstream's fresh answer is judged, and learned from
            explored += choice == "explore"
            prior = prior.add(similarity, right)
    return served, wrong, explored


@pytest.mark.parametrize("max_error", [0.02, 0.05, 0.10])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_share_of_wrong_served_hits_stays_under_max_error(max_error: float, seed: int) -> None:
    # the truth: a cached answer is right half the time at 0.90, 98 % of the time at 0.95
    served, wrong, explored = stream(Verified(max_error, seed=seed), seed, 6000, 0.90)
    assert served > 500  # the bound does serve: not safe by never hitting
    assert wrong / served <= max_error * 0.8  # under the bound, with a margin
    assert explored < served / 3  # exploration falls as the evidence grows


def test_nothing_is_served_where_the_truth_never_meets_the_bound() -> None:
    # right 73-88 % of the time even at 0.97-1.0: no similarity is safe at 2 %
    served, _, _ = stream(Verified(0.02, seed=1), 1, 4000, 0.95)
    assert served == 0


def test_the_learned_threshold_is_the_lowest_bin_whose_pooled_bound_holds() -> None:
    prior = Prior.of({"ok:99": 400, "ok:95": 400, "bad:95": 4, "ok:90": 100, "bad:90": 60})
    found = prior.threshold(0.02, 1.645)
    assert found == (0.95, 804.0)  # 0.90's failures would lift the bound over 2 %
    assert Prior().threshold(0.5, 1.645) is None
    assert prior.add(0.951, False).bad[95] == 5


def test_wilson_bound() -> None:
    assert wilson_upper(0, 0, 1.645) == 1.0
    assert wilson_upper(0, 133, 1.645) < 0.02 < wilson_upper(0, 120, 1.645)
    assert wilson_upper(5, 100, 1.645) > 0.05


def test_exploration_falls_with_evidence_down_to_its_floor() -> None:
    config = Verified(0.02, min_explore=0.01)
    assert explore_probability(config, 0) == 1.0
    assert explore_probability(config, 100) == 0.5
    assert explore_probability(config, 10_000) == 0.01


def test_an_entry_seen_wrong_refuses_at_and_below_that_similarity() -> None:
    config = Verified(0.05, min_explore=0.0, seed=1)
    prior = Prior.of({f"ok:{b}": 1000 for b in range(80, BINS + 1)})
    state = EntryState().add(0.97, True).add(0.96, False)
    rng = random.Random(1)
    assert decide(config, prior, 0.96, state, rng) == "refuse"
    assert decide(config, prior, 0.97, state, rng) == "serve"
    assert decide(config, prior, 0.96, EntryState(), rng) == "serve"


def test_entry_state_round_trips_and_reads_garbage_as_fresh() -> None:
    state = EntryState().add(0.91, True).add(0.93, False).add(0.92, False)
    assert EntryState.decode(state.encode()) == EntryState(1, 2, 0.93)
    assert EntryState.decode(None) == EntryState.decode(b"\xff junk") == EntryState()
    assert bin_of(0.93) == 93 and bin_of(1.2) == BINS and bin_of(-0.1) == 0


def test_the_exact_judge_reads_the_answer_not_the_envelope() -> None:
    assert same_text(answer("Paris."), {**answer(" paris"), "id": "other", "created": 9})
    assert not same_text(answer("Paris."), answer("Lyon."))
    anthropic = {"type": "message", "content": [{"type": "text", "text": "Paris."}]}
    assert answer_text(anthropic) == "Paris."
    responses = {"output": [{"type": "message", "content": [{"text": "Paris"}]}]}
    assert normalise(answer_text(responses)) == "paris"
    assert answer_text({"id": "x", "value": 1}) == '{"value": 1}'


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_error": 0}, "max_error must be the share of wrong semantic hits"),
        ({"max_error": 0.7}, r"in \(0, 0.5\]"),
        ({"max_error": True}, "max_error"),
        ({"max_error": 0.02, "judge": "fuzzy"}, "judge must be one of exact"),
        ({"max_error": 0.02, "judge": "embedding:1.5"}, "judge embedding:X"),
        ({"max_error": 0.02, "confidence": 1.0}, "confidence"),
        ({"max_error": 0.02, "min_explore": -1}, "min_explore"),
    ],
)
def test_bad_settings_are_one_line_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Verified(**options)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)


def test_a_judge_spec_is_parsed_once() -> None:
    config = Verified(0.02, judge="Embedding:0.9")
    assert (config.judge, config.answer_similarity) == ("embedding", 0.9)
    assert Verified.of(0.05).judge == "exact"
    with pytest.raises(ConfigError, match="pass judge= to Verified"):
        Verified.of(config, "llm")
