"""Odd upstream answers pass through uncached: a redirect keeps its status, an unknown shape or an
answer without a final reason (whole or streamed) is served but never stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from llmemo.testing.failures import ODD_REDIRECT, ODD_SHAPE, ODD_UNFINISHED
from llmemo.testing.server import UpstreamServer
from tests.service.conftest import ALICE, Serve

ASK = [{"role": "user", "content": "What is Redis?"}]


def body(route: str, model: str) -> dict[str, Any]:
    if route == "/v1/messages":
        return {"model": model, "messages": ASK, "max_tokens": 50}
    if route == "/v1/completions":
        return {"model": model, "prompt": "Redis is"}
    if route == "/v1/embeddings":
        return {"model": model, "input": "Redis"}
    if route == "/v1/responses":
        return {"model": model, "input": "What is Redis?"}
    return {"model": model, "messages": ASK}


def twice(url: str, route: str, payload: dict[str, Any]) -> list[httpx.Response]:
    headers = {"authorization": f"Bearer {ALICE}", "x-api-key": ALICE}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        return [http.post(route, json=payload) for _ in range(2)]


ROUTES = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses",
          "/v1/messages"]  # fmt: skip


@pytest.mark.parametrize("route", ROUTES)
def test_a_redirect_keeps_its_status_and_is_not_cached(
    serve: Serve, upstream: UpstreamServer, route: str
) -> None:
    service = serve()
    answers = twice(service.url, route, body(route, ODD_REDIRECT))
    for answer in answers:
        assert answer.status_code == 302 and answer.headers["x-llmemo-cache"] == "miss"
        assert answer.json()["model"] == ODD_REDIRECT  # the upstream's own body
    assert upstream.stats().total == 2


@pytest.mark.parametrize("route", ROUTES)
def test_an_answer_of_unknown_shape_is_served_but_not_stored(
    serve: Serve, upstream: UpstreamServer, route: str
) -> None:
    service = serve()
    answers = twice(service.url, route, body(route, ODD_SHAPE))
    for answer in answers:
        assert answer.status_code == 200 and answer.json()["object"] == "surprise"
        assert answer.headers["x-llmemo-cache"] == "miss"
    assert upstream.stats().total == 2


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "route", ["/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages"]
)
def test_an_answer_without_a_final_reason_is_served_but_not_stored(
    serve: Serve, upstream: UpstreamServer, route: str, stream: bool
) -> None:
    service = serve()
    answers = twice(service.url, route, {**body(route, ODD_UNFINISHED), "stream": stream})
    for answer in answers:
        assert answer.status_code == 200 and answer.headers["x-llmemo-cache"] == "miss"
        if stream:
            assert answer.headers["content-type"].startswith("text/event-stream")
            end = b"message_stop" if route == "/v1/messages" else b"[DONE]"
            if route != "/v1/responses":
                assert end in answer.content  # the stream was whole, only its reason is missing
    assert upstream.stats().total == 2


def test_a_finished_answer_is_still_stored(serve: Serve, upstream: UpstreamServer) -> None:
    service = serve()
    for route in ROUTES:
        model = {"/v1/messages": "claude-haiku-4-5", "/v1/completions": "gpt-3.5-turbo-instruct",
                 "/v1/embeddings": "text-embedding-3-small"}.get(route, "gpt-4o-mini")  # fmt: skip
        first, second = twice(service.url, route, body(route, model))
        assert (first.headers["x-llmemo-cache"], second.headers["x-llmemo-cache"]) == (
            "miss",
            "hit",
        ), route
    assert upstream.stats().total == len(ROUTES)
