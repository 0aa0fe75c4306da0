"""Warm records that hold answers (results, job states) are sealed with the cache's keys."""

from __future__ import annotations

import base64
import os
import time
from typing import Any

import httpx
import orjson
import pytest
import redis

from llmemo.core.crypto import RECORD_MAGIC, Keyring
from llmemo.stores.base import async_from_url
from llmemo.testing.server import UpstreamServer
from llmemo.warm.runs import Recorded, Runs, digest_of
from tests.warm.conftest import TOKEN, Serve


def key(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


def raw_values(redis_url: str) -> dict[str, bytes]:
    """Every value of every string key in the server, as stored."""
    with redis.Redis.from_url(redis_url) as client:
        found: dict[str, bytes] = {}
        for name in client.scan_iter(count=500):
            if client.type(name) == b"string":
                found[name.decode()] = client.get(name) or b""
        return found


@pytest.mark.asyncio
async def test_results_and_job_states_are_sealed(redis_url: str) -> None:
    store = async_from_url(redis_url)
    k1 = Keyring.parse(key("k1"))
    runs = Runs(store, "p", record_ttl=60, keyring=k1)
    digest = digest_of(b"body")
    await runs.record("run-1", digest, 200, {"answer": "the secret answer"})
    await runs.save_job("job-1", b'{"results": ["the secret job answer"]}')
    stored = raw_values(redis_url)
    assert len(stored) == 2
    for value in stored.values():
        assert value.startswith(RECORD_MAGIC + b"\x02k1")
        assert b"secret" not in value
    assert await runs.recorded("run-1", digest) == Recorded(200, {"answer": "the secret answer"})
    assert await runs.job("job-1") == b'{"results": ["the secret job answer"]}'
    # another keyring (or none) cannot read them: absent, never garbage or an error
    for other in (Keyring.parse(key("k2")), None):
        stranger = Runs(store, "p", record_ttl=60, keyring=other)
        assert await stranger.recorded("run-1", digest) is None
        assert await stranger.job("job-1") is None
    await store.close()


@pytest.mark.asyncio
async def test_plain_records_still_read_unless_encryption_is_required(redis_url: str) -> None:
    store = async_from_url(redis_url)
    await Runs(store, "p", record_ttl=60).record("run-1", "d", 200, {"answer": "old"})
    keys = key("k1")
    assert await Runs(store, "p", 60, keyring=Keyring.parse(keys)).recorded("run-1", "d") == (
        Recorded(200, {"answer": "old"})
    )
    required = Keyring.parse(keys, required=True)
    assert await Runs(store, "p", 60, keyring=required).recorded("run-1", "d") is None
    await store.close()


def test_no_prompt_or_answer_in_the_store_after_warming(
    serve: Serve, upstream: UpstreamServer, redis_url: str
) -> None:
    service = serve(encryption_keys=key("k1"), warm_background_from=3)
    auth = {"authorization": f"Bearer {TOKEN}"}
    prompts = [f"confidential prompt number {i}" for i in range(6)]
    ids = [f"ticket of ann{i}@example.com" for i in range(6)]  # caller ids are kept in results

    def post(body: Any, idem: str) -> httpx.Response:
        headers = {**auth, "idempotency-key": idem}
        return httpx.post(
            f"{service.url}/v1/warm", content=orjson.dumps(body), headers=headers, timeout=30
        )

    items = [
        {"query": p, "model": "gpt-4o-mini", "id": i} for p, i in zip(prompts, ids, strict=True)
    ]
    small = post(items[:1], "small")
    assert small.status_code == 200
    job = post(items[1:], "large").json()["job"]
    deadline, state = time.monotonic() + 20, "running"
    while state == "running" and time.monotonic() < deadline:
        state = httpx.get(f"{service.url}/v1/warm/{job}", headers=auth).json()["status"]
        time.sleep(0.05)
    assert state == "done"
    answers = [
        httpx.post(
            f"{service.url}/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": p}]},
            headers={"authorization": "Bearer sk-test"},
            timeout=30,
        ).json()["choices"][0]["message"]["content"]
        for p in prompts
    ]
    stored = raw_values(redis_url)
    assert any(":~warm:done:" in name for name in stored)
    assert any(":~warm:job:" in name for name in stored)
    for name, value in stored.items():
        for text in prompts + answers + ids:
            assert text.encode() not in value, name
    calls = upstream.stats().calls["/v1/chat/completions"]
    assert calls == {"gpt-4o-mini": 6}  # every answer above came from the warmed entries
