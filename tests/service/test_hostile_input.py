"""Hostile requests against a running service (uvicorn, Redis, the local upstream): deep nesting,
caller lifetimes that do not fit, delivery fields of the wrong type. Each is a 400 in the
provider's shape before any upstream call, logged without a traceback."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from llmemo.core.request import MAX_DEPTH
from llmemo.testing.server import UpstreamServer
from tests.service.conftest import ALICE, Serve

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is Redis?"}]}
CLAUDE = {**CHAT, "model": "claude-haiku-4-5", "max_tokens": 50}
TOKEN = "warm-token-0123456789"
# route -> (a valid body, the error shape it answers in)
ROUTES: dict[str, tuple[dict[str, Any], str]] = {
    "/v1/chat/completions": (CHAT, "openai"),
    "/v1/completions": ({"model": "gpt-3.5-turbo-instruct", "prompt": "Redis is"}, "openai"),
    "/v1/embeddings": ({"model": "text-embedding-3-small", "input": "Redis"}, "openai"),
    "/v1/responses": ({"model": "gpt-4o-mini", "input": "What is Redis?"}, "openai"),
    "/v1/messages": (CLAUDE, "anthropic"),
    "/v1/warm": (CHAT, "openai"),
}


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def error_of(response: httpx.Response, shape: str, status: int = 400) -> str:
    """The message of an error answer, checked to be in the provider's shape."""
    assert response.status_code == status, response.text
    body = response.json()
    if shape == "anthropic":
        assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
        assert body["error"]["type"] == "invalid_request_error"
    else:
        assert set(body) == {"error"} and body["error"]["type"] == "invalid_request_error"
    message: str = body["error"]["message"]
    return message


def client(url: str) -> httpx.Client:
    headers = {"authorization": f"Bearer {ALICE}", "x-api-key": ALICE}
    return httpx.Client(base_url=url, headers=headers, timeout=30)


@pytest.mark.parametrize("levels", [MAX_DEPTH, 253, 2000])  # 253 and more were a 500 before
@pytest.mark.parametrize("route", list(ROUTES))
def test_deep_nesting_is_a_400_on_every_route_without_a_traceback(
    serve: Serve,
    upstream: UpstreamServer,
    caplog: pytest.LogCaptureFixture,
    route: str,
    levels: int,
) -> None:
    service = serve(warm_token=TOKEN)
    body, shape = ROUTES[route]
    raw = orjson_with(body, "x", nested(levels))
    headers = {"authorization": f"Bearer {TOKEN}"} if route == "/v1/warm" else {}
    caplog.set_level(logging.INFO)
    with client(service.url) as http:
        response = http.post(route, content=raw, headers={**headers, "content-type": "json"})
    message = error_of(response, shape)
    assert "levels deep" in message or "depth limit" in message  # orjson's own, from 1024 on
    assert upstream.stats().total == 0
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def orjson_with(body: dict[str, Any], name: str, raw_value: str) -> bytes:
    """The body's JSON with one more member whose value is given as raw JSON text."""
    import orjson

    return orjson.dumps(body)[:-1] + f', "{name}": {raw_value}}}'.encode()


