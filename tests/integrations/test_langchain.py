"""LLMemoCache: LangChain's own standard cache suites on SQLite and Redis, and what they miss."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis
from langchain_core.globals import set_llm_cache
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation
from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import AsyncCacheTestSuite, SyncCacheTestSuite

from llmemo import AsyncCache, Cache, ConfigError, TtlPolicy
from llmemo.core.request import from_prompt
from llmemo.integrations.langchain import LLMemoCache
from llmemo.stores.memory import AsyncMemoryStore, MemoryStore
from llmemo.testing.server import UpstreamServer
from tests.integrations.conftest import Clock

LLM = '{"lc": 1, "type": "constructor", "id": ["x", "ChatOpenAI"], "kwargs": {"model_name": "gpt-4o-mini", "temperature": 0.0}}---[("stop", None)]'
OTHER_LLM = LLM.replace("gpt-4o-mini", "gpt-4o")


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/langchain.db"
    url: str = request.getfixturevalue("redis_url")
    return url


# -- LangChain's standard suites, unmodified ------------------------------------------------------


class TestSyncCacheSuite(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, store_url: str) -> Iterator[LLMemoCache]:
        lc = LLMemoCache(Cache.from_url(store_url, namespace="lc-suite"))
        yield lc
        lc.close()


# The class mark reaches the suite's one sync test too (its override check), and pytest-asyncio
# warns about that; the suite's tests cannot be marked one by one without overriding them.
@pytest.mark.asyncio
@pytest.mark.filterwarnings(
    "ignore:The test <Function test_no_overrides_DO_NOT_OVERRIDE> is marked with"
    " '@pytest.mark.asyncio' but it is not an async function:pytest.PytestWarning"
)
class TestAsyncCacheSuite(AsyncCacheTestSuite):
    @pytest_asyncio.fixture
    async def cache(self, store_url: str) -> AsyncIterator[LLMemoCache]:
        lc = LLMemoCache.from_url(store_url, namespace="lc-suite")
        yield lc
        await lc.aclose()


# -- what the suites do not check ----------------------------------------------------------------


@pytest.fixture
def lc(store_url: str) -> Iterator[LLMemoCache]:
    cache = LLMemoCache.from_url(store_url)
    yield cache
    cache.close()


def chat_generations() -> list[Generation]:
    message = AIMessage(
        content="Paris.",
        id="run-1",
        tool_calls=[{"name": "lookup", "args": {"city": "Paris"}, "id": "call-1"}],
        usage_metadata={"input_tokens": 12, "output_tokens": 3, "total_tokens": 15},
        response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "stop"},
        additional_kwargs={"refusal": None},
    )
    return [
        ChatGeneration(message=message, generation_info={"finish_reason": "stop"}),
        ChatGeneration(message=AIMessage(content=[{"type": "text", "text": "Lyon?"}])),
        ChatGenerationChunk(message=AIMessageChunk(content="chunk")),
    ]


def test_different_llm_string_never_hits(lc: LLMemoCache) -> None:
    lc.update("What is the capital of France?", LLM, [Generation(text="Paris.")])
    assert lc.lookup("What is the capital of France?", LLM) == [Generation(text="Paris.")]
    assert lc.lookup("What is the capital of France?", OTHER_LLM) is None
    assert lc.lookup("What is the capital of France?", LLM + " ") is None
    assert lc.lookup("What is the capital of Spain?", LLM) is None


def test_chat_generations_round_trip_with_their_message(lc: LLMemoCache) -> None:
    generations = chat_generations()
    lc.update("prompt", LLM, generations)
    cached = lc.lookup("prompt", LLM)
    assert cached == generations
    assert cached is not None
    assert [type(g) for g in cached] == [ChatGeneration, ChatGeneration, ChatGenerationChunk]
    first = cached[0]
    assert isinstance(first, ChatGeneration) and isinstance(first.message, AIMessage)
    assert first.message.tool_calls[0]["args"] == {"city": "Paris"}
    assert first.message.usage_metadata == generations[0].message.usage_metadata  # type: ignore[attr-defined]
    assert lc.cache is not None and lc.cache.stats().hits == 1


@pytest.mark.asyncio
async def test_async_round_trip(store_url: str) -> None:
    lc = LLMemoCache.from_url(store_url)
    generations = chat_generations()
    await lc.aupdate("prompt", LLM, generations)
    assert await lc.alookup("prompt", LLM) == generations
    assert lc.lookup("prompt", LLM) == generations  # the twins share the store
    await lc.aclear()
    assert await lc.alookup("prompt", LLM) is None
    await lc.aclose()


def test_clear_deletes_only_this_cache_namespace(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set("unrelated:key", b"keep me")
    client.set("llmemo-not-ours", b"keep me too")
    mine = LLMemoCache.from_url(redis_url, namespace="mine")
    theirs = LLMemoCache.from_url(redis_url, namespace="theirs")
    plain = Cache.from_url(redis_url)  # the default namespace of a plain Cache
    mine.update("p", LLM, [Generation(text="a")])
    theirs.update("p", LLM, [Generation(text="b")])
    plain.store({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, answer())
    before = client.dbsize()
    mine.clear()
    assert mine.lookup("p", LLM) is None
    assert theirs.lookup("p", LLM) == [Generation(text="b")]
    assert plain.lookup({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert client.get("unrelated:key") == b"keep me"
    assert client.get("llmemo-not-ours") == b"keep me too"
    assert client.dbsize() == before - 1
    with pytest.raises(ConfigError, match="unknown clear"):
        mine.clear(everything=True)
    for cache in (mine, theirs):
        cache.close()
    plain.close()
    client.close()


def answer() -> dict[str, object]:
    return {
        "id": "x",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
    }


def test_ttl_applies(clock: Clock) -> None:
    store = MemoryStore(clock=clock)
    policy = TtlPolicy.build("1d", jitter=0)
    lc = LLMemoCache(
        Cache(store, clock=clock, ttl=policy),
        async_cache=AsyncCache(AsyncMemoryStore(store), clock=clock, ttl=policy),
        ttl="1m",
    )
    lc.update("p", LLM, [Generation(text="a")])
    clock.now += 59
    assert lc.lookup("p", LLM) == [Generation(text="a")]
    clock.now += 2
    assert lc.lookup("p", LLM) is None


def test_ttl_reaches_redis(redis_url: str) -> None:
    lc = LLMemoCache.from_url(redis_url, ttl=600)
    lc.update("p", LLM, [Generation(text="a")])
    client = redis.Redis.from_url(redis_url)
    (key,) = client.keys("llmemo:langchain:*:x:*")
    assert 500 < client.ttl(key) <= 660  # 600 s +- the default 10% jitter
    client.close()
    lc.close()


def test_unreadable_entry_is_a_miss(store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    lc = LLMemoCache.from_url(store_url)
    assert lc.cache is not None
    request = from_prompt("p", LLM)
    lc.cache.store(request, {"generations": [{"kind": "Nonsense"}]}, namespace="langchain")
    with caplog.at_level(logging.WARNING, "llmemo.langchain"):
        assert lc.lookup("p", LLM) is None
    assert "unreadable LangChain entry" in caplog.text
    lc.close()


def test_unstorable_generation_is_skipped_not_raised(
    lc: LLMemoCache, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "llmemo.langchain"):
        lc.update("p", LLM, [Generation(text="a", generation_info={"raw": object()})])
    assert "not caching" in caplog.text
    assert lc.lookup("p", LLM) is None


@pytest.mark.asyncio
async def test_one_twin_only() -> None:
    sync_only = LLMemoCache(Cache(MemoryStore()))
    await sync_only.aupdate("p", LLM, [Generation(text="a")])  # through an executor
    assert await sync_only.alookup("p", LLM) == [Generation(text="a")]
    async_only = LLMemoCache(async_cache=AsyncCache(AsyncMemoryStore()))
    with pytest.raises(ConfigError, match="only an AsyncCache"):
        async_only.lookup("p", LLM)
    with pytest.raises(ConfigError, match="needs a Cache"):
        LLMemoCache()


# -- with a LangChain chat model ----------------------------------------------------------------


@pytest.fixture
def llm_cache(redis_url: str) -> Iterator[LLMemoCache]:
    lc = LLMemoCache.from_url(redis_url)
    set_llm_cache(lc)
    yield lc
    set_llm_cache(None)
    lc.close()


@pytest_asyncio.fixture
async def allm_cache(redis_url: str) -> AsyncIterator[LLMemoCache]:
    lc = LLMemoCache.from_url(redis_url)
    set_llm_cache(lc)
    yield lc
    set_llm_cache(None)
    await lc.aclose()


def test_set_llm_cache_with_chat_openai(llm_cache: LLMemoCache, upstream: UpstreamServer) -> None:
    model = ChatOpenAI(
        base_url=upstream.openai_base_url, api_key="test", model="gpt-4o-mini", max_retries=0
    )
    first = model.invoke("What is the capital of France?")
    second = model.invoke("What is the capital of France?")
    assert upstream.stats().total == 1
    assert second.content == first.content
    assert second.response_metadata["id"] == first.response_metadata["id"]
    other = ChatOpenAI(
        base_url=upstream.openai_base_url, api_key="test", model="gpt-4o", max_retries=0
    )
    other.invoke("What is the capital of France?")  # another model: another llm_string
    assert upstream.stats().total == 2


@pytest.mark.asyncio
async def test_set_llm_cache_with_chat_openai_async(
    allm_cache: LLMemoCache, upstream: UpstreamServer
) -> None:
    model = ChatOpenAI(
        base_url=upstream.openai_base_url, api_key="test", model="gpt-4o-mini", max_retries=0
    )
    first = await model.ainvoke("Hello")
    second = await model.ainvoke("Hello")
    assert second.content == first.content
    assert second.response_metadata["id"] == first.response_metadata["id"]
    assert upstream.stats().total == 1


def test_clear_with_a_model_filter(lc: LLMemoCache) -> None:
    lc.update("p", LLM, [Generation(text="mini")])
    lc.update("p", OTHER_LLM, [Generation(text="big")])
    lc.clear(model="gpt-4o")
    assert lc.lookup("p", OTHER_LLM) is None
    assert lc.lookup("p", LLM) == [Generation(text="mini")]
