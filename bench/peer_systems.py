"""The caches bench/peers.py drives, each behind the same four calls (store, lookup, threshold, name).

Every system gets its own private Redis Stack and the same embedding model: all-MiniLM-L6-v2 run
by llmemo's numpy runtime (`SharedModel`), handed to each peer through its own embedding
interface (RedisVL `CustomVectorizer`, LangChain `Embeddings`, LiteLLM's embedding call, which
`LiteLLMSemantic` routes to the model in-process instead of an HTTP embedding API).
`lookup` returns the answer text (None on a miss), so the caller can tell a right answer from a
wrong one. The peers are imported here only: install them with `pip install -e '.[all,bench]'`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import redis

from llmemo import Cache
from llmemo.core.semantic import SemanticLayer
from llmemo.embed.base import Matrix
from llmemo.embed.minilm import MiniLMEmbedder
from llmemo.stores import from_url

MODEL = "gpt-4o-mini"
LLM_STRING = f"model_name={MODEL}, temperature=0.0"  # what LangChain keys its caches with
WEEK = 7 * 24 * 3600


class SharedModel:
    """MiniLM for every system: `live` computes each vector; otherwise vectors come from `memo`
    (precomputed in one batch, so filling thousands of entries costs no embedding each)."""

    name = "minilm"

    def __init__(self) -> None:
        self.inner = MiniLMEmbedder()
        self.model, self.dim = self.inner.model, self.inner.dim
        self.memo: dict[str, np.ndarray] = {}
        self.live = False
        self.calls = 0

    def precompute(self, texts: Sequence[str]) -> None:
        todo = sorted(set(texts) - self.memo.keys())
        for start in range(0, len(todo), 256):
            chunk = todo[start : start + 256]
            self.memo.update(zip(chunk, self.inner.embed(chunk), strict=True))

    def embed(self, texts: Sequence[str]) -> Matrix:
        self.calls += len(texts)
        if self.live:
            return self.inner.embed(texts)
        return np.stack(
            [self.memo[t] if t in self.memo else self.inner.embed([t])[0] for t in texts]
        )

    def one(self, text: str) -> list[float]:
        vector: list[float] = self.embed([text])[0].tolist()
        return vector


def chat(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def completion(answer: str, i: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{i}", "object": "chat.completion", "created": 1_700_000_000, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 250, "total_tokens": 270},
    }  # fmt: skip


class System(ABC):
    """One cache under test, on its own Redis (`url`)."""

    label = "?"
    semantic = False
    embeds_every_lookup = False  # an exact repeat is embedded too (so timed on fewer queries)
    exact_timed = True  # False: its exact hit is another row's code path (see LLMemoSemantic)
    default_similarity: float | None = None
    default_note = ""

    def __init__(self, url: str, model: SharedModel) -> None:
        self.url, self.model = url, model
        self.client = redis.Redis.from_url(url)

    @abstractmethod
    def store(self, question: str, answer: str, i: int) -> None: ...

    @abstractmethod
    def lookup(self, question: str) -> str | None: ...

    def set_similarity(self, similarity: float) -> None:  # noqa: B027  (exact systems: nothing)
        """Accept matches at least this cosine-similar (semantic systems only)."""

    def quality_mode(self, on: bool) -> None:  # noqa: B027
        """Measuring answer quality: lookups must leave nothing behind that answers later ones."""


class RawGet(System):
    label = "raw redis-py GET (baseline)"

    def store(self, question: str, answer: str, i: int) -> None:
        self.client.set(f"raw:{question}", answer.encode())

    def lookup(self, question: str) -> str | None:
        raw = self.client.get(f"raw:{question}")
        return None if raw is None else raw.decode()


class LLMemo(System):
    label = "llmemo exact (Cache)"

    def __init__(self, url: str, model: SharedModel, layer: SemanticLayer | None = None) -> None:
        super().__init__(url, model)
        self.layer = layer
        self.cache = Cache(from_url(url), semantic=layer)

    def store(self, question: str, answer: str, i: int) -> None:
        self.cache.store(
            {"model": MODEL, "temperature": 0, "messages": chat(question)}, completion(answer, i)
        )

    def lookup(self, question: str) -> str | None:
        hit = self.cache.lookup({"model": MODEL, "temperature": 0, "messages": chat(question)})
        return None if hit is None else str(hit.response["choices"][0]["message"]["content"])


class LLMemoSemantic(LLMemo):
    label = "llmemo semantic (Cache + SemanticLayer, RediSearch)"
    semantic = True
    # Its exact hit is llmemo exact's (the exact key answers first: one GET, no embedding), and
    # llmemo memoises a body's normalisation process-wide, so a second llmemo cache asked the
    # same question would be timed with the first one's work done: only `llmemo` is timed.
    exact_timed = False
    default_note = "0.93 (MiniLM default)"

    def __init__(self, url: str, model: SharedModel) -> None:
        super().__init__(url, model, SemanticLayer(model, index="redisearch"))  # type: ignore[arg-type]
        assert self.layer is not None
        self.default_similarity = self.layer.threshold

    def set_similarity(self, similarity: float) -> None:
        assert self.layer is not None
        self.layer.threshold = similarity

    def quality_mode(self, on: bool) -> None:
        assert self.layer is not None
        self.layer.backfill = not on  # a backfilled paraphrase would be an exact hit next time


class LLMemoSemanticHalf(LLMemoSemantic):
    label = "llmemo semantic, embedding cache float16"

    def __init__(self, url: str, model: SharedModel) -> None:
        from llmemo.embed import CachedEmbedder

        store = from_url(url)
        embedder = CachedEmbedder(model, store, dtype="float16")  # type: ignore[arg-type]
        System.__init__(self, url, model)
        self.layer = SemanticLayer(embedder, index="redisearch")
        self.cache = Cache(store, semantic=self.layer)
        self.default_similarity = self.layer.threshold


class LLMemoSemanticUncached(LLMemoSemantic):
    label = "llmemo semantic, no embedding cache"

    def __init__(self, url: str, model: SharedModel) -> None:
        System.__init__(self, url, model)
        self.layer = SemanticLayer(model, index="redisearch", cache_embeddings=False)  # type: ignore[arg-type]
        self.cache = Cache(from_url(url), semantic=self.layer)
        self.default_similarity = self.layer.threshold


class LLMemoSemanticOnce(LLMemoSemantic):
    label = "llmemo semantic, embedding row dropped once indexed (proposed)"

    def store(self, question: str, answer: str, i: int) -> None:
        """As shipped, then DEL of the prompt's embedding-cache row: its vector is in the index."""
        from llmemo.embed.cached_base import embedding_key

        super().store(question, answer, i)
        m = self.model
        self.client.delete(embedding_key("llmemo", m.name, m.model, m.dim, question))


