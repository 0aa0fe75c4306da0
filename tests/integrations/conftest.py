"""Fixtures for the integrations: the local upstream, caches with an injected clock, SDK clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anthropic
import openai
import pytest
import pytest_asyncio

from llmemo import AsyncCache, Cache
from llmemo.stores.memory import AsyncMemoryStore, MemoryStore
from llmemo.testing.server import UpstreamServer

API_KEY = "sk-test-integrations"


class Clock:
    """A settable clock: TTL tests move time instead of sleeping."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> MemoryStore:
    return MemoryStore(clock=clock)


@pytest.fixture
def cache(store: MemoryStore, clock: Clock) -> Cache:
    return Cache(store, clock=clock)


@pytest.fixture
def acache(store: MemoryStore, clock: Clock) -> AsyncCache:
    return AsyncCache(AsyncMemoryStore(store), clock=clock)


@pytest.fixture
def oai(upstream: UpstreamServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=upstream.openai_base_url, api_key=API_KEY, max_retries=0) as client:
        yield client


@pytest_asyncio.fixture
async def aoai(upstream: UpstreamServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=upstream.openai_base_url, api_key=API_KEY, max_retries=0
    ) as client:
        yield client


@pytest.fixture
def claude(upstream: UpstreamServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=upstream.url, api_key=API_KEY, max_retries=0) as client:
        yield client


@pytest_asyncio.fixture
async def aclaude(upstream: UpstreamServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=upstream.url, api_key=API_KEY, max_retries=0
    ) as client:
        yield client
