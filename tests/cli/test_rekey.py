"""`llmemo rekey` as a real process on SQLite and Redis: a rotation, the summary, a saved
position continued, and one-line errors."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmemo import Cache
from llmemo.core import entry as entries
from llmemo.stores import from_url, keys
from tests.cli.test_cli import clean_env, run
from tests.core.helpers import answer, chat

K1, K2 = (f"{i}:{base64.b64encode(os.urandom(32)).decode()}" for i in ("k1", "k2"))


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cache.db'}"
    return str(request.getfixturevalue("redis_url"))


def sealed_with(url: str) -> list[str | None]:
    store = from_url(url)
    try:
        found = [k for batch in store.scan(keys.entry_pattern("llmemo")) for k in batch]
        return sorted(str(entries.sealed_with(store.get(k) or b"")) for k in found)
    finally:
        store.close()


def test_a_rotation_from_the_command_line(url: str) -> None:
    with Cache.from_url(url, encryption=K1) as cache:
        for i in range(5):
            cache.store(chat(f"question {i}"), answer(f"answer {i}"))
    done = run(
        "rekey", "--store", url, "--json", env=clean_env(LLMEMO_ENCRYPTION_KEYS=f"{K2},{K1}")
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["rewritten"], report["current"], report["done"]) == (5, 0, True)
    assert sealed_with(url) == ["k2"] * 5
    with Cache.from_url(url, encryption=K2) as only_new:
        hit = only_new.lookup(chat("question 3"))
        assert hit is not None and hit.response == answer("answer 3")
    again = run("rekey", "--store", url, "--keys", f"{K2},{K1}")
    assert again.returncode == 0, again.stderr
    summary = " ".join(again.stdout.split())
    assert "rewritten 0 already current 5 undecryptable (left alone) 0" in summary


def test_dry_run_and_a_saved_position(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cache.db'}"
    with Cache.from_url(url) as cache:  # written in clear, before keys were configured
        cache.store(chat("question"), answer("answer"))
    dry = run("rekey", "--store", url, "--keys", K1, "--dry-run", "--json")
    assert json.loads(dry.stdout)["rewritten"] == 1
    assert sealed_with(url) == ["None"]
    store = from_url(url)
    state = {"key": "k1", "target": 3, "cursor": "", "rewritten": 7}  # a run that had finished
    store.set(keys.rekey_state("llmemo"), json.dumps(state).encode(), 60)
    store.close()
    resumed = json.loads(run("rekey", "--store", url, "--keys", K1, "--json").stdout)
    assert (resumed["resumed"], resumed["rewritten"]) == (True, 7)
    assert sealed_with(url) == ["None"]  # resumed past the end: nothing left to walk
    fresh = json.loads(run("rekey", "--store", url, "--keys", K1, "--json", "--restart").stdout)
    assert (fresh["resumed"], fresh["rewritten"]) == (False, 1)
    assert sealed_with(url) == ["k1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no encryption keys: give --keys or set LLMEMO_ENCRYPTION_KEYS"),
        (("--keys", "k1:abcd"), "encryption key 'k1' is 3 bytes; AES-256 needs 32"),
        (("--keys", "nonsense"), "an encryption key must be given as id:base64key"),
    ],
)
def test_bad_keys_are_one_line_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    done = run("rekey", "--store", f"sqlite:///{tmp_path / 'c.db'}", *args)
    assert done.returncode == 2
    assert done.stderr.startswith(f"llmemo: error: {message}")
    assert done.stderr.count("\n") == 1


def test_ctrl_c_stops_and_the_same_command_continues(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cache.db'}"
    total = 3000
    with Cache.from_url(url, encryption=K1) as cache:
        for i in range(total):
            cache.store(chat(f"question {i}"), answer(f"answer {i}"))
    command = [sys.executable, "-m", "llmemo", "rekey", "--store", url, "--batch", "2", "--json"]
    env = clean_env(LLMEMO_ENCRYPTION_KEYS=f"{K2},{K1}")
    running = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    state = keys.rekey_state("llmemo")
    store = from_url(url)
    try:
        deadline = time.monotonic() + 60
        while store.get(state) is None and running.poll() is None:  # a first page is saved
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        store.close()
    running.send_signal(signal.SIGINT)
    try:
        out, err = running.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # fail this test alone: no process left for the next ones
        running.kill()
        running.communicate()
        raise
    assert running.returncode == 130, (out, err)
    assert "interrupted: run the same command again to continue where it stopped" in err
    done = sealed_with(url).count("k2")
    assert 0 < done < total
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    report = json.loads(again.stdout)
    assert report["resumed"] is True
    assert report["done"] is True
    assert report["rewritten"] + report["current"] == total
    assert report["current"] == 0  # it stopped between pages: nothing is seen twice
    assert sealed_with(url) == ["k2"] * total
