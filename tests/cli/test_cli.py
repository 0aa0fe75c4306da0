"""The `llmemo` CLI: real processes, one-line errors, non-zero exits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmemo import Cache
from tests.core.helpers import answer, chat


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmemo", *args], capture_output=True, text=True, timeout=60, env=env
    )


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_stats_invalidate_get_delete(store_url: str) -> None:
    with Cache.from_url(store_url) as cache:
        cache.store(chat("a"), answer(), tags=("faq",))
        cache.store(chat("b"), answer())
        assert cache.lookup(chat("a")) is not None
    stats = json.loads(run("stats", "--store", store_url, "--json").stdout)
    assert stats["hits"] == 1
    assert stats["stores"] == 2
    keys = run("keys", "--store", store_url).stdout.split()
    assert len(keys) == 2
    entry = json.loads(run("get", keys[0], "--store", store_url).stdout)
    assert entry["response"] == answer()
    assert (
        run("invalidate", "--tag", "faq", "--store", store_url).stdout.strip() == "deleted 1 entry"
    )
    remaining = run("keys", "--store", store_url).stdout.split()
    assert len(remaining) == 1
    assert run("delete", remaining[0], "--store", store_url).returncode == 0
    assert run("keys", "--store", store_url).stdout.split() == []
    bumped = run("invalidate", "--bump", "--store", store_url)
    assert "version 1" in bumped.stdout


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("nope",), 2, "No such command"),
        (("stats", "--store", "bogus"), 2, "not a store URL"),
        (("stats", "--store", "ftp://x"), 2, "unknown store scheme"),
        (("stats", "--store", "redis://:hunter2@127.0.0.1:1/0"), 1, "cannot reach the store"),
        (("invalidate", "--version", "x"), 2, "--version"),
        (("invalidate", "--bump", "--tag", "x"), 2, "--bump takes no filter"),
        (("get", "llmemo:default:0:x:{nothing}"), 1, "no entry"),
    ],
)
def test_errors_are_one_line(args: tuple[str, ...], code: int, words: str, store_url: str) -> None:
    env = {"LLMEMO_STORE": store_url, "PATH": "/usr/bin:/bin"}
    done = run(*args, env=env)
    assert done.returncode == code
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("llmemo: error: ")
    assert words in done.stderr
    assert "hunter2" not in done.stderr
    assert "Traceback" not in done.stderr
