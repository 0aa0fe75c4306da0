"""`llmemo serve` as a user runs it: a subprocess, the demo upstream, one-line errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from llmemo.testing.redis_server import free_port


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
    ],
)
def test_bad_settings_fail_in_one_line(args: tuple[str, ...], message: str) -> None:
    done = llmemo("serve", *args)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("llmemo: error:") and message in line


@pytest.fixture
def demo(redis_url: str) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llmemo", "serve", "--upstream", "demo", "--port", str(port)],
        env=clean_env(REDIS_URL=redis_url),
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
        assert time.monotonic() < deadline, "llmemo serve --upstream demo did not start"
        time.sleep(0.1)
    yield url
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "Traceback" not in output


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
