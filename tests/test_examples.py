"""Every script in examples/ runs offline (local upstream, no key) and shows the cache working."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PROVIDER_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN", "REDIS_URL")  # fmt: skip


def run(name: str, tmp_path: Path, **env: str) -> list[str]:
    """Run examples/NAME offline with a store of its own; its stdout lines (exit 0 asserted)."""
    environ = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV}
    environ["LLMEMO_STORE"] = f"sqlite:///{tmp_path / 'cache.db'}"
    environ.update(env)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"{name} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout.splitlines()


def statuses(lines: list[str], prefix: str) -> list[str]:
    """The first word after `prefix` on each line that starts with it."""
    pattern = re.compile(rf"^{re.escape(prefix)}\S*:?\s+(\w+)")
    return [m.group(1) for line in lines if (m := pattern.match(line))]


def test_every_example_has_a_test() -> None:
    tested = {
        "ask_llm_redis.py",
        "fastapi_hybrid.py",
        "langchain_upstash.py",
        "openai_streaming.py",
    }
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_ask_llm_redis(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    env = {"REDIS_URL": request.getfixturevalue("redis_url")} if store == "redis" else {}
    lines = run("ask_llm_redis.py", tmp_path, **env)
    assert statuses(lines, "ask ") == ["miss", "hit"], lines
    assert (store == "redis") == any(line.startswith("store: redis://") for line in lines), lines
    answers = [line.split("ms", 1)[1].strip() for line in lines if line.startswith("ask ")]
    assert answers[0] == answers[1], lines
    assert "stats: 2 hits, 1 misses" in "\n".join(lines), lines
    # The store outlives the script: a second run answers from the cache at once.
    assert statuses(run("ask_llm_redis.py", tmp_path, **env), "ask ") == ["hit", "hit"]


def test_fastapi_hybrid(tmp_path: Path) -> None:
    lines = run("fastapi_hybrid.py", tmp_path)
    assert [line.split()[0] for line in lines if not line.startswith(" ")] == [
        "miss",
        "semantic",
        "hit",
    ], lines
    answers = {line.strip() for line in lines if line.startswith(" ")}
    assert len(answers) == 1, lines  # the paraphrase got the first question's answer
    assert "similarity 0.9" in lines[2], lines


def test_langchain_upstash(tmp_path: Path) -> None:
    lines = run("langchain_upstash.py", tmp_path)
    assert lines[0].startswith("store: local Upstash gateway"), lines
    assert statuses(lines, "invoke ") == ["miss", "hit"], lines
    assert ", 1 Upstash requests" in next(line for line in lines if line.startswith("invoke 2")), (
        lines
    )
    assert "same answer from the cache: True" in lines, lines


def test_openai_streaming(tmp_path: Path) -> None:
    lines = run("openai_streaming.py", tmp_path)
    sources = [line.split(":")[0].strip(" ->") for line in lines if line.startswith("  -> ")]
    assert sources == ["live", "cached replay"], lines
    texts = [line.split(": ", 1)[1] for line in lines if line.startswith("stream ")]
    assert len(texts) == 2 and texts[0] == texts[1] and texts[0], lines
    assert "same text: True" in lines, lines
    assert "upstream calls: 1" in lines, lines
