"""The operator credential (service/admin.py): no token configured, wrong token, right token."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from llmemo.service.admin import COOKIE, AdminAuth, admin_only

pytestmark = pytest.mark.asyncio


async def _secret(request: Request) -> Response:
    return PlainTextResponse("inside")


def _client(token: str | None) -> httpx.AsyncClient:
    auth = AdminAuth(SecretStr(token) if token is not None else None)
    app = Starlette(routes=[Route("/admin/x", admin_only(auth, _secret))])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_without_a_configured_token_every_call_is_refused_with_the_hint() -> None:
    async with _client(None) as client:
        answer = await client.get("/admin/x", headers={"authorization": "Bearer anything"})
    assert answer.status_code == 401
    message = answer.json()["error"]["message"]
    assert "LLMEMO_ADMIN_TOKEN" in message and "no admin token is configured" in message


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer wrong"}, {"authorization": "Basic s3cret-token"}],
)
async def test_a_missing_or_wrong_token_is_refused_and_not_echoed(headers: dict[str, str]) -> None:
    async with _client("s3cret-token") as client:
        answer = await client.get("/admin/x", headers=headers)
    assert answer.status_code == 401
    assert "wrong admin token" in answer.json()["error"]["message"]
    assert "s3cret" not in answer.text and 'wrong"' not in answer.text


async def test_the_token_opens_the_route_as_a_bearer_or_in_the_cookie() -> None:
    async with _client("s3cret-token") as client:
        by_header = await client.get("/admin/x", headers={"authorization": "Bearer s3cret-token"})
        client.cookies.set(COOKIE, "s3cret-token")
        by_cookie = await client.get("/admin/x")
    assert (by_header.status_code, by_header.text) == (200, "inside")
    assert (by_cookie.status_code, by_cookie.text) == (200, "inside")
