"""`POST /admin/wipe` (service/erase.py): a user (`X-LLMemo-User`) or a tenant (an API key's) is
erased, the answer is the report; another instance drops its hot answers and near copies; bad
bodies and missing credentials are OpenAI-shaped errors, before anything is deleted."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from llmemo.service import create_app, load_settings
from llmemo.testing.server import UpstreamServer
from tests.service.test_hot import Clocks, Service

CHAT = "/v1/chat/completions"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Who am I?"}]}
ALICE = {"authorization": "Bearer sk-alice-wipe"}
BOB = {"authorization": "Bearer sk-bob-wipe"}
ADMIN = {"authorization": "Bearer admin-s3cret"}

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def start(redis_url: str, upstream: UpstreamServer) -> AsyncIterator[Any]:
    async with contextlib.AsyncExitStack() as stack:

        async def make(**overrides: Any) -> Service:
            settings = load_settings(
                store=redis_url,
                openai_base_url=upstream.openai_base_url,
                anthropic_base_url=upstream.url,
                admin_token="admin-s3cret",
                **overrides,
            )
            app = create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            service = Service(app)
            stack.push_async_callback(service.client.aclose)
            return service

        yield make


async def status(service: Service, headers: dict[str, str]) -> str:
    return (await service.ask(headers, BODY)).headers["x-llmemo-cache"]


async def wipe(service: Service, body: Any, headers: dict[str, str] = ADMIN) -> httpx.Response:
    return await service.client.post("/admin/wipe", json=body, headers=headers)


async def test_a_user_named_by_its_header_is_wiped_and_the_others_still_hit(start: Any) -> None:
    service = await start()
    one, two = {**ALICE, "x-llmemo-user": "u1"}, {**ALICE, "x-llmemo-user": "u2"}
    assert [await status(service, h) for h in (one, two, one, two)] == ["miss"] * 2 + ["hit"] * 2
    answer = await wipe(service, {"user": "u1"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "entries": 1,
        "vectors": 0,
        "embeddings": 0,
        "warm": 0,
        "namespaces": 1,
        "feedback": 0,
        "deleted": 1,
    }
    assert [await status(service, h) for h in (one, two)] == ["miss", "hit"]


async def test_a_tenant_by_its_api_key(start: Any) -> None:
    service = await start()
    for headers in (ALICE, BOB):
        assert await status(service, headers) == "miss"
    answer = await wipe(service, {"api_key": "sk-alice-wipe"})
    assert answer.json()["entries"] == 1
    assert [await status(service, h) for h in (ALICE, BOB)] == ["miss", "hit"]


async def test_another_instance_drops_its_hot_answer_and_near_copy(start: Any) -> None:
    wiper, other = await start(), await start(near_ttl="10m")
    clocks = Clocks(other)
    assert [await status(other, ALICE) for _ in range(3)] == ["miss", "hit", "hit"]
    assert len(other.proxy.hot) == 1  # a hot answer, and the entry in its near cache
    assert (await wipe(wiper, {"api_key": "sk-alice-wipe"})).json()["entries"] == 1
    clocks.advance(1.5)  # past version_ttl: the instance reads the namespace's meta again
    assert await status(other, BOB) == "miss"  # any request reads it
    assert len(other.proxy.hot) == 0
    assert await status(other, ALICE) == "miss"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "needs a user or a tenant"),
        ([], "send a JSON object"),
        ({"user": 3}, "user must be a string"),
        ({"who": "u1"}, "unknown field"),
        ({"tenant": "t", "api_key": "k"}, "not both"),
        ({"user": "u1", "namespace": "bad name"}, "invalid namespace"),
    ],
)
async def test_a_bad_body_is_a_400_in_openai_shape(start: Any, body: Any, message: str) -> None:
    service = await start()
    answer = await wipe(service, body)
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert message in answer.json()["error"]["message"]


async def test_without_the_admin_token_nothing_is_wiped(start: Any) -> None:
    service = await start()
    assert await status(service, ALICE) == "miss"
    answer = await wipe(service, {"api_key": "sk-alice-wipe"}, headers=ALICE)
    assert answer.status_code == 401
    assert await status(service, ALICE) == "hit"


async def test_an_empty_user_header_is_a_400(start: Any) -> None:
    service = await start()
    answer = await service.client.post(CHAT, json=BODY, headers={**ALICE, "x-llmemo-user": " "})
    assert answer.status_code == 400
    assert "X-LLMemo-User" in answer.json()["error"]["message"]
