"""Health, readiness with the store up, down and back, and the Prometheus metrics."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.redis_server import RedisServer
from llmemo.testing.server import UpstreamServer
from tests.service.conftest import ALICE, Serve, ServiceServer

CHAT = "/v1/chat/completions"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Is the store up?"}]}
HEADERS = {"authorization": f"Bearer {ALICE}"}


def ask(http: httpx.Client, body: dict[str, object] = BODY) -> str:
    response = http.post(CHAT, json=body)
    assert response.status_code == 200, response.text
    return response.headers["x-llmemo-cache"]


def samples(http: httpx.Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and want <= ls)


def test_healthz(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}


def test_readyz_ok(http: httpx.Client) -> None:
    ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok" and ready.json()["circuit"] == "closed"


def test_store_down_fails_open_and_hits_resume(
    serve: Serve, redis_server: RedisServer, upstream: UpstreamServer
) -> None:
    service = serve(store_retry=0.3, near_ttl="0")  # every hit reads Redis (no near cache)
    with httpx.Client(base_url=service.url, headers=HEADERS, timeout=30) as http:
        assert [ask(http), ask(http)] == ["miss", "hit"]
        redis_server.stop()
        assert [ask(http), ask(http), ask(http)] == ["miss", "miss", "miss"]  # answered upstream
        ready = http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert "failing open" in ready.json()["detail"]
        assert http.get("/readyz", params={"strict": "1"}).status_code == 503
        assert value(samples(http), "llmemo_store_errors_total") >= 1
        redis_server.start()
        deadline = time.monotonic() + 10
        seen = []
        while time.monotonic() < deadline and seen[-2:] != ["miss", "hit"]:
            seen.append(ask(http))
            time.sleep(0.1)
        assert seen[-2:] == ["miss", "hit"]  # the restarted (empty) Redis stores and serves again
        assert http.get("/readyz").json()["status"] == "ok"
    assert upstream.stats().count(CHAT) == 1 + 3 + seen.count("miss")


def test_metrics_count_hits_misses_savings_and_errors(
    service: ServiceServer, upstream: UpstreamServer
) -> None:
    with httpx.Client(base_url=service.url, headers=HEADERS, timeout=30) as http:
        assert [ask(http), ask(http), ask(http)] == ["miss", "hit", "hit"]
        http.post(CHAT, json=BODY, headers={"cache-control": "no-cache, no-store"})
        assert http.post(CHAT, json={**BODY, "model": "fail-500"}).status_code == 500
        found = samples(http)
    route = {"route": CHAT}
    model = {"model": "gpt-4o-mini", **route}
    assert value(found, "llmemo_requests_total", cache="hit", **model) == 2
    assert value(found, "llmemo_requests_total", cache="miss", **model) == 1
    assert value(found, "llmemo_requests_total", cache="bypass", **model) == 1
    assert value(found, "llmemo_tokens_saved_total", **model) > 0
    assert value(found, "llmemo_dollars_saved_total", **model) > 0
    assert value(found, "llmemo_hit_latency_seconds_count", **route) == 2
    assert value(found, "llmemo_upstream_latency_seconds_count", **route) == 3
    assert value(found, "llmemo_upstream_errors_total", reason="500", **route) == 1
    assert value(found, "llmemo_store_errors_total") == 0
    assert value(found, "llmemo_store_circuit_open") == 0


def test_two_apps_keep_separate_metrics(serve: Serve) -> None:
    first, second = serve(), serve()
    with httpx.Client(base_url=first.url, headers=HEADERS) as http:
        ask(http)
    with httpx.Client(base_url=second.url, headers=HEADERS) as http:
        assert value(samples(http), "llmemo_requests_total") == 0


@pytest.mark.parametrize("enabled", [True, False])
def test_the_startup_heap_is_frozen_once_unless_turned_off(
    serve: Serve, monkeypatch: pytest.MonkeyPatch, enabled: bool
) -> None:
    import gc

    from llmemo.service import app as service_app

    monkeypatch.setattr(service_app, "_frozen", False)
    before = gc.get_freeze_count()
    serve(gc_freeze=enabled)
    frozen = gc.get_freeze_count() - before
    serve(gc_freeze=enabled)  # a second app in the same process does not freeze again
    assert (frozen > 1000) is enabled  # the imported modules and the app's objects
    assert gc.get_freeze_count() - before <= max(frozen, 0)  # (frozen objects can still die)
    assert service_app._frozen is enabled
