"""Bad input, through the ASGI app itself: every case is answered in the provider's error shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from llmemo.service import create_app, load_settings
from llmemo.testing.server import UpstreamServer

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
LIMIT = 2000
OPENAI_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
ANTHROPIC_BODY = {**OPENAI_BODY, "model": "claude-haiku-4-5", "max_tokens": 10}


@pytest_asyncio.fixture
async def client(upstream: UpstreamServer) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(
        store="memory://",
        openai_base_url=upstream.openai_base_url,
        anthropic_base_url=upstream.url,
        max_body_bytes=LIMIT,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"authorization": "Bearer sk-test"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://llmemo", headers=headers
        ) as http:
            yield http


def openai_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["x-llmemo-cache"] == "bypass"  # the cache was never asked
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    message: str = body["error"]["message"]
    return message


def anthropic_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    message: str = body["error"]["message"]
    return message


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"model": "gpt-4o-mini", "messages": [', "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "JSON object"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "'model'"),
        (b'{"model": 42, "messages": [{"role": "user", "content": "hi"}]}', "'model'"),
        (b'{"model": "gpt-4o-mini"}', "'messages'"),
        (b'{"model": "gpt-4o-mini", "messages": []}', "'messages'"),
    ],
)
async def test_bad_bodies_are_400_in_both_shapes(
    client: httpx.AsyncClient, content: bytes, expected: str
) -> None:
    assert expected in openai_error(await client.post(CHAT, content=content), 400)
    assert expected in anthropic_error(await client.post(MESSAGES, content=content), 400)


@pytest.mark.asyncio
async def test_bodies_over_the_limit_are_413(client: httpx.AsyncClient) -> None:
    big = {**OPENAI_BODY, "messages": [{"role": "user", "content": "x" * LIMIT}]}
    assert "limit of 2000 bytes" in openai_error(await client.post(CHAT, json=big), 413)

    async def chunked() -> AsyncIterator[bytes]:  # no content-length: counted while read
        for _ in range(10):
            yield b" " * 500

    anthropic_error(await client.post(MESSAGES, content=chunked()), 413)


@pytest.mark.asyncio
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_wrong_method_is_405(client: httpx.AsyncClient, method: str) -> None:
    assert "use POST" in openai_error(await client.request(method, CHAT), 405)
    assert "use POST" in anthropic_error(await client.request(method, MESSAGES), 405)
    assert (await client.post("/healthz")).status_code == 405


@pytest.mark.asyncio
async def test_unknown_path_is_404(client: httpx.AsyncClient) -> None:
    message = openai_error(await client.post("/v1/chat/complete", json=OPENAI_BODY), 404)
    assert "/v1/chat/completions" in message
    anthropic = await client.get("/v2/nothing", headers={"anthropic-version": "2023-06-01"})
    anthropic_error(anthropic, 404)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-llmemo-ttl", "soon"),
        ("x-llmemo-ttl", "0"),
        ("x-llmemo-namespace", "no spaces"),
        ("x-llmemo-tags", "ok, not ok"),
    ],
)
async def test_bad_control_headers_are_400(
    client: httpx.AsyncClient, header: str, value: str
) -> None:
    response = await client.post(CHAT, json=OPENAI_BODY, headers={header: value})
    assert "bad llmemo header" in openai_error(response, 400)


@pytest.mark.asyncio
async def test_bad_input_leaves_the_worker_and_cache_working(
    client: httpx.AsyncClient, upstream: UpstreamServer
) -> None:
    garbage: list[Any] = [b"\xff\xfe", b"[" * 1500, b'{"model": "m", "messages": [null]}']
    for content in garbage:
        response = await client.post(CHAT, content=content)
        assert response.status_code == 400, response.text
    statuses = [
        (await client.post(CHAT, json=OPENAI_BODY)).headers["x-llmemo-cache"] for _ in range(2)
    ]
    assert statuses == ["miss", "hit"]
    statuses = [
        (await client.post(MESSAGES, json=ANTHROPIC_BODY)).headers["x-llmemo-cache"]
        for _ in range(2)
    ]
    assert statuses == ["miss", "hit"]
