"""`llmemo calibrate`: the pure metrics, and the command on a small pairs file it is given."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from llmemo import ConfigError
from llmemo import calibrate as cal
from llmemo.core.guard import Guard
from tests.semantic.conftest import CountingEmbedder

PAIRS = [
    ("What is the capital of France?", "Which city is the capital of France?", True),
    ("How do I learn Python?", "What is the best way to learn Python?", True),
    ("How tall is Mount Everest?", "What is the height of Mount Everest?", True),
    ("Why is the sky blue?", "What makes the sky look blue?", True),
    ("How can I lose weight fast?", "What is the quickest way to lose weight?", True),
    ("Is 7 a prime number?", "Is 9 a prime number?", False),
    ("How do I convert 10 USD to EUR?", "How do I convert 10 EUR to USD?", False),
    ("What is the capital of France?", "What is the capital of Germany?", False),
    ("How do I learn Python?", "How do I learn Java?", False),
    ("Why is the sky blue?", "Why is the ocean salty?", False),
    ("Can I eat eggs during Lent?", "Can't I eat eggs during Lent?", False),
    ("What is the best laptop?", "How do I bake bread?", False),
]


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(
        b"\n".join(orjson.dumps({"a": a, "b": b, "duplicate": d}) for a, b, d in PAIRS) + b"\n"
    )
    return path


def test_score_and_sweep() -> None:
    similarity = np.array([0.95, 0.9, 0.85, 0.8], dtype=np.float32)
    labels = np.array([True, False, True, False])
    scores = cal.sweep(similarity, labels, [0.8, 0.85, 0.9, 0.95, 0.99])
    assert [(s.precision, s.recall, s.hits) for s in scores] == [
        (0.5, 1.0, 4),
        (2 / 3, 1.0, 3),
        (0.5, 0.5, 2),
        (1.0, 0.5, 1),
        (1.0, 0.0, 0),  # no hits: nothing wrong said
    ]
    assert scores[1].f1 == pytest.approx(0.8)
    assert cal.recommend(scores, 0.6) == scores[1]  # the lowest threshold reaching it
    assert cal.recommend(scores, 1.0) == scores[3]  # needs at least one hit
    guarded = cal.sweep(similarity, labels, [0.8], np.array([True, False, True, True]))
    assert (guarded[0].precision, guarded[0].hits) == (2 / 3, 3)
    assert cal.best(scores) == scores[3]


def test_recommend_none_when_unreachable() -> None:
    scores = cal.sweep(np.array([0.9], np.float32), np.array([False]), [0.5, 0.9])
    assert cal.recommend(scores, 0.9) is None


def test_thresholds_grid() -> None:
    assert cal.thresholds(0.9, 0.95, 0.01) == [0.9, 0.91, 0.92, 0.93, 0.94, 0.95]
    assert cal.thresholds(0.0, 1.0, 0.5) == [0.0, 0.5, 1.0]
    for bad in ((0.9, 0.8, 0.01), (-0.1, 0.5, 0.1), (0.5, 1.5, 0.1), (0.5, 0.6, 0)):
        with pytest.raises(ConfigError):
            cal.thresholds(*bad)


def test_read_pairs_names_the_bad_line(tmp_path: Path, pairs_file: Path) -> None:
    assert len(cal.read_pairs(pairs_file)) == len(PAIRS)
    assert len(cal.read_pairs(pairs_file, limit=3)) == 3
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": "x", "b": "y", "duplicate": true}\n\n{"a": "x"}\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl:3"):
        cal.read_pairs(bad)
    bad.write_text('{"a": "x", "b": "y", "duplicate": "yes"}\n')
    with pytest.raises(ConfigError, match="boolean"):
        cal.read_pairs(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        cal.read_pairs(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ConfigError, match="no pairs"):
        cal.read_pairs(tmp_path / "empty.jsonl")


def test_embed_pairs_embeds_each_text_once(pairs_file: Path, embedder: CountingEmbedder) -> None:
    pairs = cal.read_pairs(pairs_file)
    seen: list[int] = []
    similarity = cal.embed_pairs(embedder, pairs, batch=5, progress=seen.append)
    distinct = len({t for p in pairs for t in (p.a, p.b)})
    assert len(embedder.texts) == distinct == sum(seen)
    assert similarity.shape == (len(pairs),) and similarity.dtype == np.float32
    assert ((similarity >= 0) & (similarity <= 1)).all()
    passes = cal.guard_passes(pairs, Guard())
    assert not passes[5] and not passes[6] and not passes[10]  # 7/9, USD/EUR, can/can't


def test_plot_writes_a_png(tmp_path: Path) -> None:
    similarity = np.array([0.2, 0.5, 0.9, 0.95], dtype=np.float32)
    labels = np.array([False, False, True, True])
    out = cal.plot(similarity, labels, tmp_path / "h.png", 0.9)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_command(pairs_file: Path, tmp_path: Path) -> None:
    cache = f"sqlite:///{tmp_path}/emb.db"
    args = [sys.executable, "-m", "llmemo", "calibrate", str(pairs_file), "--from", "0.5",
            "--precision", "0.9", "--embedding-cache", cache]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "12 pairs, 5 duplicates" in done.stdout
    assert "with the guard (as shipped): threshold" in done.stdout
    assert (tmp_path / "pairs.png").read_bytes()[:4] == b"\x89PNG"
    report = subprocess.run(
        [*args, "--json", "--no-plot"], capture_output=True, text=True, timeout=120
    )
    data = orjson.loads(report.stdout)
    assert data["pairs"] == 12 and data["duplicates"] == 5 and data["plot"] is None
    assert len(data["guard"]) == len(data["plain"]) == 50
    guard = {row["threshold"]: row for row in data["guard"]}
    chosen = data["recommended"]["guard"]
    assert guard[chosen]["precision"] >= 0.9
    assert all(row["precision"] < 0.9 or row["hits"] == 0 for t, row in guard.items() if t < chosen)


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--precision", "0"], "--precision"), (["--from", "0.9", "--to", "0.8"], "start <= stop")],
)
def test_bad_options_fail_in_one_line(pairs_file: Path, extra: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "llmemo", "calibrate", str(pairs_file), "--no-plot", *extra],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("llmemo: error:") and message in done.stderr
