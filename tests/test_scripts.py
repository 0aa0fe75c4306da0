"""scripts/run, as the README uses it: in the dev virtualenv (VENV), so nothing is installed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from devtools.redis_server import free_port
from llmemo.testing.server import UpstreamServer

RUN = Path(__file__).resolve().parent.parent / "scripts" / "run"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "scripts/run"}]}


@contextmanager
def scripts_run(tmp_path: Path, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`scripts/run ARGS --port P` until it answers on P (or exits): (process, base URL).
    Its stderr goes to tmp_path/stderr."""
    port = free_port()
    env = {**os.environ, "VENV": sys.prefix, "LLMEMO_STORE": f"sqlite:///{tmp_path / 'c.db'}"}
    for name in ("LLMEMO_UPSTREAM", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        env.pop(name, None)
    with (tmp_path / "stderr").open("wb") as stderr:
        process = subprocess.Popen(
            [str(RUN), *args, "--port", str(port)], env=env, stderr=stderr, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield process, url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def chat_twice(url: str) -> list[str]:
    headers = {"authorization": "Bearer demo"}
    return [
        httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=headers, timeout=30).headers[
            "x-llmemo-cache"
        ]
        for _ in range(2)
    ]


def test_a_port_alone_keeps_the_demo_upstream(tmp_path: Path) -> None:
    with scripts_run(tmp_path) as (process, url):
        assert process.poll() is None, (tmp_path / "stderr").read_text()
        assert chat_twice(url) == ["miss", "hit"]
    err = (tmp_path / "stderr").read_text()
    assert "demo upstream" in err
    assert ". " in err and "/bin/activate" in err  # how to get `llmemo` on PATH


def test_a_given_upstream_replaces_the_demo(tmp_path: Path, upstream: UpstreamServer) -> None:
    with scripts_run(tmp_path, "--openai-base-url", upstream.openai_base_url) as (process, url):
        assert process.poll() is None, (tmp_path / "stderr").read_text()
        assert chat_twice(url) == ["miss", "hit"]
    assert upstream.stats().total == 1  # one miss, answered by the upstream given
    assert "demo upstream" not in (tmp_path / "stderr").read_text()
