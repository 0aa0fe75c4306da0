"""/v1/warm over real HTTP: retries and replays cost nothing, jobs, and the rate limits."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
import pytest

from devtools.redis_server import RedisServer
from llmemo.testing.server import UpstreamServer
from tests.service.conftest import ALICE, BOB, ServiceServer
from tests.warm.conftest import TOKEN, Serve, sign

CHAT = "/v1/chat/completions"


def item(text: str = "Summarise today's report.", model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {"query": text, "model": model}


def warm(
    service: ServiceServer, body: Any, *, path: str = "/v1/warm", **headers: str
) -> httpx.Response:
    raw = orjson.dumps(body)
    headers.setdefault("authorization", f"Bearer {TOKEN}")
    return httpx.post(service.url + path, content=raw, headers=headers, timeout=30)


def qstash(body: Any, message_id: str, signature: str | None = None) -> dict[str, str]:
    """Headers of one QStash delivery (each retry carries a new signature, same message id)."""
    raw = orjson.dumps(body)
    return {"upstash-signature": signature or sign(raw), "upstash-message-id": message_id}


# -- idempotency ------------------------------------------------------------------------------


def test_a_retried_message_returns_the_recorded_result(
    service: ServiceServer, upstream: UpstreamServer
) -> None:
    body = [item("a"), item("b")]
    first = warm(service, body, **qstash(body, "msg_1"))
    assert first.status_code == 200
    assert first.json()["summary"]["stored"] == 2
    again = warm(service, body, **qstash(body, "msg_1"))  # QStash retries: a new JWT, same id
    assert again.status_code == 200
    assert again.headers["x-llmemo-warm"] == "replayed"
    assert again.json() == first.json()
    assert upstream.stats().total == 2


def test_a_replayed_signature_with_another_message_id_does_not_run_again(
    service: ServiceServer, upstream: UpstreamServer
) -> None:
    body = [item("replay me")]
    signature = sign(orjson.dumps(body))
    warm(service, body, **qstash(body, "msg_a", signature))
    replay = warm(service, body, **qstash(body, "msg_forged", signature))
    assert replay.headers["x-llmemo-warm"] == "replayed"
    assert upstream.stats().total == 1


def test_a_message_id_without_the_header_is_the_jti(
    service: ServiceServer, upstream: UpstreamServer
) -> None:
    body = {"requests": [item("jti")], "refresh": True}  # refresh: a second run would call again
    signature = sign(orjson.dumps(body))
    for _ in range(2):
        response = warm(service, body, **{"upstash-signature": signature})
        assert response.status_code == 200
    assert response.headers["x-llmemo-warm"] == "replayed"
    assert upstream.stats().total == 1


def test_a_captured_signature_replayed_without_the_message_id_does_not_run_again(
    service: ServiceServer, upstream: UpstreamServer
) -> None:
    body = {"requests": [item("captured")], "refresh": True}  # a second run would call again
    signature = sign(orjson.dumps(body))
    first = warm(service, body, **qstash(body, "msg_captured", signature))
    assert first.status_code == 200
    for _ in range(3):
        replay = warm(service, body, **{"upstash-signature": signature})
        assert replay.status_code == 200
        assert replay.headers["x-llmemo-warm"] == "replayed"
        assert replay.json() == first.json()
    assert upstream.stats().total == 1


@pytest.mark.parametrize("message_ids", [[None, None, None], ["msg_x", "msg_y", None]])
def test_a_signature_without_jti_is_usable_once(
    service: ServiceServer, upstream: UpstreamServer, message_ids: list[str | None]
) -> None:
    body = {"requests": [item("no jti")], "refresh": True}
    signature = sign(orjson.dumps(body), jti=None)  # keyed by its body claim and iat instead
    states = []
    for message_id in message_ids:
        headers = {"upstash-signature": signature}
        if message_id is not None:
            headers["upstash-message-id"] = message_id
        response = warm(service, body, **headers)
        assert response.status_code == 200
        states.append(response.headers.get("x-llmemo-warm"))
    assert states == [None, "replayed", "replayed"]
    assert upstream.stats().total == 1


def test_an_idempotency_key_reused_with_another_body_is_422(
    service: ServiceServer, upstream: UpstreamServer
) -> None:
    first = warm(service, item("first"), **{"idempotency-key": "nightly-1"})
    assert first.status_code == 200
    other = warm(service, item("another"), **{"idempotency-key": "nightly-1"})
    assert other.status_code == 422
    error = other.json()["error"]
    assert error["type"] == "invalid_request_error" and "different body" in error["message"]
    again = warm(service, item("first"), **{"idempotency-key": "nightly-1"})
    assert again.headers["x-llmemo-warm"] == "replayed"
    assert upstream.stats().total == 1


@pytest.mark.asyncio
async def test_concurrent_deliveries_of_one_message_run_once(
    service: ServiceServer, upstream: UpstreamServer
) -> None:
    body = [item("slow", model="slow-400")]  # the fake upstream answers after 0.4 s
    raw = orjson.dumps(body)
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        responses = await asyncio.gather(
            *(
                client.post("/v1/warm", content=raw, headers=qstash(body, "msg_concurrent"))
                for _ in range(5)
            )
        )
        codes = sorted(r.status_code for r in responses)
        assert codes.count(200) >= 1
        assert set(codes) <= {200, 409}
        busy = [r for r in responses if r.status_code == 409]
        assert all(r.headers["retry-after"] for r in busy)
        later = await client.post("/v1/warm", content=raw, headers=qstash(body, "msg_concurrent"))
    assert later.status_code == 200
    assert later.headers["x-llmemo-warm"] == "replayed"
    assert upstream.stats().total == 1


def test_bearer_calls_skip_fresh_entries_and_refresh_on_demand(
    service: ServiceServer, upstream: UpstreamServer
) -> None:
    assert warm(service, item()).json()["results"][0]["status"] == "stored"
    assert warm(service, item()).json()["results"][0]["status"] == "fresh"
    assert upstream.stats().total == 1
    refreshed = warm(service, {**item(), "refresh": True}).json()
    assert refreshed["results"][0]["status"] == "stored"
    assert upstream.stats().total == 2


def test_warmed_entries_answer_the_proxy(serve: Serve, upstream: UpstreamServer) -> None:
    service = serve(shared=True, client_keys=f"{ALICE},{BOB}")
    body = {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Top FAQ answer?"}],
    }
    result = warm(service, {"requests": [body, item("faq")], "tags": ["faq"], "ttl": "1d"}).json()
    assert [r["status"] for r in result["results"]] == ["stored", "stored"]
    assert result["summary"]["tokens"] > 0
    answer = httpx.post(
        service.url + "/v1/messages", json=body, headers={"x-api-key": ALICE}, timeout=30
    )
    assert answer.headers["x-llmemo-cache"] == "hit"
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "faq"}]}
    hit = httpx.post(service.url + CHAT, json=chat, headers={"authorization": f"Bearer {BOB}"})
    assert hit.headers["x-llmemo-cache"] == "hit"
    assert upstream.stats().total == 2


def test_shared_false_warms_the_warm_keys_tenant(serve: Serve, upstream: UpstreamServer) -> None:
    service = serve(warm_openai_api_key=ALICE, shared_namespaces=[])
    assert warm(service, {**item("per tenant"), "shared": False}).status_code == 200
    assert upstream.stats().saw(ALICE)  # the service's warm key went upstream
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "per tenant"}]}
    as_alice = httpx.post(
        service.url + CHAT, json=chat, headers={"authorization": f"Bearer {ALICE}"}
    )
    as_bob = httpx.post(service.url + CHAT, json=chat, headers={"authorization": f"Bearer {BOB}"})
    assert as_alice.headers["x-llmemo-cache"] == "hit"
    assert as_bob.headers["x-llmemo-cache"] == "miss"


def test_a_warmed_shared_namespace_answers_callers_of_the_isolated_proxy(
    serve: Serve, upstream: UpstreamServer
) -> None:
    """Sharing is a property of the namespace: `faq` is warmed once and served to every accepted
    key; the service's own namespace stays isolated per key."""
    service = serve(shared_namespaces=["faq"], client_keys=f"{ALICE},{BOB}")
    result = warm(service, {"requests": [item("refunds?")], "namespace": "faq"})
    assert result.status_code == 200, result.text
    assert result.json()["results"][0]["status"] == "stored"
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "refunds?"}]}
    for key in (ALICE, BOB):
        answer = httpx.post(
            service.url + CHAT,
            json=chat,
            headers={"authorization": f"Bearer {key}", "x-llmemo-namespace": "faq"},
        )
        assert answer.headers["x-llmemo-cache"] == "hit"
    assert upstream.stats().total == 1
    anonymous = httpx.post(service.url + CHAT, json=chat, headers={"x-llmemo-namespace": "faq"})
    assert anonymous.status_code == 401  # a shared namespace needs an accepted key
    assert upstream.stats().total == 1


