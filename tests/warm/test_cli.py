"""`llmemo warm` as a real process: a 200-request file, interrupted and resumed; --service mode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis

from llmemo.testing.server import UpstreamServer
from tests.service.conftest import ALICE, BOB
from tests.warm.conftest import TOKEN, Serve

ENTRIES = "llmemo:*:x:*"


def write_items(path: Path, n: int, model: str = "gpt-4o-mini") -> Path:
    lines = ["# book summaries, one request per line", ""]
    lines += [json.dumps({"query": f"Summarise chapter {i}.", "model": model}) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "llmemo", "warm", *args]


def env(**extra: str) -> dict[str, str]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("LLMEMO_", "OPENAI", "ANTHROPIC"))
    }
    return {**keep, "PYTHONUNBUFFERED": "1", **extra}


def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args), capture_output=True, text=True, timeout=120, env=env(**extra)
    )


def entries(redis_url: str) -> int:
    with redis.Redis.from_url(redis_url) as client:
        return len(list(client.scan_iter(ENTRIES)))


def test_interrupted_and_resumed_every_request_is_stored_once(
    tmp_path: Path, redis_url: str, upstream: UpstreamServer
) -> None:
    items = write_items(tmp_path / "items.jsonl", 200, model="slow-20")
    args = (
        "--store",
        redis_url,
        "--openai-base-url",
        upstream.openai_base_url,
        "--concurrency",
        "4",
        "--shared-namespace",
        "default",
    )
    process = subprocess.Popen(
        command(str(items), *args, "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    deadline = time.monotonic() + 60
    while upstream.stats().total < 40:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted after" in err and "run the same command again" in err
    first = json.loads(out)
    called = upstream.stats().total
    assert 40 <= called < 200
    assert first["stored"] == called == entries(redis_url)  # what was under way finished and stored

    resumed = run(str(items), *args, "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["skipped"] == called
    assert summary["stored"] == 200 - called
    assert summary["failed"] == 0 and summary["tokens"] > 0
    assert upstream.stats().total == 200  # every request went upstream exactly once
    assert entries(redis_url) == 200


def test_a_journal_resumes_without_lookups(
    tmp_path: Path, redis_url: str, upstream: UpstreamServer
) -> None:
    items = write_items(tmp_path / "items.jsonl", 30)
    journal = tmp_path / "journal.jsonl"
    args = ("--store", redis_url, "--openai-base-url", upstream.openai_base_url, "-q", "--json")
    args += ("--shared",)  # as `llmemo serve --shared`
    first = run(str(items), *args, "--resume-file", str(journal))
    assert first.returncode == 0, first.stderr
    assert len(journal.read_text().splitlines()) == 30
    second = run(str(items), *args, "--resume-file", str(journal))
    assert json.loads(second.stdout)["skipped"] == 30
    assert upstream.stats().total == 30


def test_service_mode_sends_the_batch_to_a_running_service(
    tmp_path: Path, serve: Serve, upstream: UpstreamServer, redis_url: str
) -> None:
    service = serve(shared=True)
    items = write_items(tmp_path / "items.jsonl", 60)
    args = ("--service", service.url, "--token", TOKEN, "--batch-size", "25", "--json")
    result = run(str(items), *args)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["stored"] == 60 and summary["service"] == service.url
    assert upstream.stats().total == 60
    assert entries(redis_url) == 60
    again = json.loads(run(str(items), *args).stdout)
    assert again["skipped"] == 60
    assert upstream.stats().total == 60
    refused = run(str(items), "--service", service.url, "--token", "wrong")
    assert refused.returncode == 1
    assert "401" in refused.stderr and "invalid warm token" in refused.stderr


def test_errors_are_one_line(tmp_path: Path, upstream: UpstreamServer) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "ok", "model": "m"}\n{nope\n')
    store = f"sqlite:///{tmp_path / 'c.db'}"
    cases = [
        (
            (str(bad), "--store", store, "--openai-base-url", upstream.openai_base_url, "--shared"),
            2,
            "bad.jsonl:2: not JSON",
        ),
        ((str(tmp_path / "missing.jsonl"),), 2, "cannot read"),
        (
            (str(write_items(tmp_path / "i.jsonl", 1)), "--store", store, "--shared"),
            2,
            "no openai upstream",
        ),
        ((str(tmp_path / "i.jsonl"), "--service", "http://127.0.0.1:9"), 2, "--token"),
        (
            (str(tmp_path / "i.jsonl"), "--service", "http://127.0.0.1:9", "--shared"),
            2,
            "the service's own settings decide",
        ),
        (
            (str(tmp_path / "i.jsonl"), "--refresh-before", "2", "--store", store),
            2,
            "refresh_before",
        ),
    ]
    for args, code, words in cases:
        result = run(*args)
        assert result.returncode == code, (args, result.stderr)
        assert words in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr


def test_failed_items_are_listed_and_exit_1(tmp_path: Path, upstream: UpstreamServer) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        "# a comment and a blank line: failures are reported by line number\n\n"
        + json.dumps({"query": "fine", "model": "gpt-4o-mini"})
        + "\n"
        + json.dumps({"query": "broken", "model": "fail-500"})
        + "\n"
    )
    store = f"sqlite:///{tmp_path / 'c.db'}"
    result = run(
        str(path),
        "--store",
        store,
        "--openai-base-url",
        upstream.openai_base_url,
        "--json",
        LLMEMO_SHARED_NAMESPACES="default",
    )
    assert result.returncode == 1
    assert f"failed: {path}:4:" in result.stderr and "500" in result.stderr
    assert "1 of 2 items failed" in result.stderr
    assert json.loads(result.stdout)["stored"] == 1


def test_warm_and_serve_agree_on_shared_namespaces(
    tmp_path: Path, serve: Serve, upstream: UpstreamServer, redis_url: str
) -> None:
    """The same setting for both: `faq` items are stored shared and served by the isolated
    proxy to any accepted caller that names the namespace; an isolated namespace is refused."""
    service = serve(shared_namespaces=["faq"], client_keys=f"{ALICE},{BOB}")
    items = write_items(tmp_path / "faq.jsonl", 2)
    args = ("--store", redis_url, "--openai-base-url", upstream.openai_base_url, "-q", "--json")
    refused = run(str(items), *args)  # the default namespace is isolated: nobody would be served
    assert refused.returncode == 2, refused.stderr
    assert "faq.jsonl:3: namespace 'default' is isolated per API key" in refused.stderr
    assert "--shared-namespace default" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert upstream.stats().total == 0 and entries(redis_url) == 0
    stored = run(str(items), *args, "--namespace", "faq", LLMEMO_SHARED_NAMESPACES="faq,docs")
    assert stored.returncode == 0, stored.stderr
    assert json.loads(stored.stdout)["stored"] == 2
    chat = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Summarise chapter 1."}],
    }
    for key in (ALICE, BOB):
        answer = httpx.post(
            service.url + "/v1/chat/completions",
            json=chat,
            headers={"authorization": f"Bearer {key}", "x-llmemo-namespace": "faq"},
        )
        assert answer.headers["x-llmemo-cache"] == "hit"
    assert upstream.stats().total == 2  # what warming asked, nothing more


def test_isolated_warms_for_the_api_keys_callers_only(
    tmp_path: Path, serve: Serve, upstream: UpstreamServer, redis_url: str
) -> None:
    service = serve(shared_namespaces=[])
    items = write_items(tmp_path / "mine.jsonl", 1)
    args = ("--store", redis_url, "--openai-base-url", upstream.openai_base_url, "-q", "--json")
    stored = run(str(items), *args, "--isolated", OPENAI_API_KEY=ALICE)
    assert stored.returncode == 0, stored.stderr
    chat = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Summarise chapter 0."}],
    }
    states = [
        httpx.post(
            service.url + "/v1/chat/completions",
            json=chat,
            headers={"authorization": f"Bearer {key}"},
        ).headers["x-llmemo-cache"]
        for key in (ALICE, BOB)
    ]
    assert states == ["hit", "miss"]
    shared = run(str(items), *args, "--isolated", "--shared-namespace", "default")
    assert shared.returncode == 2 and "namespace 'default' is shared" in shared.stderr
