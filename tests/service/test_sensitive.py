"""Do-not-cache rules through the service, on a real redis-server: a request carrying a secret is
answered and not stored, counted in /metrics; an allowed category is stored."""

from __future__ import annotations

from typing import Any

import httpx
import redis

from llmemo.testing.server import UpstreamServer
from tests.service.conftest import ALICE, Serve, ServiceServer

CHAT = "/v1/chat/completions"
KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv"


def post(service: ServiceServer, text: str, **headers: str) -> httpx.Response:
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    headers = {"authorization": f"Bearer {ALICE}", **headers}
    response = httpx.post(service.url + CHAT, json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response


def entries(redis_url: str) -> list[bytes]:
    client = redis.Redis.from_url(redis_url)
    try:
        return [client.get(key) or b"" for key in client.scan_iter("llmemo:*:x:*")]
    finally:
        client.close()


def metric(service: ServiceServer, category: str) -> float:
    text = httpx.get(service.url + "/metrics", timeout=30).text
    line = f'llmemo_skipped_sensitive_total{{category="{category}"}} '
    found = [row for row in text.splitlines() if row.startswith(line)]
    return float(found[0][len(line) :]) if found else 0.0


def test_a_request_with_an_api_key_is_answered_never_stored(
    serve: Serve, upstream: UpstreamServer, redis_url: str
) -> None:
    service = serve()
    text = f"My OpenAI key {KEY} returns 401, why?"
    first = post(service, text)
    assert first.headers["x-llmemo-cache"] == "miss"
    assert "Answer to:" in first.json()["choices"][0]["message"]["content"]
    assert entries(redis_url) == []
    assert post(service, text).headers["x-llmemo-cache"] == "miss"
    assert upstream.stats().count(CHAT) == 2  # the second one reached the upstream again
    assert entries(redis_url) == []
    assert metric(service, "api_key") == 2.0
    client = redis.Redis.from_url(redis_url)
    try:  # no byte of the key anywhere in the store
        for key in client.scan_iter("*"):
            assert KEY.encode() not in key and KEY.encode() not in (client.dump(key) or b"")
    finally:
        client.close()


def test_an_allowed_category_is_stored(
    serve: Serve, upstream: UpstreamServer, redis_url: str
) -> None:
    service = serve()
    text = "Reply to ann@example.com and call +44 20 7946 0958"
    assert post(service, text).headers["x-llmemo-cache"] == "miss"
    assert post(service, text).headers["x-llmemo-cache"] == "hit"
    assert upstream.stats().count(CHAT) == 1 and len(entries(redis_url)) == 1
    assert metric(service, "email") == 0.0


def test_settings_choose_per_namespace(
    serve: Serve, upstream: UpstreamServer, redis_url: str
) -> None:
    service = serve(sensitive_skip=["email"], sensitive_allow=["support:email"])
    text = "Reply to ann@example.com please"
    assert [post(service, text).headers["x-llmemo-cache"] for _ in range(2)] == ["miss", "miss"]
    assert entries(redis_url) == [] and metric(service, "email") == 2.0
    support = {"x-llmemo-namespace": "support"}
    statuses = [post(service, text, **support).headers["x-llmemo-cache"] for _ in range(2)]
    assert statuses == ["miss", "hit"] and len(entries(redis_url)) == 1


def test_a_streamed_answer_with_a_key_is_not_stored(
    serve: Serve, upstream: UpstreamServer, redis_url: str
) -> None:
    service = serve()
    body = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": f"Is {KEY} still valid?"}],
    }
    headers = {"authorization": f"Bearer {ALICE}"}
    for _ in range(2):
        with httpx.stream(
            "POST", service.url + CHAT, json=body, headers=headers, timeout=30
        ) as response:
            assert response.headers["x-llmemo-cache"] == "miss"
            assert "data: [DONE]" in response.read().decode()
    assert upstream.stats().count(CHAT) == 2 and entries(redis_url) == []
    assert metric(service, "api_key") == 2.0
