"""Four `llmemo serve` processes sharing one Redis Cluster: a burst spread over them costs one
upstream call (single-flight holds across processes); invalidations and version bumps made by
`llmemo invalidate` reach all of them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from devtools.redis_cluster import RedisClusterServer
from devtools.redis_server import free_port
from llmemo.testing.server import UpstreamServer

KEY = "sk-cluster-0123456789"
BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Name the three primary colours."}],
}


@pytest.fixture
def services(
    running: list[str], redis_cluster_ready: RedisClusterServer, slow_upstream: UpstreamServer
) -> list[str]:
    """The four services' base URLs, on an emptied cluster and a reset upstream."""
    slow_upstream.reset()
    time.sleep(1.1)  # what the emptied cluster held leaves the services' near caches (near_ttl)
    return running


def _env() -> dict[str, str]:
    """The test's settings only, never the developer's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("LLMEMO_", "OPENAI_", "ANTHROPIC_"))
    }
    env.pop("REDIS_URL", None)
    return env


@pytest.fixture(scope="module")
def slow_upstream() -> Iterator[UpstreamServer]:
    """The local fake upstream, 0.5 s a call: long enough for the burst to overlap it."""
    with UpstreamServer(latency=0.5) as server:
        yield server


@pytest.fixture(scope="module")
def running(
    redis_cluster: RedisClusterServer, slow_upstream: UpstreamServer
) -> Iterator[list[str]]:
    """Four `llmemo serve` processes on the session cluster (started once for the module)."""
    redis_cluster_url = redis_cluster.url
    ports = [free_port() for _ in range(4)]
    processes = [
        subprocess.Popen(
            [
                sys.executable, "-m", "llmemo", "serve",
                "--store", redis_cluster_url,
                "--openai-base-url", slow_upstream.openai_base_url,
                "--port", str(port), "--log-level", "warning",
            ],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for port in ports
    ]  # fmt: skip
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        deadline = time.monotonic() + 60
        for url, process in zip(urls, processes, strict=True):
            while True:  # ready = up, and its store (the cluster) answers
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, f"{url} not ready"
                try:
                    if httpx.get(f"{url}/readyz?strict=1", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


async def _burst(urls: list[str], n: int) -> list[httpx.Response]:
    headers = {"authorization": f"Bearer {KEY}"}
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(headers=headers, timeout=30, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(f"{urls[i % len(urls)]}/v1/chat/completions", json=BODY)
                for i in range(n)
            )
        )


@pytest.mark.slow
def test_hundred_requests_over_four_services_one_upstream_call(
    services: list[str], slow_upstream: UpstreamServer
) -> None:
    responses = asyncio.run(_burst(services, 100))
    assert [r.status_code for r in responses] == [200] * 100
    answers = {r.json()["choices"][0]["message"]["content"] for r in responses}
    assert len(answers) == 1
    statuses = Counter(r.headers["x-llmemo-cache"] for r in responses)
    print(f"\n100 requests over 4 llmemo serve processes: {dict(statuses)}")
    assert slow_upstream.stats().total == 1
    assert statuses["miss"] == 1
    assert statuses["hit"] == 99

    again = asyncio.run(_burst(services, 8))  # later requests: plain hits, on every process
    assert {r.headers["x-llmemo-cache"] for r in again} == {"hit"}
    assert slow_upstream.stats().total == 1


def _llmemo(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "llmemo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        check=True,
    )
    return done.stdout


@pytest.mark.slow
def test_invalidation_and_version_bump_reach_every_service(
    services: list[str], slow_upstream: UpstreamServer, redis_cluster_url: str
) -> None:
    def burst() -> Counter[str]:
        return Counter(r.headers["x-llmemo-cache"] for r in asyncio.run(_burst(services, 40)))

    assert burst() == {"miss": 1, "hit": 39}
    _llmemo("invalidate", "--store", redis_cluster_url, "--model", "gpt-4o-mini")
    time.sleep(1.1)  # each process may answer from its near cache for 1 s (near_ttl)
    assert burst() == {"miss": 1, "hit": 39}  # every process missed at once: one new call
    assert slow_upstream.stats().total == 2

    _llmemo("invalidate", "--store", redis_cluster_url, "--bump")
    time.sleep(1.1)  # each process trusts the version it knows for 1 s (version_ttl)
    assert burst() == {"miss": 1, "hit": 39}
    assert slow_upstream.stats().total == 3
