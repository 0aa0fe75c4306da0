"""Shared mode: who may read and refresh what everyone gets, and the headers that change answers."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmemo.service import load_settings
from llmemo.service.access import SharedAccess
from llmemo.service.errors import AuthError
from llmemo.service.upstream import Upstreams
from llmemo.testing.server import UpstreamServer
from tests.service.conftest import ALICE, BOB, Serve

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Shared answer?"}]}
MESSAGE = {
    "model": "claude-3-5-haiku-latest",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "Shared answer?"}],
}
ANTHROPIC = {"anthropic-version": "2023-06-01"}


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.fixture
def keyed_upstream() -> Iterator[UpstreamServer]:
    """An upstream that accepts only Alice's and Bob's keys, as a real provider does."""
    with UpstreamServer(api_keys={ALICE, BOB}) as server:
        yield server


def post(url: str, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url + path, json=body, headers=headers, timeout=30)


def test_shared_mode_serves_hits_only_to_keys_the_upstream_accepts(
    serve: Serve, keyed_upstream: UpstreamServer
) -> None:
    service = serve(
        shared=True,
        openai_base_url=keyed_upstream.openai_base_url,
        anthropic_base_url=keyed_upstream.url,
    )
    first = post(service.url, "/v1/chat/completions", CHAT, bearer(ALICE))
    assert first.status_code == 200 and first.headers["x-llmemo-cache"] == "miss"

    for headers in ({}, bearer("garbage"), {"x-api-key": "garbage"}):
        refused = post(service.url, "/v1/chat/completions", CHAT, headers)
        assert refused.status_code == 401
        assert refused.headers["x-llmemo-cache"] == "bypass"
        error = refused.json()["error"]
        assert error["type"] == "invalid_request_error" and "garbage" not in error["message"]
    refused = post(service.url, "/v1/messages", MESSAGE, {"x-api-key": "garbage", **ANTHROPIC})
    assert refused.status_code == 401
    assert refused.json()["type"] == "error"
    assert refused.json()["error"]["type"] == "authentication_error"

    hit = post(service.url, "/v1/chat/completions", CHAT, bearer(BOB))  # another accepted key
    assert hit.headers["x-llmemo-cache"] == "hit" and hit.json()["id"] == first.json()["id"]
    checks = keyed_upstream.stats().count(route="/v1/models")
    post(service.url, "/v1/chat/completions", CHAT, bearer("garbage"))
    post(service.url, "/v1/chat/completions", CHAT, bearer(BOB))
    assert keyed_upstream.stats().count(route="/v1/models") == checks  # verdicts are kept
    assert keyed_upstream.stats().count(route="/v1/chat/completions") == 1


def test_shared_mode_with_client_keys_accepts_only_those(
    serve: Serve, upstream: UpstreamServer
) -> None:
    bob = "sha256:" + hashlib.sha256(BOB.encode()).hexdigest()  # a key given by its digest
    service = serve(shared=True, client_keys=f"{ALICE}, {bob}")
    first = post(service.url, "/v1/chat/completions", CHAT, bearer(ALICE))
    assert first.headers["x-llmemo-cache"] == "miss"
    for headers in ({}, bearer("garbage"), bearer(ALICE + "x")):
        refused = post(service.url, "/v1/chat/completions", CHAT, headers)
        assert refused.status_code == 401 and "error" in refused.json()
    hit = post(service.url, "/v1/chat/completions", CHAT, {"x-api-key": BOB})
    assert hit.headers["x-llmemo-cache"] == "hit" and hit.json()["id"] == first.json()["id"]
    assert upstream.stats().count(route="/v1/models") == 0  # the upstream is never asked


def test_only_writers_refresh_shared_entries(serve: Serve, upstream: UpstreamServer) -> None:
    service = serve(shared=True, client_keys=f"{ALICE},{BOB}", shared_writers=ALICE)
    stored = post(service.url, "/v1/chat/completions", CHAT, bearer(ALICE)).json()["id"]

    fresh = post(
        service.url, "/v1/chat/completions", CHAT, {**bearer(BOB), "cache-control": "no-cache"}
    )
    assert fresh.status_code == 200 and fresh.headers["x-llmemo-cache"] == "bypass"
    assert fresh.json()["id"] != stored  # Bob got a fresh answer...
    after = post(service.url, "/v1/chat/completions", CHAT, bearer(BOB))
    assert after.headers["x-llmemo-cache"] == "hit" and after.json()["id"] == stored  # ...not kept

    refreshed = post(
        service.url, "/v1/chat/completions", CHAT, {**bearer(ALICE), "cache-control": "no-cache"}
    )
    assert refreshed.headers["x-llmemo-cache"] == "miss"
    again = post(service.url, "/v1/chat/completions", CHAT, bearer(BOB))
    assert again.json()["id"] == refreshed.json()["id"] != stored


@pytest.mark.parametrize("shared", [False, True])
def test_headers_that_change_the_answer_are_part_of_the_key(
    serve: Serve, upstream: UpstreamServer, shared: bool
) -> None:
    service = serve(shared=shared, client_keys=ALICE if shared else None)
    alice = {"x-api-key": ALICE, **ANTHROPIC}

    def ask(path: str, body: Any, headers: dict[str, str]) -> str:
        for _ in range(4):  # the fourth takes the hot answers' path (service/hot.py)
            answer = post(service.url, path, body, {**alice, **headers})
        status: str = answer.headers["x-llmemo-cache"]
        return status

    assert ask("/v1/messages", MESSAGE, {"anthropic-beta": "a-1,b-2"}) == "hit"
    assert (
        post(service.url, "/v1/messages", MESSAGE, {**alice, "anthropic-beta": "c-3"}).headers[
            "x-llmemo-cache"
        ]
        == "miss"
    )
    same = post(service.url, "/v1/messages", MESSAGE, {**alice, "anthropic-beta": "b-2, a-1"})
    assert same.headers["x-llmemo-cache"] == "hit"  # the same betas in another order
    plain = post(service.url, "/v1/messages", MESSAGE, alice)
    assert plain.headers["x-llmemo-cache"] == "miss"
    version = post(
        service.url, "/v1/messages", MESSAGE, {**alice, "anthropic-version": "2099-01-01"}
    )
    assert version.headers["x-llmemo-cache"] == "miss"

    assert ask("/v1/chat/completions", CHAT, {"openai-beta": "assistants=v2"}) == "hit"
    other = post(service.url, "/v1/chat/completions", CHAT, alice)
    assert other.headers["x-llmemo-cache"] == "miss"
    assert upstream.stats().count(route="/v1/messages") == 4


@pytest.mark.asyncio
async def test_upstream_verdicts_are_kept_for_the_ttl_and_shared_by_concurrent_checks(
    keyed_upstream: UpstreamServer,
) -> None:
    settings = load_settings(shared=True, openai_base_url=keyed_upstream.openai_base_url)
    now = [0.0]
    upstreams = Upstreams(settings)
    access = SharedAccess(settings, upstreams, clock=lambda: now[0])

    def checks() -> int:
        return keyed_upstream.stats().count(route="/v1/models")

    try:
        results = await asyncio.gather(*(access.check("openai", bearer(BOB)) for _ in range(5)))
        assert results == [False] * 5 and checks() == 1  # a reader; one check for all five
        assert await access.check("openai", {"x-api-key": ALICE}) is False and checks() == 2
        with pytest.raises(AuthError):
            await access.check("openai", bearer("garbage"))
        with pytest.raises(AuthError):
            await access.check("openai", bearer("garbage"))  # a refusal is kept too
        assert checks() == 3
        now[0] = settings.key_check_ttl + 1
        await access.check("openai", bearer(BOB))
        assert checks() == 4  # asked again once the verdict is older than key_check_ttl
        assert ALICE.encode() not in repr(access.__dict__).encode()  # digests only
    finally:
        await upstreams.aclose()
