"""The `llmemo` CLI: real processes, one-line errors, non-zero exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmemo import Cache
from tests.core.helpers import answer, chat


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any store or namespace setting of the developer's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith("LLMEMO_") and k != "REDIS_URL"
    }
    return {**env, **extra}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmemo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env() if env is None else env,
        stdin=subprocess.DEVNULL,  # never a terminal: no question is ever asked
    )


# `llmemo ARGS` with some modules made unimportable, as when an extra is not installed.
WITHOUT = (
    "import sys\n"
    "for name in sys.argv[1].split(','):\n"
    "    sys.modules[name] = None\n"
    "from llmemo.cli.main import main\n"
    "main(sys.argv[2:])\n"
)


def run_without(modules: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT, modules, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(**env),
        stdin=subprocess.DEVNULL,
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
    keys = run("keys", "-q", "--store", store_url).stdout.split()
    assert len(keys) == 2
    entry = json.loads(run("get", keys[0], "--store", store_url).stdout)
    assert entry["response"] == answer()
    assert (
        run("invalidate", "--tag", "faq", "--store", store_url).stdout.strip() == "deleted 1 entry"
    )
    remaining = run("keys", "-q", "--store", store_url).stdout.split()
    assert len(remaining) == 1
    assert run("delete", remaining[0], "--store", store_url).returncode == 0
    assert run("keys", "-q", "--store", store_url).stdout.split() == []
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


def fill(store_url: str, n: int, namespace: str = "default", **options: object) -> None:
    with Cache.from_url(store_url, namespace=namespace) as cache:
        for i in range(n):
            cache.store(chat(f"question {i}"), answer(), **options)


def count(store_url: str, namespace: str = "default") -> int:
    return len(run("keys", "-q", "-n", namespace, "--store", store_url).stdout.split())


# -- invalidate ---------------------------------------------------------------------------------


def test_invalidate_without_a_filter_needs_all(store_url: str) -> None:
    fill(store_url, 3)
    done = run("invalidate", "--store", store_url)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("llmemo: error: no filter") and "--all" in line
    assert count(store_url) == 3
    everything = run("invalidate", "--all-namespaces", "--store", store_url)
    assert everything.returncode == 2 and "every namespace" in everything.stderr
    assert count(store_url) == 3
    assert run("invalidate", "--all", "--store", store_url).stdout.strip() == "deleted 3 entries"
    assert count(store_url) == 0
    assert "--all" in run("invalidate", "--help").stdout


@pytest.mark.parametrize(("reply", "left"), [(b"n\n", 2), (b"y\n", 0)])
def test_invalidate_asks_on_a_terminal(store_url: str, reply: bytes, left: int) -> None:
    fill(store_url, 2)
    master, slave = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "llmemo", "invalidate", "--store", store_url],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    os.close(slave)
    os.write(master, reply)
    out, err = process.communicate(timeout=60)
    os.close(master)
    assert "Delete every entry of namespace 'default'" in out
    assert process.returncode == (0 if left == 0 else 1), err
    assert count(store_url) == left


# -- the store every command uses ----------------------------------------------------------------


def test_every_command_resolves_the_store_in_one_order(redis_url: str, tmp_path: Path) -> None:
    sqlite = f"sqlite:///{tmp_path / 'env.db'}"
    flag = f"sqlite:///{tmp_path / 'flag.db'}"
    chosen = {
        "REDIS_URL": (clean_env(REDIS_URL=redis_url), ()),
        "LLMEMO_STORE over REDIS_URL": (clean_env(REDIS_URL=redis_url, LLMEMO_STORE=sqlite), ()),
        "--store over both": (
            clean_env(REDIS_URL=redis_url, LLMEMO_STORE=sqlite),
            ("--store", flag),
        ),
    }
    seen = {}
    for case, (env, args) in chosen.items():
        done = run("stats", "--json", *args, env=env)
        assert done.returncode == 0, done.stderr
        seen[case] = json.loads(done.stdout)["store"]
    assert seen == {
        "REDIS_URL": redis_url,
        "LLMEMO_STORE over REDIS_URL": sqlite,
        "--store over both": flag,
    }
    fill(redis_url, 1)
    assert run("keys", "-q", env=clean_env(REDIS_URL=redis_url)).stdout.count("\n") == 1
    order = "--store, else $LLMEMO_STORE, else $REDIS_URL, else the SQLite file"
    for command in ("stats", "keys", "get", "delete", "invalidate", "namespaces", "warm", "serve"):
        text = " ".join(run(command, "--help").stdout.split())
        assert order in text, command


# -- keys, namespaces, get, --version, -h ------------------------------------------------------


def test_keys_shows_model_age_and_ttl_and_says_when_there_is_more(store_url: str) -> None:
    fill(store_url, 3, ttl=7200)  # stored as 6480-7920 s (10% jitter): shown as 2h
    done = run("keys", "--store", store_url)
    rows = [line.split() for line in done.stdout.splitlines()]
    assert len(rows) == 3
    assert all(row[1:] == ["gpt-4o-mini", row[2], "2h"] and row[2].endswith("s") for row in rows)
    assert done.stderr == ""
    limited = run("keys", "--limit", "2", "--store", store_url)
    assert len(limited.stdout.splitlines()) == 2
    assert "use --limit N" in limited.stderr
    rows_json = json.loads(run("keys", "--json", "--store", store_url).stdout)
    assert {r["model"] for r in rows_json} == {"gpt-4o-mini"} and 6480 <= rows_json[0][
        "ttl"
    ] <= 7920


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_keys_refuses_a_limit_below_one(store_url: str, limit: str) -> None:
    done = run("keys", "--limit", limit, "--store", store_url)
    assert done.returncode == 2
    assert done.stderr.startswith("llmemo: error:") and "--limit" in done.stderr


def test_namespaces_lists_each_with_its_entries(store_url: str) -> None:
    fill(store_url, 2)
    fill(store_url, 3, namespace="faq")
    done = run("namespaces", "--store", store_url)
    assert [line.split() for line in done.stdout.splitlines()] == [
        ["default", "2", "v0"],
        ["faq", "3", "v0"],
    ]
    data = json.loads(run("namespaces", "--json", "--store", store_url).stdout)
    assert data == [
        {"namespace": "default", "entries": 2, "version": 0},
        {"namespace": "faq", "entries": 3, "version": 0},
    ]


def test_get_prints_json_or_a_table(store_url: str) -> None:
    fill(store_url, 1)
    [key] = run("keys", "-q", "--store", store_url).stdout.split()
    assert json.loads(run("get", key, "--store", store_url).stdout)["model"] == "gpt-4o-mini"
    table = run("get", key, "--no-json", "--store", store_url)
    assert table.returncode == 0
    lines = dict(line.strip().split(None, 1) for line in table.stdout.splitlines())
    lines = {name: value.strip() for name, value in lines.items()}
    assert lines["model"] == "gpt-4o-mini" and lines["usage"] == "12 in, 3 out"


def test_version_and_short_help() -> None:
    from llmemo import __version__

    assert run("--version").stdout.strip() == f"llmemo {__version__}"
    for command in ((), ("keys",), ("serve",), ("invalidate",), ("doctor",)):
        done = run(*command, "-h")
        assert done.returncode == 0 and done.stdout.startswith("Usage: llmemo"), command


def test_flags_show_no_type_in_help() -> None:
    for command in ("invalidate", "keys", "stats", "serve", "warm", "calibrate", "get"):
        text = run(command, "--help").stdout
        assert "<bool>" not in text and "BOOLEAN" not in text, command
    assert "--json / --no-json" in run("get", "--help").stdout


# -- store URLs, calibrate, warm ---------------------------------------------------------------


def test_a_three_slash_sqlite_url_says_to_use_four(tmp_path: Path) -> None:
    done = run("stats", "--store", f"sqlite://{tmp_path}/x.db")  # sqlite:///tmp/... : relative
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    relative = str(tmp_path).lstrip("/")
    assert f"use four slashes for an absolute path: sqlite:////{relative}/x.db" in line
    assert str(Path.cwd() / relative) in line  # the path as it was resolved


def test_calibrate_without_matplotlib_skips_the_plot(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    lines = [
        {"a": "How do I reset my password?", "b": "How can I reset my password?", "duplicate": True},
        {"a": "How do I reset my password?", "b": "What is the capital of France?", "duplicate": False},
        {"a": "Cancel my order", "b": "I want to cancel my order", "duplicate": True},
        {"a": "Cancel my order", "b": "Track my order", "duplicate": False},
    ]  # fmt: skip
    pairs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = run_without("matplotlib", "calibrate", str(pairs), "--precision", "0.5")
    assert done.returncode == 0, done.stderr
    assert "4 pairs, 2 duplicates" in done.stdout
    assert "matplotlib is not installed: pip install 'llmemo[calibrate]'" in done.stderr
    assert not (tmp_path / "pairs.png").exists()


@pytest.mark.parametrize("missing", ["numpy", "tokenizers"])
def test_serve_semantic_without_the_extra_fails_before_binding(missing: str) -> None:
    from devtools.redis_server import free_port

    port = str(free_port())
    args = ("serve", "--semantic", "--upstream", "demo", "--store", "memory://", "--port", port)
    done = run_without(missing, *args)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("llmemo: error: --semantic:")
    assert "pip install 'llmemo[semantic]'" in line and repr(missing) in line
