"""The dashboard's rollups through real services: two instances on one store add up, behind the
admin token (`GET /admin/stats`, service/admin_stats.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.redis_server import RedisServer
from tests.service.conftest import ALICE, BOB, Serve, ServiceServer
from tests.service.test_cli import serving

TOKEN = "admin-s3cret"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
MODEL = "gpt-4o-mini"


def ask(service: ServiceServer, text: str, key: str = ALICE, **headers: str) -> str:
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}]}
    answer = httpx.post(
        f"{service.base_url}/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}", **headers},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.headers["x-llmemo-cache"]


def stats(service: ServiceServer, **query: str) -> dict[str, Any]:
    answer = httpx.get(f"{service.url}/admin/stats", params=query, headers=ADMIN, timeout=30)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def metric_totals(services: list[ServiceServer]) -> dict[str, float]:
    """Answers by cache result and what they saved, summed over the services' /metrics."""
    totals: dict[str, float] = {}
    for service in services:
        text = httpx.get(f"{service.url}/metrics", timeout=30).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "llmemo_requests_total":
                    name = sample.labels["cache"]
                elif sample.name in ("llmemo_tokens_saved_total", "llmemo_dollars_saved_total"):
                    name = sample.name.removeprefix("llmemo_").removesuffix("_total")
                else:
                    continue
                totals[name] = totals.get(name, 0) + sample.value
    return totals


@pytest.fixture(params=["redis", "sqlite"])
def pair(serve: Serve, request: pytest.FixtureRequest, tmp_path: Path) -> list[ServiceServer]:
    """Two instances sharing one store: Redis, or the embedded SQLite file."""
    options: dict[str, Any] = {"admin_token": TOKEN}
    if request.param == "sqlite":
        options["store"] = f"sqlite:///{tmp_path / 'cache.db'}"
    return [serve(**options), serve(**options)]


def test_two_instances_on_one_redis_add_up_to_their_metrics(pair: list[ServiceServer]) -> None:
    one, two = pair
    assert ask(one, "What is a cache?") == "miss"
    assert ask(one, "What is a cache?") == "hit"
    assert ask(one, "What is a cache?") == "hit"  # a hot answer from then on
    assert ask(two, "What is a cache?") == "hit"  # the other instance's entry
    assert ask(two, "Define latency.", key=BOB, **{"x-llmemo-namespace": "faq"}) == "miss"
    assert ask(two, "Define latency.", key=BOB, **{"x-llmemo-namespace": "faq"}) == "hit"
    assert ask(one, "Fresh please", **{"cache-control": "no-cache, no-store"}) == "bypass"
    stats(two)  # each instance writes what it counted up to now when asked
    got = stats(one)
    want = metric_totals(pair)
    totals = got["totals"]
    assert (totals["exact"], totals["miss"], totals["bypass"]) == (4, 2, 1)
    assert totals["exact"] == want["hit"] and totals["miss"] == want["miss"]
    assert totals["bypass"] == want["bypass"] and totals["requests"] == 7
    assert totals["tokens_saved"] == want["tokens_saved"] > 0
    assert totals["dollars_saved"] == pytest.approx(want["dollars_saved"])
    assert totals["dollars_spent"] > 0
    assert got["instances"] == 2
    assert sum(point["requests"] for point in got["series"]) == 7
    namespaces = {row["name"]: row for row in got["by"]["namespace"]}
    assert namespaces["faq"]["requests"] == 2 and namespaces["faq"]["hits"] == 1
    assert namespaces["default"]["requests"] == 5 and namespaces["default"]["hit_ratio"] == 0.6
    assert [row["name"] for row in got["by"]["model"]] == [MODEL]
    assert len(got["by"]["tenant"]) == 2  # Alice's and Bob's opaque ids
    assert got["health"]["singleflight"]["leaders"] == 2
    assert got["health"]["breaker"] == "closed"
    assert got["totals"]["latency_ms"]["hit"]["p50"] > 0
    assert got["totals"]["latency_ms"]["upstream"]["p99"] > 0
    faq = stats(one, namespace="faq")["totals"]
    assert (faq["requests"], faq["exact"], faq["miss"]) == (2, 1, 1)