class LangChainCommunity(System):
    label = "LangChain community RedisCache"

    def __init__(self, url: str, model: SharedModel) -> None:
        super().__init__(url, model)
        from langchain_community.cache import RedisCache

        self.cache = RedisCache(redis_=self.client)

    def store(self, question: str, answer: str, i: int) -> None:
        from langchain_core.outputs import Generation

        self.cache.update(question, LLM_STRING, [Generation(text=answer)])

    def lookup(self, question: str) -> str | None:
        found = self.cache.lookup(question, LLM_STRING)
        return None if not found else str(found[0].text)


class LangChainRedis(LangChainCommunity):
    label = "langchain-redis RedisCache"

    def __init__(self, url: str, model: SharedModel) -> None:
        System.__init__(self, url, model)
        from langchain_redis import RedisCache

        self.cache = RedisCache(redis_url=url)


class LangChainEmbeddings:
    """The shared model as a LangChain `Embeddings`."""

    def __init__(self, model: SharedModel) -> None:
        self.model = model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        rows: list[list[float]] = self.model.embed(texts).tolist()
        return rows

    def embed_query(self, text: str) -> list[float]:
        return self.model.one(text)


class LangChainRedisSemantic(LangChainCommunity):
    label = "langchain-redis RedisSemanticCache"
    semantic = True
    embeds_every_lookup = True
    default_similarity = 0.8
    default_note = "distance 0.2 (default)"

    def __init__(self, url: str, model: SharedModel) -> None:
        System.__init__(self, url, model)
        from langchain_core.embeddings import Embeddings
        from langchain_redis import RedisSemanticCache

        embeddings = type("Shared", (LangChainEmbeddings, Embeddings), {})(model)
        self.cache = RedisSemanticCache(embeddings=embeddings, redis_url=url)

    def set_similarity(self, similarity: float) -> None:
        self.cache.cache.set_threshold(1 - similarity)


