"""The cached routes' POSTs skip Starlette's router (`ServiceApp`): they must answer exactly as the
router's copy of the same routes does, errors included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from llmemo.service import create_app, load_settings
from llmemo.service.app import CachedRoute
from llmemo.testing.server import UpstreamServer

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
CHAT_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "dispatch me"}]}
MESSAGES_BODY = {**CHAT_BODY, "model": "claude-haiku-4-5", "max_tokens": 10}
HEADERS = {"authorization": "Bearer sk-dispatch", "anthropic-version": "2023-06-01"}


@pytest_asyncio.fixture
async def app(upstream: UpstreamServer) -> AsyncIterator[Starlette]:
    settings = load_settings(
        store="memory://",
        openai_base_url=upstream.openai_base_url,
        anthropic_base_url=upstream.url,
        max_body_bytes=4000,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def client(app: Starlette, root_path: str = "") -> httpx.AsyncClient:
    """A client of the app; under a root path its requests take the router instead."""
    transport = httpx.ASGITransport(app=app, root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url="http://llmemo", headers=HEADERS)


def routed_calls(app: Starlette) -> list[str]:
    """Record which cached routes were reached through the router."""
    seen: list[str] = []
    for route in app.routes:
        if isinstance(route, Route) and isinstance(route.app, CachedRoute):
            cached = route.app

            async def spy(scope: Scope, receive: Receive, send: Send, *, _r: Any = cached) -> None:
                seen.append(scope["path"])
                await _r(scope, receive, send)

            route.app = spy
    return seen


def comparable(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in response.headers.items() if k not in ("age", "date")}
    return response.status_code, headers, response.json()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "body"),
    [
        (CHAT, CHAT_BODY),
        (MESSAGES, MESSAGES_BODY),
        (CHAT, {"model": "gpt-4o-mini"}),  # 400: no messages
        (CHAT, b"{not json"),  # 400: not JSON
        (CHAT, {"model": "gpt-4o-mini", "messages": [], "pad": "x" * 5000}),  # 413
        (MESSAGES, {"model": "claude-haiku-4-5"}),  # 400 in Anthropic's shape
    ],
)
async def test_direct_and_routed_answers_are_the_same(
    app: Starlette, path: str, body: dict[str, Any] | bytes
) -> None:
    seen = routed_calls(app)
    content = body if isinstance(body, bytes) else None
    json = None if isinstance(body, bytes) else body
    async with client(app) as direct, client(app, root_path="/proxy") as routed:
        first = await direct.post(path, content=content, json=json)  # fills the cache
        assert seen == []  # the direct path did not take the router
        answers = [await direct.post(path, content=content, json=json)]
        answers.append(await routed.post(path, content=content, json=json))
        assert seen == [path]
    assert comparable(answers[0]) == comparable(answers[1])
    if first.status_code == 200:
        assert answers[0].headers["x-llmemo-cache"] == "hit"
    else:
        assert first.status_code in (400, 413)
        assert answers[0].headers["x-llmemo-cache"] == "bypass"


@pytest.mark.asyncio
async def test_an_internal_error_is_answered_in_the_provider_shape_then_raised(
    app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = app.state.service.proxy.cache

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug, not something the caller did")

    monkeypatch.setattr(cache, "compute", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://llmemo") as http:
        response = await http.post(MESSAGES, json=MESSAGES_BODY, headers=HEADERS)
    assert response.status_code == 500
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert "llmemo failed to handle the request" in body["error"]["message"]
    assert "a bug" not in response.text  # details stay in the server's log
    # ... and the exception reaches the server, which logs it (as with Starlette's own routes)
    async with client(app) as http:
        with pytest.raises(RuntimeError, match="a bug"):
            await http.post(CHAT, json=CHAT_BODY)


@pytest.mark.asyncio
async def test_other_methods_and_paths_still_take_the_router(app: Starlette) -> None:
    async with client(app) as http:
        wrong_method = await http.get(CHAT)
        unknown = await http.post("/v1/chat/completion", json=CHAT_BODY)
        health = await http.get("/healthz")
    assert wrong_method.status_code == 405 and "use POST" in wrong_method.json()["error"]["message"]
    assert unknown.status_code == 404 and "Unknown path" in unknown.json()["error"]["message"]
    assert health.json() == {"status": "ok"}


@pytest.mark.asyncio
async def test_the_404_lists_every_route(app: Starlette) -> None:
    async with client(app) as http:
        root = await http.get("/")
    assert root.status_code == 404
    message = root.json()["error"]["message"]
    assert message.startswith("Unknown path /: llmemo serves POST /v1/chat/completions, ")
    for path in ("/v1/responses", "/v1/warm", "/v1/messages", "/v1/embeddings", "/metrics"):
        assert path in message
    for route in app.routes:
        assert isinstance(route, Route)
        assert route.path in message
    assert "\n" not in message
