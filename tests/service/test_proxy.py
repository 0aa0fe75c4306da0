"""Service behaviour over real HTTP: tenancy, single-flight, per-request controls, disconnects."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import openai
import pytest
import redis

from devtools.redis_server import free_port
from llmemo.testing.server import UpstreamServer
from tests.service.conftest import ALICE, BOB, Serve, ServiceServer

CHAT = "/v1/chat/completions"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Tell me a fact."}]}


def post(
    service: ServiceServer, body: dict[str, Any] = BODY, key: str = ALICE, **headers: str
) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}", **headers}
    response = httpx.post(service.url + CHAT, json=body, headers=headers, timeout=30)
    return response


def statuses(service: ServiceServer, n: int = 2, **kwargs: Any) -> list[str]:
    return [post(service, **kwargs).headers["x-llmemo-cache"] for _ in range(n)]


# -- tenancy ----------------------------------------------------------------------------------


def test_two_api_keys_never_share_an_answer(
    service: ServiceServer, upstream: UpstreamServer
) -> None:
    assert statuses(service, key=ALICE) == ["miss", "hit"]
    assert statuses(service, key=BOB) == ["miss", "hit"]
    stats = upstream.stats()
    assert stats.count(CHAT) == 2
    assert stats.saw(ALICE) and stats.saw(BOB)  # each caller's key went upstream with its request


def test_x_api_key_and_bearer_of_the_same_key_are_one_tenant(service: ServiceServer) -> None:
    assert post(service, key=ALICE).headers["x-llmemo-cache"] == "miss"
    response = httpx.post(service.url + CHAT, json=BODY, headers={"x-api-key": ALICE})
    assert response.headers["x-llmemo-cache"] == "hit"


def test_shared_mode_shares_answers_across_keys(serve: Serve, upstream: UpstreamServer) -> None:
    service = serve(shared=True)
    assert post(service, key=ALICE).headers["x-llmemo-cache"] == "miss"
    assert post(service, key=BOB).headers["x-llmemo-cache"] == "hit"
    assert upstream.stats().count(CHAT) == 1


def test_the_api_key_is_not_stored(service: ServiceServer, redis_url: str) -> None:
    post(service)
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter("*"))
        assert keys
        for key in keys:
            value = client.dump(key) or b""
            assert ALICE.encode() not in key and ALICE.encode() not in value
    finally:
        client.close()


# -- single flight ----------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("stream", [False, True])
async def test_fifty_concurrent_identical_requests_make_one_upstream_call(
    service: ServiceServer, upstream: UpstreamServer, stream: bool
) -> None:
    client = openai.AsyncOpenAI(api_key=ALICE, base_url=service.base_url, max_retries=0)
    messages: Any = [{"role": "user", "content": "All at once"}]

    async def ask() -> str:
        if stream:
            chunks = await client.chat.completions.create(
                model="slow-300", messages=messages, stream=True
            )
            return "".join([c.choices[0].delta.content or "" async for c in chunks])
        done = await client.chat.completions.create(model="slow-300", messages=messages)
        return done.choices[0].message.content or ""

    try:
        answers = await asyncio.gather(*(ask() for _ in range(50)))
    finally:
        await client.close()
    assert len(set(answers)) == 1 and answers[0].startswith("Answer to: All at once")
    assert upstream.stats().count(CHAT) == 1


# -- per-request controls ---------------------------------------------------------------------


def test_no_cache_refreshes_the_entry(service: ServiceServer, upstream: UpstreamServer) -> None:
    first = post(service)
    fresh = post(service, **{"cache-control": "no-cache"})
    assert fresh.headers["x-llmemo-cache"] == "miss"
    assert fresh.json()["id"] != first.json()["id"]
    after = post(service)
    assert after.headers["x-llmemo-cache"] == "hit"
    assert after.json()["id"] == fresh.json()["id"]
    assert upstream.stats().count(CHAT) == 2


def test_no_store_answers_without_storing(service: ServiceServer) -> None:
    assert statuses(service, **{"cache-control": "no-store"}) == ["miss", "miss"]
    assert statuses(service) == ["miss", "hit"]
    assert statuses(service, 1, **{"cache-control": "no-store"}) == ["hit"]


def test_no_cache_and_no_store_bypass_the_cache(service: ServiceServer) -> None:
    post(service)
    assert statuses(service, **{"cache-control": "no-cache, no-store"}) == ["bypass", "bypass"]


def test_namespace_header_separates_entries(service: ServiceServer) -> None:
    assert statuses(service) == ["miss", "hit"]
    assert statuses(service, **{"x-llmemo-namespace": "other"}) == ["miss", "hit"]


def entry_ttls(redis_url: str) -> list[float]:
    client = redis.Redis.from_url(redis_url)
    try:
        return [client.pttl(k) / 1000 for k in client.scan_iter("llmemo:*:x:*")]
    finally:
        client.close()


def test_ttl_and_tags_headers(service: ServiceServer, redis_url: str) -> None:
    post(service, **{"x-llmemo-ttl": "2m"})
    [ttl] = entry_ttls(redis_url)
    assert 100 < ttl <= 132  # 120 s with +-10 % jitter
    other = {**BODY, "messages": [{"role": "user", "content": "Another fact."}]}
    post(service, other, **{"x-llmemo-tags": "volatile, faq"})
    assert any(1600 < t <= 1980 for t in entry_ttls(redis_url))  # the volatile tier: 30 min


def test_settings_ttl_is_the_default(serve: Serve, redis_url: str) -> None:
    post(serve(ttl="1h"))
    [ttl] = entry_ttls(redis_url)
    assert 3200 < ttl <= 3960


# -- disconnects and upstream failures --------------------------------------------------------


def test_a_client_that_leaves_mid_stream_stores_nothing(serve: Serve) -> None:
    with UpstreamServer(chunk_delay=0.05) as slow:
        service = serve(openai_base_url=slow.openai_base_url)
        body = {**BODY, "stream": True}
        with httpx.stream("POST", service.url + CHAT, json=body, headers={"x-api-key": ALICE}) as r:
            assert r.headers["x-llmemo-cache"] == "miss"
            next(r.iter_bytes())
        time.sleep(0.3)
        assert post(service).headers["x-llmemo-cache"] == "miss"
        assert slow.stats().count(CHAT) == 2


def test_upstream_down_is_a_502_in_the_provider_shape(serve: Serve) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    service = serve(openai_base_url=closed + "/v1", anthropic_base_url=closed)
    response = post(service)
    assert response.status_code == 502
    assert response.headers["x-llmemo-cache"] == "miss"
    assert "cannot reach the openai upstream" in response.json()["error"]["message"]
    streamed = post(service, {**BODY, "stream": True})
    assert streamed.status_code == 502
    anthropic_body = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": BODY["messages"]}
    answer = httpx.post(
        service.url + "/v1/messages", json=anthropic_body, headers={"x-api-key": ALICE}
    )
    assert answer.status_code == 502
    assert answer.json()["type"] == "error" and answer.json()["error"]["type"] == "api_error"


def test_upstream_timeout_is_a_504(serve: Serve) -> None:
    service = serve(upstream_timeout=0.2)
    for body in ({**BODY, "model": "slow-1000"}, {**BODY, "model": "slow-1000", "stream": True}):
        response = post(service, body)
        assert response.status_code == 504
        assert response.json()["error"]["type"] == "timeout"


def test_a_provider_without_upstream_says_what_to_set(serve: Serve) -> None:
    service = serve(anthropic_base_url=None)
    anthropic_body = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": BODY["messages"]}
    answer = httpx.post(
        service.url + "/v1/messages", json=anthropic_body, headers={"x-api-key": ALICE}
    )
    assert answer.status_code == 503
    assert "ANTHROPIC_BASE_URL" in answer.json()["error"]["message"]


# -- response headers -------------------------------------------------------------------------

ROUTES = [
    (CHAT, BODY),
    (
        "/v1/messages",
        {"model": "claude-3-5-haiku-latest", "max_tokens": 50, "messages": BODY["messages"]},
    ),
    ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "Tell me a fact."}),
]


@pytest.mark.parametrize(("path", "body"), ROUTES, ids=["chat", "messages", "embeddings"])
def test_one_content_type_on_a_miss_and_on_hits(
    service: ServiceServer, path: str, body: dict[str, Any]
) -> None:
    headers = {"authorization": f"Bearer {ALICE}", "x-api-key": ALICE}
    seen = []
    for _ in range(3):  # a miss, a hit, a hot hit
        response = httpx.post(service.url + path, json=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        raw = [name for name, _ in response.headers.raw if name.lower() == b"content-type"]
        assert len(raw) == 1, (response.headers["x-llmemo-cache"], response.headers.raw)
        assert response.headers["content-type"] == "application/json"
        seen.append(response.headers["x-llmemo-cache"])
    assert seen == ["miss", "hit", "hit"]