def test_warming_an_isolated_namespace_is_refused_before_any_call(
    serve: Serve, upstream: UpstreamServer
) -> None:
    service = serve(shared_namespaces=["faq"])
    batch = {"requests": [item("faq"), {**item("public"), "namespace": "docs"}], "namespace": "faq"}
    refused = warm(service, batch)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "item 1: namespace 'docs' is isolated per API key" in error["message"]
    assert "--shared-namespace docs" in error["message"]
    mismatch = warm(service, {**item("faq"), "namespace": "faq", "shared": False})
    assert mismatch.status_code == 400
    assert "namespace 'faq' is shared" in mismatch.json()["error"]["message"]
    assert upstream.stats().total == 0


def test_bad_items_fail_alone_and_bad_bodies_are_400(
    service: ServiceServer, upstream: UpstreamServer
) -> None:
    result = warm(service, [item("ok"), {"query": "no model"}, item("x", model="fail-503")]).json()
    statuses = [r["status"] for r in result["results"]]
    assert statuses == ["stored", "failed", "failed"]
    assert "model" in result["results"][1]["reason"]
    assert "503" in result["results"][2]["reason"]
    assert upstream.stats().total == 2  # the invalid item never went upstream
    bad = httpx.post(
        service.url + "/v1/warm",
        content=b"{nope",
        headers={"authorization": f"Bearer {TOKEN}"},
    )
    assert bad.status_code == 400
    assert warm(service, []).status_code == 400


