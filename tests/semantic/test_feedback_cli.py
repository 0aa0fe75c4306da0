"""`llmemo feedback list / wrong-hit` and `llmemo calibrate --from-feedback` as a user runs them
(real processes) on a SQLite file and on Redis, and `advise`, the pure recommendation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmemo import Cache
from llmemo import calibrate as cal
from llmemo.core.semantic import SemanticLayer
from tests.cli.test_cli import run
from tests.core.helpers import Upstream, answer, chat
from tests.semantic.conftest import CountingEmbedder

FRANCE = "What is the capital of France?"
PARAPHRASES = [
    "Which city is the capital of France?",
    "What's the capital of France?",
    "Tell me the capital of France.",
    "France's capital?",
    "Capital of France?",
]


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/cache.db"
    found: str = request.getfixturevalue("redis_url")
    return found


def serve_hits(url: str, embedder: CountingEmbedder, namespace: str = "default") -> Cache:
    cache = Cache.from_url(
        url, semantic=SemanticLayer(embedder, "local", threshold=0.75), namespace=namespace
    )
    fn = Upstream(answer("Paris."))
    assert cache.compute(chat(FRANCE), fn).status == "miss"
    for text in PARAPHRASES:
        assert cache.compute(chat(text), fn).status == "semantic"
    return cache


def test_list_then_report_a_wrong_hit_from_the_command_line(
    url: str, embedder: CountingEmbedder
) -> None:
    cache = serve_hits(url, embedder)
    listed = run("feedback", "list", "--store", url, "--json", "--show-prompts")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["query"] for r in rows] == PARAPHRASES[::-1]
    hidden = json.loads(run("feedback", "list", "--store", url, "--json").stdout)
    assert {r["query"] for r in hidden} == {None}
    table = run("feedback", "list", "--store", url, "--limit", "2")
    assert table.stdout.splitlines()[0].split() == ["at", "namespace", "similarity", "key"]
    assert len(table.stdout.splitlines()) == 3

    key = rows[0]["key"]
    reported = run("feedback", "wrong-hit", key, "--note", "not it", "--store", url, "--json")
    assert reported.returncode == 0, reported.stderr
    assert json.loads(reported.stdout)["recorded"] is True
    fresh = Upstream(answer("Lyon?"))
    assert cache.compute(chat(PARAPHRASES[-1]), fresh).status == "miss"
    reports = json.loads(run("feedback", "list", "--reports", "--store", url, "--json").stdout)
    assert [(r["key"], r["note"]) for r in reports] == [(key, "not it")]
    cache.close()


def test_a_bad_key_fails_in_one_line(url: str) -> None:
    done = run("feedback", "wrong-hit", "not-a-key", "--store", url)
    assert done.returncode == 2
    assert done.stderr.startswith("llmemo: error: 'not-a-key' is not an entry key")
    assert len(done.stderr.splitlines()) == 1


def test_calibrate_from_feedback(url: str, embedder: CountingEmbedder) -> None:
    cache = serve_hits(url, embedder)
    few = run("calibrate", "--from-feedback", "--store", url, "--json")
    assert few.returncode == 0, few.stderr
    (advice,) = json.loads(few.stdout)
    assert advice["namespace"] == "default" and advice["served"] == 5
    assert advice["threshold"] is None and advice["note"].startswith("not enough data")

    hits = cache.semantic_hits()
    worst = min(hits, key=lambda h: h.similarity)
    cache.report_wrong_hit(worst.key)
    enough = run("calibrate", "--from-feedback", "--store", url, "--min-hits", "5", "--json")
    (advice,) = json.loads(enough.stdout)
    assert (advice["served"], advice["reported"]) == (4, 1)
    assert advice["threshold"] > worst.similarity and advice["precision"] == 1.0
    assert advice["kept"] == 4 and advice["note"] == "raise the threshold"
    table = run("calibrate", "--from-feedback", "--store", url, "--min-hits", "5")
    assert "raise the threshold" in table.stdout and "default" in table.stdout
    cache.close()


def test_calibrate_needs_pairs_or_feedback_not_both(tmp_path: Path) -> None:
    neither = run("calibrate")
    assert neither.returncode == 2 and "or --from-feedback" in neither.stderr
    both = run("calibrate", str(tmp_path / "p.jsonl"), "--from-feedback")
    assert both.returncode == 2 and "not both" in both.stderr


def test_advise() -> None:
    served = [0.95] * 90 + [0.99] * 10
    assert cal.advise("ns", served[:10], [], 0.93).note.startswith("not enough data")
    keep = cal.advise("ns", served, [], 0.93)
    assert (keep.threshold, keep.precision, keep.kept) == (0.93, 1.0, 100)
    assert keep.note == "keep the current threshold"
    # 5 wrong at 0.94 among 100 right hits: 0.952 precision at 0.93, 1.0 above 0.94
    raised = cal.advise("ns", served, [0.94] * 5, 0.93, precision=0.98)
    assert (raised.threshold, raised.precision, raised.kept) == (0.941, 1.0, 100)
    tolerant = cal.advise("ns", served, [0.94] * 5, 0.93, precision=0.95)
    assert tolerant.threshold == 0.93 and tolerant.precision == pytest.approx(100 / 105)
    hopeless = cal.advise("ns", [0.95] * 30, [0.99] * 30, 0.93)
    assert hopeless.threshold is None and hopeless.note.startswith("no threshold keeps")
