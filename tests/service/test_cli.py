"""`llmemo serve` as a user runs it: a subprocess, the demo upstream, one-line errors."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from devtools.redis_server import free_port
from llmemo.testing.server import UpstreamServer

KEY = {"authorization": "Bearer sk-workers-0123"}


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("LLMEMO_", "OPENAI_", "ANTHROPIC_"))
    }
    env.pop("REDIS_URL", None)
    return {**env, **extra}


def llmemo(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmemo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(**env),
    )


def test_serve_without_an_upstream_says_what_to_set() -> None:
    done = llmemo("serve", "--store", "memory://")
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert "OPENAI_BASE_URL=https://api.openai.com/v1" in line
    assert "ANTHROPIC_BASE_URL=https://api.anthropic.com" in line and "--upstream demo" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--upstream", "demo", "--store", "nosuch://x"), "unknown store scheme"),
        (("--upstream", "bedrock"), "upstream"),
        (("--upstream", "demo", "--port", "x"), "port"),
        (("--config", "/nonexistent/llmemo.toml"), "config file not found"),
        (("--upstream", "demo", "--max-ttl", "inf"), "finite"),
        (("--upstream", "demo", "--ttl", "2d", "--max-ttl", "1d"), "over the maximum"),
        (("--upstream", "demo", "--max-entry-bytes", "0"), "max_entry_bytes"),
        (("--upstream", "demo", "--shared-namespace", "a b"), "invalid namespace 'a b'"),
    ],
)
def test_bad_settings_fail_in_one_line(args: tuple[str, ...], message: str) -> None:
    done = llmemo("serve", *args)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("llmemo: error:") and message in line


@contextlib.contextmanager
def serving(*args: str, **env: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`llmemo serve ARGS` on a free port until it answers /healthz; stopped with Ctrl-C after."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llmemo", "serve", *args, "--port", str(port)],
        env=clean_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, f"llmemo serve {' '.join(args)} did not start"
        time.sleep(0.1)
    yield url, process
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "Traceback" not in output


@pytest.fixture
def demo(redis_url: str) -> Iterator[str]:
    with serving("--upstream", "demo", REDIS_URL=redis_url) as (url, _):
        yield url


def test_workers_share_one_cache_and_one_upstream_call(
    redis_url: str, upstream: UpstreamServer
) -> None:
    with serving(
        "--workers", "2", "--openai-base-url", upstream.openai_base_url, REDIS_URL=redis_url
    ) as (url, process):
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(children) >= 2  # the two workers (uvicorn may add a helper process)
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
        states = []
        for _ in range(12):  # a new connection each time: the kernel spreads them over workers
            answer = httpx.post(url + "/v1/chat/completions", json=body, headers=KEY)
            assert answer.status_code == 200
            states.append(answer.headers["x-llmemo-cache"])
    assert states == ["miss"] + ["hit"] * 11
    assert upstream.stats().total == 1


def test_serve_demo_needs_no_api_key(demo: str) -> None:
    with openai.OpenAI(api_key="any", base_url=demo + "/v1", max_retries=0) as client:
        raws = [
            client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
            )
            for _ in range(2)
        ]
    assert [r.headers["x-llmemo-cache"] for r in raws] == ["miss", "hit"]
    assert raws[0].parse() == raws[1].parse()
    ready = httpx.get(demo + "/readyz").json()
    assert ready["status"] == "ok" and ready["store"].startswith("redis://")


def test_serve_shares_the_namespaces_it_is_given(redis_url: str) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "FAQ"}]}
    alice, bob = {"authorization": "Bearer sk-a"}, {"authorization": "Bearer sk-b"}
    faq = {"x-llmemo-namespace": "faq"}
    with serving(
        *("--upstream", "demo", "--shared-namespace", "faq", "--shared-namespace", "docs"),
        REDIS_URL=redis_url,
        LLMEMO_CLIENT_KEYS="sk-a,sk-b",
    ) as (url, process):

        def ask(headers: dict[str, str]) -> str:
            answer = httpx.post(url + "/v1/chat/completions", json=body, headers=headers)
            return answer.headers["x-llmemo-cache"]

        assert [ask({**alice, **faq}), ask({**bob, **faq})] == ["miss", "hit"]
        assert [ask(alice), ask(bob)] == ["miss", "miss"]  # the default namespace: isolated
        assert process.stdout is not None
        started = next(line for line in process.stdout if "serving on" in line)
        assert "isolated per API key, except shared namespaces faq, docs" in started