@pytest.mark.parametrize(
    "headers",
    [
        {"x-llmemo-ttl": "1e308"},
        {"x-llmemo-ttl": "Infinity"},
        {"x-llmemo-ttl": "nan"},
        {"x-llmemo-ttl": "-5"},
        {"x-llmemo-ttl": "0"},
        {"x-llmemo-ttl": "31d"},  # over the default max_ttl (30 days)
        {"x-llmemo-stale-grace": "inf"},
        {"x-llmemo-stale-grace": "1e308"},
        {"cache-control": "stale-while-revalidate=inf"},
        {"cache-control": "max-age=60, stale-while-revalidate=1e400"},
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_a_lifetime_that_does_not_fit_is_a_400_before_the_upstream_is_paid(
    serve: Serve, upstream: UpstreamServer, headers: dict[str, str], stream: bool
) -> None:
    service = serve()
    with client(service.url) as http:
        response = http.post(
            "/v1/chat/completions", json={**CHAT, "stream": stream}, headers=headers
        )
        error_of(response, "openai")
        response = http.post("/v1/messages", json={**CLAUDE, "stream": stream}, headers=headers)
        error_of(response, "anthropic")
    assert upstream.stats().total == 0


def test_max_ttl_is_the_longest_lifetime_a_caller_gets(
    serve: Serve, upstream: UpstreamServer
) -> None:
    service = serve(max_ttl="1h")
    with client(service.url) as http:
        over = http.post("/v1/chat/completions", json=CHAT, headers={"x-llmemo-ttl": "3601"})
        assert "over the maximum of 3600 s" in error_of(over, "openai")
        assert upstream.stats().total == 0
        fits = http.post("/v1/chat/completions", json=CHAT, headers={"x-llmemo-ttl": "1h"})
        assert fits.status_code == 200 and fits.headers["x-llmemo-cache"] == "miss"


def test_an_answer_over_max_entry_bytes_is_served_but_not_stored(
    serve: Serve, upstream: UpstreamServer
) -> None:
    service = serve(max_entry_bytes=200)
    with client(service.url) as http:
        first = http.post("/v1/chat/completions", json=CHAT)
        second = http.post("/v1/chat/completions", json=CHAT)
    assert first.status_code == second.status_code == 200
    assert first.json()["choices"][0]["message"]["content"]
    assert (first.headers["x-llmemo-cache"], second.headers["x-llmemo-cache"]) == ("miss", "miss")
    assert upstream.stats().total == 2


@pytest.mark.parametrize("value", ["1", '"yes"', '"true"', "0", "{}"])
def test_a_stream_flag_that_is_not_a_boolean_is_a_400_on_a_hit_and_a_miss(
    serve: Serve, upstream: UpstreamServer, value: str
) -> None:
    service = serve()
    with client(service.url) as http:
        cold = http.post("/v1/chat/completions", content=orjson_with(CHAT, "stream", value))
        assert "'stream'" in error_of(cold, "openai")  # was a 502 (a stream read as JSON)
        assert http.post("/v1/chat/completions", json=CHAT).status_code == 200  # now stored
        warm = http.post("/v1/chat/completions", content=orjson_with(CHAT, "stream", value))
        assert "'stream'" in error_of(warm, "openai")  # was a 200 hit
        claude = http.post("/v1/messages", content=orjson_with(CLAUDE, "stream", value))
        assert "'stream'" in error_of(claude, "anthropic")
        options = http.post("/v1/chat/completions", json={**CHAT, "stream_options": value})
        assert "'stream_options'" in error_of(options, "openai")
    assert upstream.stats().total == 1


def test_model_labels_of_a_running_service_are_bounded(
    serve: Serve, upstream: UpstreamServer
) -> None:
    service = serve(max_model_labels=2)
    with client(service.url) as http:
        for n in range(6):
            http.post("/v1/chat/completions", json={**CHAT, "model": f"probe-{n}\x00"})
        text = http.get("/metrics").text
    assert 'model="probe-0"' in text and 'model="probe-1"' in text and 'model="other"' in text
    assert "probe-2" not in text and "\x00" not in text


@pytest.mark.parametrize(
    ("method", "path", "location"),
    [
        ("POST", "/v1/chat/completions/", "/v1/chat/completions"),
        ("GET", "/healthz/?verbose=1", "/healthz?verbose=1"),
        ("GET", "/metrics/", "/metrics"),
    ],
)
def test_the_trailing_slash_redirect_is_relative(
    serve: Serve, method: str, path: str, location: str
) -> None:
    service = serve()
    with client(service.url) as http:
        response = http.request(method, path, json=CHAT, headers={"host": "evil.example"})
    assert response.status_code == 307
    assert response.headers["location"] == location  # never built from the Host header


def test_a_warm_item_over_max_ttl_fails_alone_before_the_upstream_is_paid(
    serve: Serve, upstream: UpstreamServer
) -> None:
    service = serve(warm_token=TOKEN, max_ttl="1h", shared_namespaces=["default"])
    items = [{**CHAT, "ttl": "2h"}, {**CHAT, "ttl": "1e308"}, {**CHAT, "ttl": "30m"}]
    with client(service.url) as http:
        response = http.post("/v1/warm", json=items, headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["failed", "failed", "stored"]
    assert all("over the maximum" in r["reason"] for r in results[:2])
    assert upstream.stats().total == 1
