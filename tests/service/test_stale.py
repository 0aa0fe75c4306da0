"""Stale-while-revalidate through the service: `X-LLMemo-Cache: stale`, one background refresh."""

from __future__ import annotations

import time

import httpx
import pytest

from llmemo.service.controls import read_controls
from llmemo.testing.server import UpstreamServer
from tests.service.conftest import ALICE, Serve

CHAT = "/v1/chat/completions"
# The local upstream sleeps 600 ms for this model: the refresh is still running for later requests.
BODY = {"model": "slow-600", "messages": [{"role": "user", "content": "A stale fact?"}]}


def ask(url: str, **headers: str) -> httpx.Response:
    return httpx.post(
        url + CHAT, json=BODY, headers={"authorization": f"Bearer {ALICE}", **headers}, timeout=30
    )


def test_stale_entries_are_served_while_one_refresh_runs(
    serve: Serve, upstream: UpstreamServer
) -> None:
    service = serve(ttl="1s", stale_grace="30s")
    first = ask(service.url)
    assert first.headers["x-llmemo-cache"] == "miss"
    time.sleep(1.2)  # past the soft TTL (1 s +-10 %), inside the grace; the refresh takes 600 ms
    stale = [ask(service.url) for _ in range(5)]
    assert [r.headers["x-llmemo-cache"] for r in stale] == ["stale"] * 5
    assert all(r.json()["id"] == first.json()["id"] for r in stale)  # the old answer, at once
    assert "age" in stale[0].headers
    deadline = time.monotonic() + 10
    while (fresh := ask(service.url)).json()["id"] == first.json()["id"]:
        assert fresh.headers["x-llmemo-cache"] == "stale"
        assert time.monotonic() < deadline, "the background refresh never landed"
        time.sleep(0.05)
    assert fresh.headers["x-llmemo-cache"] == "hit"  # the refreshed answer
    assert upstream.stats().count(CHAT, "slow-600") == 2  # many stale answers, one refresh


def test_without_grace_an_expired_entry_is_a_miss(serve: Serve) -> None:
    service = serve(ttl="1s")
    ask(service.url)
    time.sleep(1.2)
    assert ask(service.url).headers["x-llmemo-cache"] == "miss"


@pytest.mark.parametrize(
    ("headers", "grace"),
    [
        ({"cache-control": "stale-while-revalidate=600"}, 600.0),
        ({"x-llmemo-stale-grace": "10m"}, 600.0),
        ({"cache-control": "no-store"}, None),
    ],
)
def test_grace_from_headers(headers: dict[str, str], grace: float | None) -> None:
    assert read_controls(headers, shared=False).stale_grace == grace
