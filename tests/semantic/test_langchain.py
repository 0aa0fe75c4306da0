"""LLMemoSemanticCache: LangChain's standard cache suites, and semantic matching kept in scope."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from langchain_core.globals import set_llm_cache
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import Generation
from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import AsyncCacheTestSuite, SyncCacheTestSuite

from llmemo import Cache, ConfigError
from llmemo.langchain import LLMemoCache, LLMemoSemanticCache
from llmemo.stores.memory import MemoryStore
from llmemo.testing.server import UpstreamServer
from tests.integrations.test_langchain import LLM, OTHER_LLM
from tests.semantic.conftest import CountingEmbedder


@pytest.fixture(params=["sqlite", "redis", "stack"])
def store_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/langchain.db"
    url: str = request.getfixturevalue(
        "redis_url" if request.param == "redis" else "redis_stack_url"
    )
    return url


class TestSyncSemanticCacheSuite(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, store_url: str, embedder: CountingEmbedder) -> Iterator[LLMemoSemanticCache]:
        lc = LLMemoSemanticCache.from_url(store_url, namespace="lc-suite", embedder=embedder)
        yield lc
        lc.close()


@pytest.mark.asyncio
@pytest.mark.filterwarnings(
    "ignore:The test <Function test_no_overrides_DO_NOT_OVERRIDE> is marked with"
    " '@pytest.mark.asyncio' but it is not an async function:pytest.PytestWarning"
)
class TestAsyncSemanticCacheSuite(AsyncCacheTestSuite):
    @pytest_asyncio.fixture
    async def cache(
        self, store_url: str, embedder: CountingEmbedder
    ) -> AsyncIterator[LLMemoSemanticCache]:
        lc = LLMemoSemanticCache.from_url(store_url, namespace="lc-suite", embedder=embedder)
        yield lc
        await lc.aclose()


@pytest.fixture
def lc(store_url: str, embedder: CountingEmbedder) -> Iterator[LLMemoSemanticCache]:
    cache = LLMemoSemanticCache.from_url(store_url, embedder=embedder, threshold=0.85)
    yield cache
    cache.close()


def test_a_paraphrase_hits_under_the_same_llm_string(lc: LLMemoSemanticCache) -> None:
    lc.update("What is the capital of France?", LLM, [Generation(text="Paris.")])
    assert lc.lookup("Which city is the capital of France?", LLM) == [Generation(text="Paris.")]
    assert lc.lookup("Is 7 a prime number?", LLM) is None
    assert lc.cache is not None and lc.cache.stats().semantic_hits == 1


def test_another_llm_string_never_hits_even_semantically(
    store_url: str, embedder: CountingEmbedder
) -> None:
    lc = LLMemoSemanticCache.from_url(store_url, embedder=embedder, threshold=0.0, guard=None)
    lc.update("What is the capital of France?", LLM, [Generation(text="Paris.")])
    assert lc.lookup("Tell me a joke", LLM) == [Generation(text="Paris.")]  # threshold 0: anything
    for prompt in ("What is the capital of France?", "Tell me a joke"):
        assert lc.lookup(prompt, OTHER_LLM) is None
        assert lc.lookup(prompt, LLM + " ") is None
    lc.close()


def chat_prompt(system: str, *turns: str) -> str:
    """LangChain's cache prompt for a chat model: its serialised messages."""
    messages: list[object] = [SystemMessage(system)]
    for i, text in enumerate(turns):
        messages.append(HumanMessage(text) if i % 2 == 0 else AIMessage(text))
    return dumps(messages)


def test_chat_prompts_match_on_the_last_human_message_in_the_same_conversation(
    lc: LLMemoSemanticCache,
) -> None:
    lc.update(
        chat_prompt("Be terse.", "What is the capital of France?"), LLM, [Generation(text="Paris.")]
    )
    assert lc.lookup(chat_prompt("Be terse.", "Which city is the capital of France?"), LLM) == [
        Generation(text="Paris.")
    ]
    assert (
        lc.lookup(chat_prompt("Answer in French.", "Which city is the capital of France?"), LLM)
        is None
    )
    earlier = chat_prompt("Be terse.", "Hi", "Hello!", "Which city is the capital of France?")
    assert lc.lookup(earlier, LLM) is None
    ends_with_ai = chat_prompt("Be terse.", "What is the capital of France?", "Paris.")
    assert lc.lookup(ends_with_ai, LLM) is None


@pytest.mark.asyncio
async def test_async_paraphrase(store_url: str, embedder: CountingEmbedder) -> None:
    lc = LLMemoSemanticCache.from_url(store_url, embedder=embedder, threshold=0.85)
    await lc.aupdate("What is the capital of France?", LLM, [Generation(text="Paris.")])
    assert await lc.alookup("Which city is the capital of France?", LLM) == [
        Generation(text="Paris.")
    ]
    await lc.aclear()
    assert await lc.alookup("What's the capital city of France?", LLM) is None
    await lc.aclose()


def test_needs_a_semantic_layer() -> None:
    with pytest.raises(ConfigError, match="semantic layer"):
        LLMemoSemanticCache(Cache(MemoryStore()))
    assert LLMemoCache is not LLMemoSemanticCache


def test_with_a_langchain_chat_model(
    redis_url: str, embedder: CountingEmbedder, upstream: UpstreamServer
) -> None:
    lc = LLMemoSemanticCache.from_url(redis_url, embedder=embedder, threshold=0.85)
    set_llm_cache(lc)
    try:
        model = ChatOpenAI(
            base_url=upstream.openai_base_url, api_key="test", model="gpt-4o-mini", max_retries=0
        )
        first = model.invoke("What is the capital of France?")
        second = model.invoke("Which city is the capital of France?")
        assert upstream.stats().total == 1
        assert second.content == first.content
        model.invoke("How tall is Mount Everest?")
        assert upstream.stats().total == 2
    finally:
        set_llm_cache(None)
        lc.close()
