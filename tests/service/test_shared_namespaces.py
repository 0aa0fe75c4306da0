"""Shared namespaces: an isolated service that shares chosen namespaces, under shared-mode rules."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from llmemo.errors import ConfigError
from llmemo.service import load_settings
from llmemo.testing.server import UpstreamServer
from tests.service.conftest import ALICE, BOB, Serve

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "How do refunds work?"}]}
PATH = "/v1/chat/completions"


def ask(url: str, key: str | None, namespace: str | None = None, **headers: str) -> httpx.Response:
    sent: dict[str, Any] = dict(headers)
    if key is not None:
        sent["authorization"] = f"Bearer {key}"
    if namespace is not None:
        sent["x-llmemo-namespace"] = namespace
    return httpx.post(url + PATH, json=CHAT, headers=sent, timeout=30)


def test_a_shared_namespace_is_shared_and_the_others_stay_isolated(
    serve: Serve, upstream: UpstreamServer
) -> None:
    service = serve(shared_namespaces=["faq"], client_keys=f"{ALICE},{BOB}")
    first = ask(service.url, ALICE, "faq")
    assert first.headers["x-llmemo-cache"] == "miss"
    hit = ask(service.url, BOB, "faq")  # another accepted key: the same answer
    assert hit.headers["x-llmemo-cache"] == "hit" and hit.json()["id"] == first.json()["id"]
    for namespace in (None, "docs"):  # the service's own namespace, and one not listed
        mine, yours = ask(service.url, ALICE, namespace), ask(service.url, BOB, namespace)
        assert [mine.headers["x-llmemo-cache"], yours.headers["x-llmemo-cache"]] == ["miss"] * 2
        assert mine.json()["id"] != yours.json()["id"]
    assert upstream.stats().count(route="/v1/chat/completions") == 5


def test_a_shared_namespace_needs_an_accepted_key(serve: Serve, upstream: UpstreamServer) -> None:
    service = serve(shared_namespaces=["faq"], client_keys=ALICE)
    ask(service.url, ALICE, "faq")
    for key in (None, "sk-stranger"):
        refused = ask(service.url, key, "faq")
        assert refused.status_code == 401 and refused.headers["x-llmemo-cache"] == "bypass"
        isolated = ask(service.url, key)  # elsewhere the key is only its own tenant: no check
        assert isolated.status_code == 200 and isolated.headers["x-llmemo-cache"] == "miss"
    assert upstream.stats().count(route="/v1/chat/completions") == 3


def test_only_writers_refresh_a_shared_namespace(serve: Serve, upstream: UpstreamServer) -> None:
    service = serve(shared_namespaces=["faq"], client_keys=f"{ALICE},{BOB}", shared_writers=ALICE)
    stored = ask(service.url, ALICE, "faq").json()["id"]
    fresh = ask(service.url, BOB, "faq", **{"cache-control": "no-cache"})
    assert fresh.headers["x-llmemo-cache"] == "bypass" and fresh.json()["id"] != stored
    kept = ask(service.url, BOB, "faq")
    assert kept.headers["x-llmemo-cache"] == "hit" and kept.json()["id"] == stored
    refreshed = ask(service.url, ALICE, "faq", **{"cache-control": "no-cache"})
    assert refreshed.headers["x-llmemo-cache"] == "miss"
    assert ask(service.url, BOB, "faq").json()["id"] == refreshed.json()["id"] != stored


def test_the_services_own_namespace_can_be_shared(serve: Serve, upstream: UpstreamServer) -> None:
    """Requests with no llmemo header (the hot-answer path) follow the service's namespace."""
    service = serve(namespace="faq", shared_namespaces=["faq"], client_keys=f"{ALICE},{BOB}")
    first = ask(service.url, ALICE)
    for _ in range(3):  # past the hot-answer threshold
        again = ask(service.url, BOB)
        assert again.headers["x-llmemo-cache"] == "hit"
        assert again.json()["id"] == first.json()["id"]
    assert ask(service.url, "sk-stranger").status_code == 401
    other = ask(service.url, ALICE, "docs"), ask(service.url, BOB, "docs")
    assert [r.headers["x-llmemo-cache"] for r in other] == ["miss", "miss"]


def test_shared_namespaces_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMEMO_SHARED_NAMESPACES", " faq, docs ,")
    settings = load_settings()
    assert settings.shared_namespaces == ["faq", "docs"]
    assert settings.shares("faq") and not settings.shares(None) and not settings.shares("x")
    assert load_settings(shared=True).shares("anything")


def test_a_bad_shared_namespace_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMEMO_SHARED_NAMESPACES", "faq,not a name")
    with pytest.raises(ConfigError, match=r"shared_namespaces: .*invalid namespace 'not a name'"):
        load_settings()
