"""`llmemo doctor`: what works, what does not, and an exit code a script can use."""

from __future__ import annotations

import json

import redis

from devtools.redis_server import free_port
from tests.cli.test_cli import clean_env, run, run_without


def test_doctor_on_a_working_redis(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    before = client.config_get("maxmemory-policy")["maxmemory-policy"]
    client.config_set("maxmemory-policy", "noeviction")
    try:
        done = run("doctor", "--json", "--embedder", "none", env=clean_env(REDIS_URL=redis_url))
        table = run("doctor", "--store", redis_url, "--embedder", "none")
    finally:
        client.config_set("maxmemory-policy", before)
        client.close()
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["store"] == redis_url and report["ok"] is True
    assert report["server"].startswith("redis ") and report["search"] is False
    assert report["eviction"] == "noeviction"
    assert table.returncode == 0
    rows = {line.split("  ", 1)[0].strip(): line for line in table.stdout.splitlines()}
    assert "ok" in rows["write, read, delete"] and "ms round trip" in rows["reachable"]
    assert "noeviction" in rows["maxmemory-policy"]
    assert table.stderr.startswith("llmemo: warning: maxmemory-policy is noeviction")


def test_doctor_on_a_dead_store_exits_1() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    done = run("doctor", "--store", url, "--embedder", "none", "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["ok"] is False and report["reachable"] is False
    assert "ConnectionError" in report["error"]
    assert "hunter2" not in done.stdout + done.stderr


def test_doctor_says_when_the_semantic_extra_is_missing() -> None:
    done = run_without("numpy", "doctor", "--store", "memory://", "--json")
    assert done.returncode == 0, done.stderr  # the store works: semantic caching is optional
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["semantic_ok"] is False
    assert "pip install 'llmemo[semantic]'" in report["semantic"]


def test_doctor_loads_the_embedder() -> None:
    done = run("doctor", "--store", "memory://")
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.strip().startswith("semantic")]
    assert "384 dims" in line and "NOT AVAILABLE" not in line
