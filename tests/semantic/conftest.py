"""Caches with a semantic layer on every backend (memory + LocalIndex, plain Redis + LocalIndex,
Redis Stack + RediSearch), both twins behind one async face, and a counting embedder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from llmemo import AsyncCache, Cache, Result
from llmemo.core.facade import Hit
from llmemo.core.semantic import AsyncSemanticLayer, SemanticLayer
from llmemo.embed.base import EmbedderError, Matrix
from llmemo.embed.minilm import MiniLMEmbedder
from llmemo.stores.memory import AsyncMemoryStore, MemoryStore
from tests.core.helpers import Upstream, answer


class CountingEmbedder:
    """The real MiniLM, counting the texts it is asked to embed (and failing when told to)."""

    def __init__(self, inner: MiniLMEmbedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.dim = inner.dim
        self.texts: list[str] = []
        self.fail = False

    def embed(self, texts: Sequence[str]) -> Matrix:
        if self.fail:
            raise EmbedderError("embedder down (test)")
        self.texts += list(texts)
        return self.inner.embed(texts)


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture
def embedder(minilm: MiniLMEmbedder) -> CountingEmbedder:
    return CountingEmbedder(minilm)


def cosine(embedder: CountingEmbedder, a: str, b: str) -> float:
    va, vb = embedder.inner.embed([a, b])
    return float(np.dot(va, vb))


class Twin:
    """A Cache or an AsyncCache behind one async face, so each case is written once."""

    def __init__(self, cache: Cache | AsyncCache) -> None:
        self.cache = cache
        self.kind = "async" if isinstance(cache, AsyncCache) else "sync"

    async def compute(
        self, request: Any, text: str = "Paris.", upstream: Upstream | None = None, **kw: Any
    ) -> Result:
        upstream = upstream or Upstream(answer(text))
        if isinstance(self.cache, AsyncCache):
            return await self.cache.compute(request, upstream.acall, **kw)
        return self.cache.compute(request, upstream, **kw)

    async def lookup(self, request: Any, **scope: Any) -> Hit | None:
        if isinstance(self.cache, AsyncCache):
            return await self.cache.lookup(request, **scope)
        return self.cache.lookup(request, **scope)

    async def store(self, request: Any, response: Any, **options: Any) -> bool:
        if isinstance(self.cache, AsyncCache):
            return await self.cache.store(request, response, **options)
        return self.cache.store(request, response, **options)

    async def delete(self, request: Any) -> bool:
        if isinstance(self.cache, AsyncCache):
            return await self.cache.delete(request)
        return self.cache.delete(request)

    async def invalidate(self, **filters: Any) -> int:
        if isinstance(self.cache, AsyncCache):
            return await self.cache.invalidate(**filters)
        return self.cache.invalidate(**filters)

    async def bump_version(self) -> int:
        if isinstance(self.cache, AsyncCache):
            return await self.cache.bump_version()
        return self.cache.bump_version()

    def counters(self) -> dict[str, float]:
        return self.cache._stats.peek()

    async def close(self) -> None:
        if isinstance(self.cache, AsyncCache):
            await self.cache.close()
        else:
            self.cache.close()

    @property
    def layer(self) -> SemanticLayer | AsyncSemanticLayer:
        assert self.cache.semantic is not None
        return self.cache.semantic


Make = Callable[..., Twin]
BACKENDS = ["memory", "redis", "stack"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """A store URL: memory:// (LocalIndex), plain Redis (LocalIndex), Redis Stack (RediSearch)."""
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue(
        "redis_url" if request.param == "redis" else "redis_stack_url"
    )
    return url


@pytest_asyncio.fixture(params=["sync", "async"])
async def make(
    request: pytest.FixtureRequest, backend: str, embedder: CountingEmbedder
) -> AsyncIterator[Make]:
    """make(**layer_options) -> a Twin on `backend` with a semantic layer over `embedder`."""
    made: list[Twin] = []

    def build(**options: Any) -> Twin:
        options.setdefault("embedder", embedder)
        cache_options = {k: options.pop(k) for k in ("namespace", "tenant", "ttl") if k in options}
        twin: Twin
        if request.param == "sync":
            if backend == "memory":
                store = MemoryStore()
                layer = SemanticLayer(options.pop("embedder"), "local", **options)
                twin = Twin(Cache(store, semantic=layer, **cache_options))
            else:
                twin = Twin(Cache.from_url(backend, semantic=True, **options, **cache_options))
        elif backend == "memory":
            alayer = AsyncSemanticLayer(options.pop("embedder"), "local", **options)
            twin = Twin(AsyncCache(AsyncMemoryStore(), semantic=alayer, **cache_options))
        else:
            twin = Twin(AsyncCache.from_url(backend, semantic=True, **options, **cache_options))
        made.append(twin)
        return twin

    yield build
    for twin in made:
        await twin.close()
