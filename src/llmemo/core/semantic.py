"""The semantic layer: exact miss -> embed -> KNN in scope -> threshold -> guard -> hit + backfill.

`SemanticLayer` (sync) and `AsyncSemanticLayer` hold an embedder and a vector index; the Cache
twins call them at three points: after an exact miss (`lookup`), after a fresh answer is stored
(`remember`) and after entries are deleted (`forget`). Every decision is a pure function of
`SemanticBase` (is this call semantic, its index scope, does a candidate pass, the backfill TTL);
the twins only do the I/O around them.

Scope: a candidate must share the request's namespace, version, tenant, context fingerprint
(model, system prompt, earlier turns, parameters, user) and embedding model, as a PRE-filter of
the KNN query (`IndexScope`), so another context can never answer, whatever the similarity.

Fail-open: an embedder or index failure is a miss (counted as `semantic_errors`, logged), never
an error to the caller. Explicit deletions (`forget`) raise instead, as the exact ones do.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llmemo.core.guard import Guard
from llmemo.core.semantic_base import (
    DEFAULT_K,
    DEFAULT_THRESHOLDS,
    EXACT_ONLY,
    LAYER_OPTIONS,
    MAX_CHARS,
    TOUCH_MEMO,
    SemanticBase,
    async_embedder,
    check_index,
    check_threshold,
    default_threshold,
    embedding_space,
    index_kind,
    log,
    opening_index,
    sync_embedder,
)
from llmemo.errors import ConfigError, StoreError

__all__ = [
    "DEFAULT_K",
    "DEFAULT_THRESHOLDS",
    "EXACT_ONLY",
    "LAYER_OPTIONS",
    "MAX_CHARS",
    "TOUCH_MEMO",
    "AsyncSemanticLayer",
    "SemanticBase",
    "SemanticLayer",
    "check_threshold",
    "default_threshold",
    "embedding_space",
    "log",
]

if TYPE_CHECKING:
    import numpy.typing as npt

    from llmemo.core.facade import BaseCache, Call, Hit
    from llmemo.core.verify import AsyncLLMVerifier, LLMVerifier
    from llmemo.embed import AsyncCachedEmbedder, CachedEmbedder, Unsaved
    from llmemo.embed.base import AsyncEmbedder, Embedder, Spec
    from llmemo.index.base import AsyncVectorIndex, Match, VectorIndex
    from llmemo.stores.base import AsyncStore, Store


class SemanticLayer(SemanticBase):
    """The semantic layer of a sync `Cache`: `Cache(store, semantic=SemanticLayer())`.

    embedder: an Embedder or a spec ("minilm", "openai:MODEL[@URL]", "ollama:MODEL[@URL]"), its
    vectors cached in the cache's store (so a text is embedded once). index: a VectorIndex, or
    "auto" (RediSearch when the store's server has it, else a LocalIndex), "redisearch", "local".
    threshold: cosine similarity in [0, 1]; None takes the embedder's shipped default; 1.0 means
    exact only. guard: see `llmemo.core.guard` (None: the threshold alone decides). namespaces:
    where the layer is on (None: every namespace). k: neighbours tried per lookup. verifier: an
    `LLMVerifier` that must say yes to borderline matches (`llmemo.core.verify`; off by default).
    max_chars: a last user message longer than this is matched exactly only (`MAX_CHARS`).
    """

    def __init__(
        self,
        embedder: Embedder | Spec = "minilm",
        index: VectorIndex | str = "auto",
        *,
        threshold: float | None = None,
        guard: Guard | None = Guard(),  # noqa: B008  (frozen, so sharing it is safe)
        namespaces: Sequence[str] | None = None,
        k: int = DEFAULT_K,
        backfill: bool = True,
        cache_embeddings: bool = True,
        verifier: LLMVerifier | None = None,
        max_chars: int = MAX_CHARS,
    ) -> None:
        super().__init__(
            threshold=threshold,
            guard=guard,
            namespaces=namespaces,
            k=k,
            backfill=backfill,
            max_chars=max_chars,
        )
        self.verifier = verifier
        check_index(index)
        self.raw_embedder = sync_embedder(embedder)
        self.embedder: Embedder = self.raw_embedder
        self._settle(self.raw_embedder)
        self._index_arg = index
        self._index: VectorIndex | None = None if isinstance(index, str) else index
        self._cache_embeddings = cache_embeddings
        self._cached: CachedEmbedder | None = None  # the embedding cache, once bound
        self._store: Store | None = None
        self._prefix = "llmemo"

    def bind(self, store: Store, prefix: str) -> None:
        """Attach to the cache's store (called by `Cache.__init__`; one cache per layer)."""
        from llmemo.embed import CachedEmbedder

        if inspect.iscoroutinefunction(getattr(store, "get", None)):
            raise ConfigError(
                "a SemanticLayer is for a Cache; an AsyncCache takes AsyncSemanticLayer"
            )
        if self._store is not None and self._store is not store:
            raise ConfigError("a SemanticLayer belongs to one Cache: make one per cache")
        self._store, self._prefix = store, prefix
        if self._cache_embeddings and not isinstance(self.raw_embedder, CachedEmbedder):
            self.embedder = CachedEmbedder(self.raw_embedder, store, prefix=prefix)
        self._cached = self.embedder if isinstance(self.embedder, CachedEmbedder) else None

    @property
    def index(self) -> VectorIndex:
        """The vector index (opened on first use when given as a kind)."""
        if self._index is None:
            from llmemo.index import open_index

            if self._store is None:
                raise ConfigError("this SemanticLayer is not attached to a Cache yet")
            with opening_index():
                self._index = open_index(
                    self._store,
                    self.embedder.dim,
                    kind=index_kind(self._index_arg),
                    prefix=self._prefix,
                )
        return self._index

    def _vector(self, text: str) -> npt.NDArray[Any]:
        vector: npt.NDArray[Any] = self.embedder.embed([text])[0]
        return vector

    def _query_vector(self, text: str) -> tuple[npt.NDArray[Any], Unsaved]:
        """The text's vector, and what the embedding cache has not written of it yet."""
        if self._cached is None:
            return self._vector(text), ()
        vectors, unsaved = self._cached.embed_unsaved([text])
        return vectors[0], unsaved

    def lookup(
        self, cache: BaseCache, store: Store, call: Call, version: int, backfill: bool = True
    ) -> Hit | None:
        """A semantic hit for an exact miss (counted), or None; backfills the exact key.

        The query's vector goes to the embedding cache unless the hit was backfilled: the exact
        key answers that text from then on, so the write would cost a round trip for nothing."""
        from llmemo.embed.base import EmbedderError

        text = call.request.semantic_text
        if text is None or self.skips(cache, call):
            return None
        unsaved: Unsaved = ()
        try:
            vector, unsaved = self._query_vector(text)
            matches = self.index.search(vector, self.scope(call, version), self.k, self.threshold)
        except (EmbedderError, StoreError) as exc:
            self.failed(cache, "lookup", exc)
            hit, backfilled = None, False
        else:
            hit, backfilled = self._answer(cache, store, call, version, backfill, text, matches)
        if unsaved and not backfilled and self._cached is not None:
            self._cached.save(unsaved)
        return hit

    def _answer(
        self,
        cache: BaseCache,
        store: Store,
        call: Call,
        version: int,
        backfill: bool,
        text: str,
        matches: list[Match],
    ) -> tuple[Hit | None, bool]:
        """The first match that answers (counted), and whether it was backfilled."""
        for match in matches:
            data = match.payload
            if data is None:
                try:
                    data = store.get(match.key)
                except StoreError as exc:
                    cache.count_store_error(exc)
                    return None, False
                if data is None:  # the answer expired or was deleted: drop its vector
                    self._drop(cache, match.key)
                    continue
            accepted = self.accept(cache, call, match, data)
            if accepted is None:
                continue
            hit, prompt = accepted
            verifier = self.verifier  # borderline matches need its yes
            if (
                verifier is not None
                and prompt is not None
                and verifier.needed(match.similarity)
                and not self.verified(cache, verifier.verify(text, prompt))
            ):
                continue
            rolling = cache.refresh_ttl()
            wanted, ttl = self.backfill_ttl(hit, rolling)
            backfilled = False
            try:
                if backfill and self.backfill and wanted:
                    store.set(cache.key_of(call, version), data, ttl)
                    backfilled = True
                if rolling is not None:  # a hit renews its entry's lease, and its vector's
                    store.get(match.key, rolling)
                    self.touch(cache, call, match.key, rolling)
            except StoreError as exc:
                cache.count_store_error(exc)
            cache.count_hit(hit, "semantic_hits")
            return hit, backfilled
        return None, False

    def touch(self, cache: BaseCache, call: Call, key: str, ttl: float) -> None:
        """Rolling TTL: the entry at `key` got `ttl` more seconds, so does its vector."""
        if self.applies(call) and self.touch_due(key, ttl):
            try:
                self.index.touch(key, ttl)
            except StoreError as exc:
                self.failed(cache, "touch", exc)

    def remember(
        self, cache: BaseCache, call: Call, version: int, key: str, value: bytes, ttl: float | None
    ) -> None:
        """Index a freshly stored answer (its vector expires with it)."""
        from llmemo.embed.base import EmbedderError
        from llmemo.index.base import IndexItem

        text = call.request.semantic_text
        if text is None or not self.applies(call):
            return
        try:
            item = IndexItem(key, self._vector(text), self.scope(call, version), value, ttl)
            self.index.add(item)
        except (EmbedderError, StoreError) as exc:
            self.failed(cache, "index add", exc)

    def forget(self, keys: Sequence[str]) -> None:
        """Delete these entries' vectors (store errors are raised, as for any deletion)."""
        if keys:
            self.index.delete(keys)

    def _drop(self, cache: BaseCache, key: str) -> None:
        try:
            self.index.delete([key])
        except StoreError as exc:
            self.failed(cache, "cleanup", exc)

    def close(self) -> None:
        """Close the index (the store is the cache's), the verifier, and an embedder's client."""
        if self._index is not None:
            self._index.close()
        if self.verifier is not None:
            self.verifier.close()
        close = getattr(self.raw_embedder, "close", None)
        if callable(close):
            close()


class AsyncSemanticLayer(SemanticBase):
    """The semantic layer of an `AsyncCache` (same options as SemanticLayer).

    A sync embedder (the local MiniLM) runs in a worker thread, so it never blocks the loop.
    """

    def __init__(
        self,
        embedder: AsyncEmbedder | Embedder | Spec = "minilm",
        index: AsyncVectorIndex | str = "auto",
        *,
        threshold: float | None = None,
        guard: Guard | None = Guard(),  # noqa: B008
        namespaces: Sequence[str] | None = None,
        k: int = DEFAULT_K,
        backfill: bool = True,
        cache_embeddings: bool = True,
        verifier: AsyncLLMVerifier | None = None,
        max_chars: int = MAX_CHARS,
    ) -> None:
        super().__init__(
            threshold=threshold,
            guard=guard,
            namespaces=namespaces,
            k=k,
            backfill=backfill,
            max_chars=max_chars,
        )
        self.verifier = verifier
        check_index(index)
        self.raw_embedder = async_embedder(embedder)
        self.embedder: AsyncEmbedder = self.raw_embedder
        self._settle(self.raw_embedder)
        self._index_arg = index
        self._index: AsyncVectorIndex | None = None if isinstance(index, str) else index
        self._cache_embeddings = cache_embeddings
        self._cached: AsyncCachedEmbedder | None = None  # the embedding cache, once bound
        self._store: AsyncStore | None = None
        self._prefix = "llmemo"

    def bind(self, store: AsyncStore, prefix: str) -> None:
        """Attach to the cache's store (called by `AsyncCache.__init__`; one cache per layer)."""
        from llmemo.embed import AsyncCachedEmbedder

        if not inspect.iscoroutinefunction(getattr(store, "get", None)):
            raise ConfigError(
                "an AsyncSemanticLayer is for an AsyncCache; a Cache takes SemanticLayer"
            )
        if self._store is not None and self._store is not store:
            raise ConfigError("an AsyncSemanticLayer belongs to one AsyncCache: make one per cache")
        self._store, self._prefix = store, prefix
        if self._cache_embeddings and not isinstance(self.raw_embedder, AsyncCachedEmbedder):
            self.embedder = AsyncCachedEmbedder(self.raw_embedder, store, prefix=prefix)
        self._cached = self.embedder if isinstance(self.embedder, AsyncCachedEmbedder) else None

    async def open_index(self) -> AsyncVectorIndex:
        """The vector index (opened on first use when given as a kind: the server is asked)."""
        if self._index is None:
            from llmemo.index import open_async_index

            if self._store is None:
                raise ConfigError("this AsyncSemanticLayer is not attached to an AsyncCache yet")
            with opening_index():
                self._index = await open_async_index(
                    self._store,
                    self.embedder.dim,
                    kind=index_kind(self._index_arg),
                    prefix=self._prefix,
                )
        return self._index

    async def _vector(self, text: str) -> npt.NDArray[Any]:
        vector: npt.NDArray[Any] = (await self.embedder.embed([text]))[0]
        return vector

    async def _query_vector(self, text: str) -> tuple[npt.NDArray[Any], Unsaved]:
        """The text's vector, and what the embedding cache has not written of it yet."""
        if self._cached is None:
            return await self._vector(text), ()
        vectors, unsaved = await self._cached.embed_unsaved([text])
        return vectors[0], unsaved

    async def lookup(
        self, cache: BaseCache, store: AsyncStore, call: Call, version: int, backfill: bool = True
    ) -> Hit | None:
        """A semantic hit for an exact miss (counted), or None; backfills the exact key (the
        query's vector goes to the embedding cache unless it was backfilled, as in the sync layer)."""
        from llmemo.embed.base import EmbedderError

        text = call.request.semantic_text
        if text is None or self.skips(cache, call):
            return None
        unsaved: Unsaved = ()
        try:
            index = await self.open_index()
            vector, unsaved = await self._query_vector(text)
            matches = await index.search(vector, self.scope(call, version), self.k, self.threshold)
        except (EmbedderError, StoreError) as exc:
            self.failed(cache, "lookup", exc)
            hit, backfilled = None, False
        else:
            hit, backfilled = await self._answer(
                cache, store, index, call, version, backfill, text, matches
            )
        if unsaved and not backfilled and self._cached is not None:
            await self._cached.save(unsaved)
        return hit

    async def _answer(
        self,
        cache: BaseCache,
        store: AsyncStore,
        index: AsyncVectorIndex,
        call: Call,
        version: int,
        backfill: bool,
        text: str,
        matches: list[Match],
    ) -> tuple[Hit | None, bool]:
        """The first match that answers (counted), and whether it was backfilled."""
        for match in matches:
            data = match.payload
            if data is None:
                try:
                    data = await store.get(match.key)
                except StoreError as exc:
                    cache.count_store_error(exc)
                    return None, False
                if data is None:  # the answer expired or was deleted: drop its vector
                    await self._drop(cache, index, match.key)
                    continue
            accepted = self.accept(cache, call, match, data)
            if accepted is None:
                continue
            hit, prompt = accepted
            verifier = self.verifier  # borderline matches need its yes
            if (
                verifier is not None
                and prompt is not None
                and verifier.needed(match.similarity)
                and not self.verified(cache, await verifier.verify(text, prompt))
            ):
                continue
            rolling = cache.refresh_ttl()
            wanted, ttl = self.backfill_ttl(hit, rolling)
            backfilled = False
            try:
                if backfill and self.backfill and wanted:
                    await store.set(cache.key_of(call, version), data, ttl)
                    backfilled = True
                if rolling is not None:  # a hit renews its entry's lease, and its vector's
                    await store.get(match.key, rolling)
                    await self.touch(cache, call, match.key, rolling)
            except StoreError as exc:
                cache.count_store_error(exc)
            cache.count_hit(hit, "semantic_hits")
            return hit, backfilled
        return None, False

    async def touch(self, cache: BaseCache, call: Call, key: str, ttl: float) -> None:
        """Rolling TTL: the entry at `key` got `ttl` more seconds, so does its vector."""
        if self.applies(call) and self.touch_due(key, ttl):
            try:
                await (await self.open_index()).touch(key, ttl)
            except StoreError as exc:
                self.failed(cache, "touch", exc)

    async def remember(
        self, cache: BaseCache, call: Call, version: int, key: str, value: bytes, ttl: float | None
    ) -> None:
        """Index a freshly stored answer (its vector expires with it)."""
        from llmemo.embed.base import EmbedderError
        from llmemo.index.base import IndexItem

        text = call.request.semantic_text
        if text is None or not self.applies(call):
            return
        try:
            index = await self.open_index()
            item = IndexItem(key, await self._vector(text), self.scope(call, version), value, ttl)
            await index.add(item)
        except (EmbedderError, StoreError) as exc:
            self.failed(cache, "index add", exc)

    async def forget(self, keys: Sequence[str]) -> None:
        """Delete these entries' vectors (store errors are raised, as for any deletion)."""
        if keys:
            await (await self.open_index()).delete(keys)

    async def _drop(self, cache: BaseCache, index: AsyncVectorIndex, key: str) -> None:
        try:
            await index.delete([key])
        except StoreError as exc:
            self.failed(cache, "cleanup", exc)

    async def close(self) -> None:
        """Close the index (the store is the cache's), the verifier, and an embedder's client."""
        if self._index is not None:
            await self._index.close()
        if self.verifier is not None:
            await self.verifier.close()
        close = getattr(self.raw_embedder, "close", None)
        if callable(close):
            result = close()
            if inspect.isawaitable(result):
                await result