# -- background jobs ----------------------------------------------------------------------------


def test_a_large_batch_runs_as_a_job_any_instance_can_report(
    serve: Serve, upstream: UpstreamServer
) -> None:
    first, second = serve(warm_background_from=3), serve()
    body = [item(f"job item {i}") for i in range(8)]
    accepted = warm(first, body, **{"idempotency-key": "batch-1"})
    assert accepted.status_code == 202
    job = accepted.json()["job"]
    assert accepted.headers["location"] == f"/v1/warm/{job}"
    auth = {"authorization": f"Bearer {TOKEN}"}
    deadline = time.monotonic() + 20
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = httpx.get(f"{second.url}/v1/warm/{job}", headers=auth).json()
        if state["status"] != "running":
            break
        time.sleep(0.05)
    assert state["status"] == "done"
    assert state["summary"]["stored"] == 8
    assert [r["index"] for r in state["results"]] == list(range(8))
    assert upstream.stats().total == 8
    retried = warm(first, body, **{"idempotency-key": "batch-1"})  # same job, no second run
    assert retried.status_code == 202
    assert retried.json()["job"] == job
    assert upstream.stats().total == 8
    assert httpx.get(f"{second.url}/v1/warm/wj_nope", headers=auth).status_code == 404
    assert httpx.get(f"{second.url}/v1/warm/{job}").status_code == 401


# -- rate limits --------------------------------------------------------------------------------


