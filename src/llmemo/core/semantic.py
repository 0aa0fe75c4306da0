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

import contextlib
import inspect
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from llmemo.core import entry as entries
from llmemo.core.guard import Guard
from llmemo.errors import ConfigError, CorruptEntryError, StoreError

if TYPE_CHECKING:
    import numpy.typing as npt

    from llmemo.core.facade import BaseCache, Call, Hit
    from llmemo.embed.base import AsyncEmbedder, Embedder, Spec
    from llmemo.index.auto import Kind
    from llmemo.index.base import AsyncVectorIndex, IndexScope, Match, VectorIndex
    from llmemo.stores.base import AsyncStore, Store

log = logging.getLogger("llmemo.semantic")

DEFAULT_THRESHOLDS: dict[str, float] = {"minilm": 0.93}
"""Shipped thresholds per embedder name, chosen with `llmemo calibrate` (docs/semantic.md)."""
EXACT_ONLY = 1.0
"""`threshold=1.0`: the semantic layer is off (only exact hits), whatever the vectors say."""
DEFAULT_K = 4
"""Neighbours fetched per lookup: if the nearest fails the guard, the next may pass."""
TOUCH_MEMO = 100_000
"""Entry keys whose last vector touch a layer remembers (rolling TTL; emptied when full)."""


LAYER_OPTIONS = ("embedder", "index", "threshold", "guard", "namespaces", "k", "backfill")
"""The options `Cache.from_url(..., semantic=True, **options)` hands to the semantic layer."""
L = TypeVar("L", bound="SemanticBase")