def test_the_stats_need_the_admin_token_and_a_known_window(serve: Serve) -> None:
    service = serve(admin_token=TOKEN)
    refused = httpx.get(f"{service.url}/admin/stats", timeout=30)
    assert refused.status_code == 401 and "LLMEMO_ADMIN_TOKEN" in refused.text
    bad = httpx.get(f"{service.url}/admin/stats?window=year", headers=ADMIN, timeout=30)
    assert bad.status_code == 400 and "hour, day or week" in bad.json()["error"]["message"]
    both = httpx.get(f"{service.url}/admin/stats?namespace=a&model=b", headers=ADMIN, timeout=30)
    assert both.status_code == 400 and "at most one" in both.json()["error"]["message"]
    for window, points, seconds in (("hour", 60, 60), ("day", 144, 600), ("week", 168, 3600)):
        empty = stats(service, window=window)
        assert (len(empty["series"]), empty["bucket_seconds"]) == (points, seconds)
        assert empty["totals"]["requests"] == 0
        assert empty["semantic"]["served"][0][:2] == [0.8, 0.81]


def test_with_the_dashboard_off_nothing_is_kept(serve: Serve) -> None:
    service = serve(admin_token=TOKEN, dashboard=False)
    ask(service, "Not counted")
    answer = httpx.get(f"{service.url}/admin/stats", headers=ADMIN, timeout=30)
    assert answer.status_code == 404 and "LLMEMO_DASHBOARD" in answer.text


def test_two_llmemo_serve_processes_on_one_redis_add_up(redis_url: str) -> None:
    env = {"REDIS_URL": redis_url, "LLMEMO_ADMIN_TOKEN": TOKEN}
    with (
        serving("--upstream", "demo", **env) as (one, _),
        serving("--upstream", "demo", **env) as (
            two,
            _,
        ),
    ):
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Two processes?"}]}
        key = {"authorization": f"Bearer {ALICE}"}
        seen = [
            httpx.post(f"{url}/v1/chat/completions", json=body, headers=key, timeout=30)
            for url in (one, two, one, two)
        ]
        assert [answer.headers["x-llmemo-cache"] for answer in seen] == [
            "miss",
            "hit",
            "hit",
            "hit",
        ]
        httpx.get(f"{two}/admin/stats", headers=ADMIN, timeout=30)  # two writes what it counted
        got = httpx.get(f"{one}/admin/stats", headers=ADMIN, timeout=30).json()
        want: dict[str, float] = {}
        for url in (one, two):
            for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
                for sample in family.samples:
                    if sample.name == "llmemo_requests_total":
                        cache = sample.labels["cache"]
                        want[cache] = want.get(cache, 0) + sample.value
    assert want == {"miss": 1, "hit": 3}
    assert (got["totals"]["miss"], got["totals"]["exact"], got["instances"]) == (1, 3, 2)


def test_a_store_outage_is_reported_and_nothing_counted_is_lost(
    serve: Serve, redis_server: RedisServer
) -> None:
    service = serve(admin_token=TOKEN, store_retry=0.3, near_ttl="0")
    assert [ask(service, "Outage?"), ask(service, "Outage?")] == ["miss", "hit"]
    stats(service)
    redis_server.stop()
    assert [ask(service, "Outage?") for _ in range(3)] == ["miss"] * 3  # failing open
    down = httpx.get(f"{service.url}/admin/stats", headers=ADMIN, timeout=30)
    assert down.status_code == 503 and down.json()["error"]["message"]
    redis_server.start()  # empty: the instance writes its running totals again
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and ask(service, "Back?") != "hit":
        time.sleep(0.1)
    got = stats(service, window="week")  # the hour buckets: the current one holds them all
    assert got["totals"]["exact"] >= 2 and got["totals"]["miss"] >= 5
    errors = got["health"]["store_errors"]
    assert errors and all("Error" in error["error"] for error in errors)
    assert got["health"]["breaker"] == "closed"


def test_rate_limit_refusals_and_wrong_hit_reports_are_counted(serve: Serve) -> None:
    service = serve(admin_token=TOKEN, miss_rate_limit="1/minute")
    assert ask(service, "First miss") == "miss"
    refused = httpx.post(
        f"{service.base_url}/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "Second miss"}]},
        headers={"authorization": f"Bearer {ALICE}"},
        timeout=30,
    )
    assert refused.status_code == 429
    service.app.state.service.proxy.cache.count("feedback_wrong_hit")  # as a report counts it
    got = stats(service)
    assert got["health"]["rate_limited"] == 1
    assert got["semantic"]["wrong_hit_reports"] == 1