class LiteLLMRedis(System):
    label = "LiteLLM Redis cache"

    def __init__(self, url: str, model: SharedModel) -> None:
        super().__init__(url, model)
        from litellm.caching.caching import Cache as LiteCache

        port = str(self.client.connection_pool.connection_kwargs["port"])
        # LiteLLM's Redis entries expire after 60 s by default: a week, as the others keep them.
        self.cache = LiteCache(type="redis", host="127.0.0.1", port=port, password="", ttl=WEEK)

    def store(self, question: str, answer: str, i: int) -> None:
        self.cache.add_cache(
            completion(answer, i), model=MODEL, messages=chat(question), temperature=0
        )

    def lookup(self, question: str) -> str | None:
        found = self.cache.get_cache(model=MODEL, messages=chat(question), temperature=0)
        if not found:
            return None
        if not isinstance(found, dict):
            found = found.model_dump() if hasattr(found, "model_dump") else dict(found)
        return str(found["choices"][0]["message"]["content"])


class LiteLLMSemantic(LiteLLMRedis):
    label = "LiteLLM Redis semantic cache"
    semantic = True
    embeds_every_lookup = True
    default_similarity = 0.8
    default_note = "0.8 (no default; the docs' value)"

    def __init__(self, url: str, model: SharedModel) -> None:
        System.__init__(self, url, model)
        from litellm.caching.caching import Cache as LiteCache

        self.cache = LiteCache(
            type="redis-semantic", redis_url=url, similarity_threshold=0.8, ttl=WEEK
        )
        # The embedding hook: the shared model in-process instead of litellm.embedding() over HTTP.
        self.cache.cache._get_embedding = lambda prompt, metadata=None: model.one(prompt)

    def set_similarity(self, similarity: float) -> None:
        inner = self.cache.cache
        inner.similarity_threshold, inner.distance_threshold = similarity, 1 - similarity
        inner.llmcache.set_threshold(1 - similarity)


class RedisVL(System):
    label = "RedisVL SemanticCache"
    semantic = True
    embeds_every_lookup = True
    default_similarity = 0.9
    default_note = "distance 0.1 (default)"
    embeddings_cache = False

    def __init__(self, url: str, model: SharedModel) -> None:
        super().__init__(url, model)
        from redisvl.extensions.cache.llm import SemanticCache
        from redisvl.utils.vectorize import CustomVectorizer

        cache = None
        if self.embeddings_cache:
            from redisvl.extensions.cache.embeddings import EmbeddingsCache

            cache = EmbeddingsCache(name="embedcache", redis_client=self.client)
        vectorizer = CustomVectorizer(
            embed=model.one, embed_many=lambda texts: model.embed(texts).tolist(), cache=cache
        )
        self.cache = SemanticCache(name="llmcache", vectorizer=vectorizer, redis_client=self.client)

    def store(self, question: str, answer: str, i: int) -> None:
        self.cache.store(question, answer)

    def lookup(self, question: str) -> str | None:
        found = self.cache.check(prompt=question, num_results=1)
        return str(found[0]["response"]) if found else None

    def set_similarity(self, similarity: float) -> None:
        self.cache.set_threshold(1 - similarity)


class RedisVLEmbeddingsCache(RedisVL):
    label = "RedisVL SemanticCache + EmbeddingsCache"
    embeddings_cache = True


SYSTEMS: dict[str, type[System]] = {
    "raw": RawGet,
    "llmemo": LLMemo,
    "llmemo-semantic": LLMemoSemantic,
    "llmemo-semantic-f16": LLMemoSemanticHalf,
    "llmemo-semantic-uncached": LLMemoSemanticUncached,
    "llmemo-semantic-once": LLMemoSemanticOnce,
    "lc-community": LangChainCommunity,
    "lc-redis": LangChainRedis,
    "lc-redis-semantic": LangChainRedisSemantic,
    "litellm": LiteLLMRedis,
    "litellm-semantic": LiteLLMSemantic,
    "redisvl": RedisVL,
    "redisvl-embcache": RedisVLEmbeddingsCache,
}