def check_threshold(value: float) -> float:
    """`value` as a float if it is a cosine similarity in [0, 1]; ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ConfigError(
            f"semantic threshold must be a cosine similarity in [0, 1] (1.0 = exact only), "
            f"got {value!r}"
        )
    return float(value)


def default_threshold(embedder: str) -> float:
    """The shipped threshold for an embedder name or spec ("minilm", "openai:MODEL@URL");
    ConfigError when there is none to trust."""
    name = embedder.partition("@")[0].partition(":")[0].strip().lower()
    threshold = DEFAULT_THRESHOLDS.get(name)
    if threshold is None:
        raise ConfigError(
            f"no default semantic threshold for the {name!r} embedder: pass a threshold "
            "(measure one with `llmemo calibrate PAIRS.jsonl`)"
        )
    return threshold


def embedding_space(embedder: Embedder | AsyncEmbedder) -> str:
    """The IndexScope `model`: vectors of two embedding spaces are never compared."""
    return f"{embedder.name}:{embedder.model}"


class SemanticBase:
    """Settings and the pure decisions both layers share."""

    def __init__(
        self,
        *,
        threshold: float | None,
        guard: Guard | None,
        namespaces: Sequence[str] | None,
        k: int,
        backfill: bool,
    ) -> None:
        self._threshold = None if threshold is None else check_threshold(threshold)
        self.guard = guard if guard is not None else Guard.off()
        self.namespaces = None if namespaces is None else frozenset(namespaces)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"k must be an int >= 1, got {k!r}")
        self.k = k
        self.backfill = backfill
        self._touched: dict[str, float] = {}  # entry key -> when its vector was last touched
        self.space = ""
        self.threshold = EXACT_ONLY if self._threshold is None else self._threshold

    @classmethod
    def from_options(cls: type[L], semantic: bool | L | None, options: dict[str, Any]) -> L | None:
        """The layer `from_url(semantic=..., **options)` asks for; its options are popped."""
        given = {name: options.pop(name) for name in LAYER_OPTIONS if name in options}
        if isinstance(semantic, cls):
            if given:
                raise ConfigError(f"pass {', '.join(given)} to the semantic layer, not from_url")
            return semantic
        if semantic is True:
            return cls(**given)
        if semantic is False or semantic is None:
            if given:
                raise ConfigError(f"{', '.join(given)} only apply with semantic=True")
            return None
        raise ConfigError(
            f"semantic must be True, False or a {cls.__name__}, got {type(semantic).__name__}"
        )

    def _settle(self, embedder: Embedder | AsyncEmbedder) -> None:
        """Once the embedder is known: its embedding space and (unless given) its threshold."""
        self.space = embedding_space(embedder)
        self.threshold = (
            self._threshold if self._threshold is not None else default_threshold(embedder.name)
        )

    def applies(self, call: Call) -> bool:
        """Does this call take part in semantic matching (lookup, and indexing its answer)?"""
        return (
            call.request.semantic_text is not None
            and call.cacheable
            and self.threshold < EXACT_ONLY
            and (self.namespaces is None or call.scope.namespace in self.namespaces)
        )

    def scope(self, call: Call, version: int) -> IndexScope:
        """The index pre-filter of a call: same namespace, version, tenant, context and space."""
        from llmemo.core.request import context_fingerprint
        from llmemo.index.base import IndexScope

        return IndexScope(
            namespace=call.scope.namespace,
            version=version,
            tenant=call.scope.tenant,
            fingerprint=context_fingerprint(call.request, call.scope),
            model=self.space,
        )

    def judge(self, query: str, similarity: float, candidate: str | None) -> str | None:
        """None when a candidate may answer `query`; else why not (counted per reason)."""
        if similarity < self.threshold:
            return "threshold"
        if candidate is None:
            return "no_prompt"  # indexed without its prompt: the guard cannot vouch for it
        return self.guard.reject(query, candidate)

    def candidate(self, cache: BaseCache, data: bytes, key: str) -> tuple[Hit, str | None] | None:
        """The entry a match points at, as (hit, its prompt); None if unreadable or stale."""
        try:
            head, doc = entries.decode_parts(data)
            hit = cache.hit_of(head, doc, key)
        except CorruptEntryError as exc:
            cache.count_corrupt(exc)
            return None
        if hit.stale:  # its refresh needs its own request: let this one go upstream
            return None
        prompt = doc.get("q")
        return hit, prompt if isinstance(prompt, str) else None

    def accept(self, cache: BaseCache, call: Call, match: Match, data: bytes) -> Hit | None:
        """The semantic hit `match` makes for `call`, or None (the reason is counted)."""
        found = self.candidate(cache, data, match.key)
        if found is None:
            return None
        hit, prompt = found
        assert call.request.semantic_text is not None
        reason = self.judge(call.request.semantic_text, match.similarity, prompt)
        if reason is not None:
            cache.count(f"semantic_rejected:{reason}")
            return None
        return replace(hit, kind="semantic", similarity=match.similarity)

    def touch_due(self, key: str, ttl: float) -> bool:
        """Rolling TTL: is it time to give this entry's vector its entry's new lease? At most once
        per quarter of the TTL per key and process, so a hot entry does not touch it on every hit."""
        now = time.monotonic()
        last = self._touched.get(key)
        if last is not None and now - last < ttl / 4:
            return False
        if len(self._touched) >= TOUCH_MEMO:
            self._touched = {}
        self._touched[key] = now
        return True

    def backfill_ttl(self, hit: Hit, rolling: float | None = None) -> tuple[bool, float | None]:
        """Whether to write this request's exact key, and its TTL: the answer's remaining life
        (None: no expiry), so the copy never outlives the original; with a rolling TTL, the
        lease the hit gave the original."""
        if rolling is not None:
            return True, rolling
        remaining = hit.remaining
        if remaining is None:
            return True, None
        return remaining > 0.001, remaining

    def failed(self, cache: BaseCache, action: str, exc: Exception) -> None:
        cache.count("semantic_errors")
        log.warning("llmemo: semantic %s failed, treated as a miss: %s", action, exc)


def _sync_embedder(spec: Embedder | Spec) -> Embedder:
    from llmemo.embed.base import from_spec

    if isinstance(spec, str) or (callable(spec) and not hasattr(spec, "embed")):
        return from_spec(spec)
    if inspect.iscoroutinefunction(getattr(spec, "embed", None)):
        raise ConfigError("an async embedder needs AsyncCache (or pass a sync one)")
    return spec  # type: ignore[return-value]


def _async_embedder(spec: AsyncEmbedder | Embedder | Spec) -> AsyncEmbedder:
    from llmemo.embed.base import ThreadedEmbedder, async_from_spec

    if isinstance(spec, str) or (callable(spec) and not hasattr(spec, "embed")):
        return async_from_spec(spec)
    if inspect.iscoroutinefunction(getattr(spec, "embed", None)):
        return spec  # type: ignore[return-value]
    return ThreadedEmbedder(spec)  # type: ignore[arg-type]  # a CPU model: run in a thread


@contextlib.contextmanager
def _opening() -> Iterator[None]:
    """Opening an index asks the server which kind it has: a client error there is an index
    failure (the cache fails open and asks again next time), a bad setting a ConfigError."""
    from llmemo.index.base import VectorIndexError

    try:
        yield
    except (ConfigError, StoreError):
        raise
    except Exception as exc:  # redis-py's connection errors, before any backend translates them
        raise VectorIndexError(
            f"cannot open the vector index: {type(exc).__name__}: {exc}"
        ) from exc


def _kind(index: object) -> Kind:
    if index not in ("auto", "redisearch", "local"):
        raise ConfigError(f"index must be 'auto', 'redisearch', 'local' or an index, got {index!r}")
    return index


def _check_index(index: object) -> None:
    if isinstance(index, str):
        _kind(index)


class SemanticLayer(SemanticBase):
    """The semantic layer of a sync `Cache`: `Cache(store, semantic=SemanticLayer())`.

    embedder: an Embedder or a spec ("minilm", "openai:MODEL[@URL]", "ollama:MODEL[@URL]"), its
    vectors cached in the cache's store (so a text is embedded once). index: a VectorIndex, or
    "auto" (RediSearch when the store's server has it, else a LocalIndex), "redisearch", "local".
    threshold: cosine similarity in [0, 1]; None takes the embedder's shipped default; 1.0 means
    exact only. guard: see `llmemo.core.guard` (None: the threshold alone decides). namespaces:
    where the layer is on (None: every namespace). k: neighbours tried per lookup.
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
    ) -> None:
        super().__init__(
            threshold=threshold, guard=guard, namespaces=namespaces, k=k, backfill=backfill
        )
        _check_index(index)
        self.raw_embedder = _sync_embedder(embedder)
        self.embedder: Embedder = self.raw_embedder
        self._settle(self.raw_embedder)
        self._index_arg = index
        self._index: VectorIndex | None = None if isinstance(index, str) else index
        self._cache_embeddings = cache_embeddings
        self._store: Store | None = None
        self._prefix = "llmemo"

    def bind(self, store: Store, prefix: str) -> None:
        """Attach to the cache's store (called by `Cache.__init__`; one cache per layer)."""
        from llmemo.embed.cached import CachedEmbedder

        if inspect.iscoroutinefunction(getattr(store, "get", None)):
            raise ConfigError(
                "a SemanticLayer is for a Cache; an AsyncCache takes AsyncSemanticLayer"
            )
        if self._store is not None and self._store is not store:
            raise ConfigError("a SemanticLayer belongs to one Cache: make one per cache")
        self._store, self._prefix = store, prefix
        if self._cache_embeddings and not isinstance(self.raw_embedder, CachedEmbedder):
            self.embedder = CachedEmbedder(self.raw_embedder, store, prefix=prefix)

    @property
    def index(self) -> VectorIndex:
        """The vector index (opened on first use when given as a kind)."""
        if self._index is None:
            from llmemo.index.auto import open_index

            if self._store is None:
                raise ConfigError("this SemanticLayer is not attached to a Cache yet")
            with _opening():
                self._index = open_index(
                    self._store,
                    self.embedder.dim,
                    kind=_kind(self._index_arg),
                    prefix=self._prefix,
                )
        return self._index

    def _vector(self, text: str) -> npt.NDArray[Any]:
        vector: npt.NDArray[Any] = self.embedder.embed([text])[0]
        return vector

    def lookup(
        self, cache: BaseCache, store: Store, call: Call, version: int, backfill: bool = True
    ) -> Hit | None:
        """A semantic hit for an exact miss (counted), or None; backfills the exact key."""
        from llmemo.embed.base import EmbedderError

        text = call.request.semantic_text
        if text is None or not self.applies(call):
            return None
        try:
            matches = self.index.search(
                self._vector(text), self.scope(call, version), self.k, self.threshold
            )
        except (EmbedderError, StoreError) as exc:
            self.failed(cache, "lookup", exc)
            return None
        for match in matches:
            data = match.payload
            if data is None:
                try:
                    data = store.get(match.key)
                except StoreError as exc:
                    cache.count_store_error(exc)
                    return None
                if data is None:  # the answer expired or was deleted: drop its vector
                    self._drop(cache, match.key)
                    continue
            hit = self.accept(cache, call, match, data)
            if hit is None:
                continue
            rolling = cache.refresh_ttl()
            wanted, ttl = self.backfill_ttl(hit, rolling)
            try:
                if backfill and self.backfill and wanted:
                    store.set(cache.key_of(call, version), data, ttl)
                if rolling is not None:  # a hit renews its entry's lease, and its vector's
                    store.get(match.key, rolling)
                    self.touch(cache, call, match.key, rolling)
            except StoreError as exc:
                cache.count_store_error(exc)
            cache.count_hit(hit, "semantic_hits")
            return hit
        return None

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
        """Close the index (the store is the cache's) and an embedder that holds a client."""
        if self._index is not None:
            self._index.close()
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
    ) -> None:
        super().__init__(
            threshold=threshold, guard=guard, namespaces=namespaces, k=k, backfill=backfill
        )
        _check_index(index)
        self.raw_embedder = _async_embedder(embedder)
        self.embedder: AsyncEmbedder = self.raw_embedder
        self._settle(self.raw_embedder)
        self._index_arg = index
        self._index: AsyncVectorIndex | None = None if isinstance(index, str) else index
        self._cache_embeddings = cache_embeddings
        self._store: AsyncStore | None = None
        self._prefix = "llmemo"

    def bind(self, store: AsyncStore, prefix: str) -> None:
        """Attach to the cache's store (called by `AsyncCache.__init__`; one cache per layer)."""
        from llmemo.embed.cached import AsyncCachedEmbedder

        if not inspect.iscoroutinefunction(getattr(store, "get", None)):
            raise ConfigError(
                "an AsyncSemanticLayer is for an AsyncCache; a Cache takes SemanticLayer"
            )
        if self._store is not None and self._store is not store:
            raise ConfigError("an AsyncSemanticLayer belongs to one AsyncCache: make one per cache")
        self._store, self._prefix = store, prefix
        if self._cache_embeddings and not isinstance(self.raw_embedder, AsyncCachedEmbedder):
            self.embedder = AsyncCachedEmbedder(self.raw_embedder, store, prefix=prefix)

    async def open_index(self) -> AsyncVectorIndex:
        """The vector index (opened on first use when given as a kind: the server is asked)."""
        if self._index is None:
            from llmemo.index.auto import open_async_index

            if self._store is None:
                raise ConfigError("this AsyncSemanticLayer is not attached to an AsyncCache yet")
            with _opening():
                self._index = await open_async_index(
                    self._store,
                    self.embedder.dim,
                    kind=_kind(self._index_arg),
                    prefix=self._prefix,
                )
        return self._index

    async def _vector(self, text: str) -> npt.NDArray[Any]:
        vector: npt.NDArray[Any] = (await self.embedder.embed([text]))[0]
        return vector

    async def lookup(
        self, cache: BaseCache, store: AsyncStore, call: Call, version: int, backfill: bool = True
    ) -> Hit | None:
        """A semantic hit for an exact miss (counted), or None; backfills the exact key."""
        from llmemo.embed.base import EmbedderError

        text = call.request.semantic_text
        if text is None or not self.applies(call):
            return None
        try:
            index = await self.open_index()
            matches = await index.search(
                await self._vector(text), self.scope(call, version), self.k, self.threshold
            )
        except (EmbedderError, StoreError) as exc:
            self.failed(cache, "lookup", exc)
            return None
        for match in matches:
            data = match.payload
            if data is None:
                try:
                    data = await store.get(match.key)
                except StoreError as exc:
                    cache.count_store_error(exc)
                    return None
                if data is None:  # the answer expired or was deleted: drop its vector
                    await self._drop(cache, index, match.key)
                    continue
            hit = self.accept(cache, call, match, data)
            if hit is None:
                continue
            rolling = cache.refresh_ttl()
            wanted, ttl = self.backfill_ttl(hit, rolling)
            try:
                if backfill and self.backfill and wanted:
                    await store.set(cache.key_of(call, version), data, ttl)
                if rolling is not None:  # a hit renews its entry's lease, and its vector's
                    await store.get(match.key, rolling)
                    await self.touch(cache, call, match.key, rolling)
            except StoreError as exc:
                cache.count_store_error(exc)
            cache.count_hit(hit, "semantic_hits")
            return hit
        return None

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
        """Close the index (the store is the cache's) and an embedder that holds a client."""
        if self._index is not None:
            await self._index.close()
        close = getattr(self.raw_embedder, "close", None)
        if callable(close):
            result = close()
            if inspect.isawaitable(result):
                await result
