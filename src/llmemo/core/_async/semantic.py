"""The semantic layer's I/O: embed, KNN in scope, read candidates, index and forget vectors.

Written once: the sync `SemanticLayer` in `core/_sync/semantic.py` is GENERATED from this file by
`scripts/gen_sync.py` (a test fails when it is out of date): edit this file, then run the script.
Every decision is in `core/semantic_base.py` (no I/O); a lookup returns a `SemanticPlan` (the hit,
counters, the backfill write, the lease to renew) that the cache carries out, so the layer never
calls the cache. See `core/semantic.py` for the flow, the scope and fail-open rules.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from llmemo import telemetry
from llmemo.core import semantic_base as engine
from llmemo.core._async.verified import AsyncVerification
from llmemo.core.feedback import below_floor, parse_floor
from llmemo.core.guard import Guard
from llmemo.core.semantic_base import DEFAULT_K, MAX_CHARS, Counts, SemanticBase, SemanticPlan
from llmemo.core.verified import Probe, Verified
from llmemo.errors import StoreError
from llmemo.stores import keys

if TYPE_CHECKING:
    import numpy.typing as npt

    from llmemo.core.crypto import Keyring
    from llmemo.core.facade import Call, Hit
    from llmemo.core.verify import AsyncLLMVerifier
    from llmemo.embed import AsyncCachedEmbedder, Unsaved
    from llmemo.embed import base as embedders
    from llmemo.index import base as indexes
    from llmemo.stores.base import AsyncStore


class AsyncSemanticLayer(SemanticBase):
    """A cache's semantic layer: `AsyncCache(store, semantic=AsyncSemanticLayer())`.

    embedder: an embedder or a spec ("minilm", "openai:MODEL[@URL]", "ollama:MODEL[@URL]"), its
    vectors cached in the cache's store until the index holds them; in the async layer a sync
    embedder (the local MiniLM) runs in a worker thread, so it never blocks the loop. index: a
    vector index, or "auto" (RediSearch when the store's server has it, else a local index),
    "redisearch", "local". threshold: cosine similarity in [0, 1]; None takes the embedder's
    shipped default; 1.0 means exact only. guard: see `llmemo.core.guard` (None: the threshold
    alone decides). namespaces: where the layer is on (None: every namespace). k: neighbours tried
    per lookup. verifier: an LLM verifier that must say yes to borderline matches
    (`llmemo.core.verify`; off by default). max_chars: a last user message longer than this is
    matched exactly only (`MAX_CHARS`). max_error: verified hits (`llmemo.core.verified`):
    the largest share of wrong semantic hits accepted (a number, or a `Verified`); judge: how a
    fresh answer is compared with a cached one then ("exact", "embedding[:X]", "llm"). Off
    (None) by default.
    """

    def __init__(
        self,
        embedder: embedders.AsyncEmbedder | embedders.Embedder | embedders.Spec = "minilm",
        index: indexes.AsyncVectorIndex | str = "auto",
        *,
        threshold: float | None = None,
        guard: Guard | None = Guard(),  # noqa: B008  (frozen, so sharing it is safe)
        namespaces: Sequence[str] | None = None,
        k: int = DEFAULT_K,
        backfill: bool = True,
        cache_embeddings: bool = True,
        verifier: AsyncLLMVerifier | None = None,
        max_chars: int = MAX_CHARS,
        max_error: float | Verified | None = None,
        judge: str | None = None,
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
        self.verification = engine.verification(AsyncVerification, max_error, judge)
        engine.check_index(index)
        self.raw_embedder = engine.async_embedder(embedder)
        self.embedder: embedders.AsyncEmbedder = self.raw_embedder
        self._settle(self.raw_embedder)
        self._index_arg = index
        self._index: indexes.AsyncVectorIndex | None = None if isinstance(index, str) else index
        self._cache_embeddings = cache_embeddings
        self._cached: AsyncCachedEmbedder | None = None  # the embedding cache, once bound
        self._store: AsyncStore | None = None
        self._prefix = "llmemo"

    def bind(
        self,
        store: AsyncStore,
        prefix: str,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        keyring: Keyring | None = None,
    ) -> None:
        """Attach to the cache's store, clocks and encryption keys (called by the cache; one
        cache per layer)."""
        from llmemo.embed import AsyncCachedEmbedder

        if inspect.iscoroutinefunction(getattr(store, "get", None)) != (
            inspect.iscoroutinefunction(self.lookup)
        ):
            raise engine.misuse(self, "pairing")
        if self._store is not None and self._store is not store:
            raise engine.misuse(self, "shared")
        self._store, self._prefix = store, prefix
        self._clock, self._monotonic = clock, monotonic
        self._keyring = keyring
        if self._cache_embeddings and not isinstance(self.raw_embedder, AsyncCachedEmbedder):
            self.embedder = AsyncCachedEmbedder(self.raw_embedder, store, prefix=prefix)
        self._cached = self.embedder if isinstance(self.embedder, AsyncCachedEmbedder) else None
        if self.verification is not None:
            self.verification.bind(
                store, prefix, self.space, monotonic, self.raw_embedder, self.verifier
            )

    async def open_index(self) -> indexes.AsyncVectorIndex:
        """The vector index (opened on first use when given as a kind: the server is asked)."""
        if self._index is None:
            from llmemo.index import open_async_index

            if self._store is None:
                raise engine.misuse(self, "unbound")
            with engine.opening_index():
                self._index = await open_async_index(
                    self._store,
                    self.embedder.dim,
                    kind=engine.index_kind(self._index_arg),
                    prefix=self._prefix,
                )
        return self._index

    async def _vector(self, text: str) -> npt.NDArray[Any]:
        vector: npt.NDArray[Any] = (await self.embedder.embed([text]))[0]
        return vector

    async def _query_vector(self, call: Call, text: str) -> tuple[npt.NDArray[Any], Unsaved]:
        """The text's vector, and what the embedding cache has not written of it yet."""
        if self._cached is None:
            return await self._vector(text), ()
        vectors, unsaved = await self._cached.embed_unsaved([text], engine.owner_of(call))
        return vectors[0], unsaved

    async def lookup(
        self, call: Call, version: int, rolling: float | None = None, backfill: bool = True
    ) -> SemanticPlan:
        """The plan for an exact miss: a semantic hit (or none), what to count, the backfill of
        the exact key (unless `backfill` is False) and, under a rolling TTL (`rolling`), the lease
        the hit renews. The cache carries it out, then hands it to `settle`."""
        from llmemo.embed.base import EmbedderError

        plan = SemanticPlan()
        text = call.request.semantic_text
        if text is None or self.skips(call, plan.counts):
            return plan
        try:
            index = await self.open_index()
            with telemetry.span(self.tracer, "llmemo.embed", self._embed_attributes()):
                vector, plan.unsaved = await self._query_vector(call, text)
            with telemetry.span(self.tracer, "llmemo.vector_search") as span:
                matches = await index.search(
                    vector, self.scope(call, version), self.k, self.threshold
                )
                if span is not None:
                    telemetry.searched(span, self.k, [m.similarity for m in matches])
        except (EmbedderError, StoreError) as exc:
            self.failed(plan.counts, "lookup", exc)
            return plan
        return await self._answer(plan, index, call, rolling, backfill, text, matches)

    def _embed_attributes(self) -> dict[str, str] | None:
        """The `llmemo.embed` span's attributes (tracing on): the embedder, never the text."""
        if self.tracer is None:
            return None
        return telemetry.embed_attributes(self.raw_embedder.name, self.raw_embedder.model)

    async def _answer(
        self,
        plan: SemanticPlan,
        index: indexes.AsyncVectorIndex,
        call: Call,
        rolling: float | None,
        backfill: bool,
        text: str,
        matches: list[indexes.Match],
    ) -> SemanticPlan:
        """The plan of the first match that answers (none: a miss)."""
        assert self._store is not None  # an index is open, so the layer is bound
        for match in matches:
            data = match.payload
            if data is None:
                try:
                    data = await self._store.get(match.key)
                except StoreError as exc:
                    plan.errors.append(exc)
                    return plan
                if data is None:  # the answer expired or was deleted: drop its vector
                    await self._drop(plan.counts, index, match.key)
                    continue
            accepted = self.accept(call, match, data, plan.counts)
            if accepted is None:
                continue
            hit, prompt = accepted
            if await self._below_floor(plan, match):  # a wrong hit was reported for it
                continue
            verifier = self.verifier  # borderline matches need its yes
            if (
                verifier is not None
                and prompt is not None
                and verifier.needed(match.similarity)
                and not self.verified(await verifier.verify(text, prompt), plan.counts)
            ):
                continue
            plan.matched = (match.key, prompt)
            if self.verification is not None:
                return await self._bounded(plan, call, hit, prompt, data, rolling, backfill)
            return self.decide(plan, hit, data, match.key, rolling, backfill)
        return plan

    async def _below_floor(self, plan: SemanticPlan, match: indexes.Match) -> bool:
        """Is this candidate refused by the floor a wrong-hit report put on its entry (one GET,
        only for a candidate that passed; a store error lets it pass: fail open)?"""
        assert self._store is not None
        try:
            floor = await self._store.get(keys.floor_key(self._prefix, match.key))
        except StoreError as exc:
            plan.errors.append(exc)
            return False
        if below_floor(match.similarity, parse_floor(floor)):
            plan.count("semantic_rejected:feedback")
            return True
        return False

    async def _bounded(
        self,
        plan: SemanticPlan,
        call: Call,
        hit: Hit,
        prompt: str | None,
        data: bytes,
        rolling: float | None,
        backfill: bool,
    ) -> SemanticPlan:
        """Verified hits: the first candidate that passed is served only where the bound covers
        it; otherwise the plan carries a probe, for the miss's fresh answer to be judged."""
        assert self.verification is not None and hit.similarity is not None
        namespace = call.scope.namespace
        choice = await self.verification.choose(namespace, hit.key, hit.similarity, plan.counts)
        if choice == "serve":
            return self.decide(plan, hit, data, hit.key, rolling, backfill)
        assert call.request.semantic_text is not None
        plan.probe = Probe(
            hit.key,
            hit.similarity,
            hit.response,
            call.request.semantic_text,
            prompt,
            namespace,
            hit.remaining,
        )
        return plan

    def hold(self, key: str, plan: SemanticPlan) -> None:
        """`lookup` found a probe: keep it until `store` brings this request's answer."""
        if self.verification is not None and plan.probe is not None:
            self.verification.hold(key, plan.probe)

    async def observe_held(self, key: str, fresh: dict[str, Any]) -> Counts:
        """`store` of a request whose `lookup` held a probe: judge it now."""
        probe = None if self.verification is None else self.verification.held(key)
        if probe is None or self.verification is None:
            return []
        return await self.verification.observe(probe, fresh)

    async def observe(self, plan: SemanticPlan, fresh: dict[str, Any]) -> Counts:
        """After a probed miss: judge the fresh answer against the probed entry's (verified hits)."""
        if plan.probe is None or self.verification is None:
            return []
        return await self.verification.observe(plan.probe, fresh)

    async def settle(self, plan: SemanticPlan, backfilled: bool) -> None:
        """After the cache carried out `plan`: the query's vector goes to the embedding cache
        unless the hit was backfilled (the exact key answers that text from then on, so the write
        would cost a round trip for nothing)."""
        if plan.unsaved and not backfilled and self._cached is not None:
            await self._cached.save(plan.unsaved)

    async def touch(self, call: Call, key: str, ttl: float) -> Counts:
        """Rolling TTL: the entry at `key` got `ttl` more seconds, so does its vector. Returns
        what to count (an index failure)."""
        counts: Counts = []
        if self.applies(call) and self.touch_due(key, ttl):
            try:
                await (await self.open_index()).touch(key, ttl)
            except StoreError as exc:
                self.failed(counts, "touch", exc)
        return counts

    async def remember(
        self, call: Call, version: int, key: str, value: bytes, ttl: float | None
    ) -> Counts:
        """Index a freshly stored answer (its vector expires with it). Returns what to count."""
        from llmemo.embed.base import EmbedderError
        from llmemo.index.base import IndexItem

        counts: Counts = []
        text = call.request.semantic_text
        if text is None or not self.applies(call):
            return counts
        try:
            index = await self.open_index()
            vector, rows = await self._indexed_vector(call, text)
            await index.add(IndexItem(key, vector, self.scope(call, version), value, ttl))
        except (EmbedderError, StoreError) as exc:
            self.failed(counts, "index add", exc)
            return counts
        if rows and self._cached is not None:  # the index holds the vector now
            await self._cached.forget(rows)
        return counts

    async def _indexed_vector(
        self, call: Call, text: str
    ) -> tuple[npt.NDArray[Any], tuple[str, ...]]:
        """The vector of a text about to be indexed, and its embedding cache rows: the index
        keeps the vector, so a row is deleted once it is in, and none is written."""
        if self._cached is None:
            return await self._vector(text), ()
        vectors, rows = await self._cached.embed_taken([text], engine.owner_of(call))
        return vectors[0], rows

    async def forget(self, keys: Sequence[str]) -> None:
        """Delete these entries' vectors (store errors are raised, as for any deletion)."""
        if keys:
            await (await self.open_index()).delete(keys)
            if self.verification is not None:
                await self.verification.forget(keys)

    async def _drop(self, counts: Counts, index: indexes.AsyncVectorIndex, key: str) -> None:
        try:
            await index.delete([key])
        except StoreError as exc:
            self.failed(counts, "cleanup", exc)

    async def close(self) -> None:
        """Close the index (the store is the cache's), the verifier, and an embedder's client."""
        if self._index is not None:
            await self._index.close()
        if self.verifier is not None:
            await self.verifier.close()
        await engine.aclose_embedder(self.raw_embedder)