def test_the_eleventh_warm_request_in_the_window_gets_429(service: ServiceServer) -> None:
    codes = [warm(service, item()) for _ in range(11)]
    assert [r.status_code for r in codes[:10]] == [200] * 10
    limited = codes[10]
    assert limited.status_code == 429
    assert limited.headers["x-ratelimit-limit"] == "10"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert int(limited.headers["x-ratelimit-reset"]) >= int(time.time())
    assert 1 <= int(limited.headers["retry-after"]) <= 10
    assert codes[0].headers["x-ratelimit-remaining"] == "9"


def test_after_the_window_warm_requests_are_allowed_again(serve: Serve) -> None:
    service = serve(warm_rate_limit="2/1 second")
    assert [warm(service, item()).status_code for _ in range(3)] == [200, 200, 429]
    time.sleep(1.1)
    assert warm(service, item()).status_code == 200


def test_the_miss_limit_caps_upstream_calls_never_hits(
    serve: Serve, upstream: UpstreamServer
) -> None:
    service = serve(miss_rate_limit="2/10 seconds", shared_namespaces=[])  # a limit per tenant

    def ask(text: str, key: str = ALICE) -> httpx.Response:
        chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
        return httpx.post(
            service.url + CHAT, json=chat, headers={"authorization": f"Bearer {key}"}, timeout=30
        )

    assert ask("one").headers["x-llmemo-cache"] == "miss"
    assert ask("two").headers["x-llmemo-cache"] == "miss"
    limited = ask("three")
    assert limited.status_code == 429
    assert limited.json()["error"]["type"] == "rate_limit_exceeded"
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["x-ratelimit-limit"] == "2"
    for _ in range(5):  # hits are free: never limited, never counted
        hit = ask("one")
        assert hit.status_code == 200
        assert hit.headers["x-llmemo-cache"] == "hit"
    assert ask("three", key=BOB).status_code == 200  # another tenant has its own budget
    assert upstream.stats().total == 3
    metrics = httpx.get(service.url + "/metrics").text
    assert 'llmemo_rate_limited_total{limit="miss"} 1.0' in metrics


def test_the_miss_limit_streams_answer_429_too(serve: Serve) -> None:
    service = serve(miss_rate_limit="1/10 seconds")
    for text, code in (("s1", 200), ("s2", 429)):
        chat = {
            "model": "gpt-4o-mini",
            "stream": True,
            "messages": [{"role": "user", "content": text}],
        }
        response = httpx.post(
            service.url + CHAT, json=chat, headers={"authorization": f"Bearer {ALICE}"}
        )
        assert response.status_code == code


def test_the_limiters_fail_open_when_redis_is_down(
    serve: Serve, upstream: UpstreamServer, redis_server: RedisServer
) -> None:
    service = serve(miss_rate_limit="1/10 seconds", shared_namespaces=[])
    redis_server.stop()
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "down"}]}
    for _ in range(3):  # over the limit, but the limiter cannot count: allowed (and counted)
        response = httpx.post(
            service.url + CHAT, json=chat, headers={"authorization": f"Bearer {ALICE}"}
        )
        assert response.status_code == 200
    assert upstream.stats().total == 3  # the cache failed open too
    metrics = httpx.get(service.url + "/metrics").text
    errors = [line for line in metrics.splitlines() if line.startswith("llmemo_ratelimit_errors")]
    assert errors and float(errors[0].split()[-1]) >= 3
    down = warm(service, item())  # warming needs the store: 503, so the scheduler retries
    assert down.status_code == 503
    assert down.headers["retry-after"]
    assert upstream.stats().total == 3


@pytest.mark.parametrize("limit", ["ten a minute", "0/0"])
def test_a_bad_limit_is_a_config_error(limit: str) -> None:
    from llmemo.errors import ConfigError
    from llmemo.service import create_app, load_settings

    with pytest.raises(ConfigError, match="warm_rate_limit"):
        create_app(load_settings(store="memory://", warm_rate_limit=limit))
