"""Verified semantic hits, the store I/O: read a namespace's evidence and an entry's state, decide,
judge a fresh answer against the cached one and record it (decisions: `core/verified.py`).

Written once: the sync twin in `core/_sync/verified.py` is GENERATED from this file by
`scripts/gen_sync.py`: edit this file, then run the script.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from llmemo.core import verified as rules
from llmemo.core.verified import Choice, EntryState, Prior, Probe, Verified
from llmemo.errors import StoreError
from llmemo.stores import keys

if TYPE_CHECKING:
    from llmemo.core.verify import AsyncLLMVerifier
    from llmemo.embed.base import AsyncEmbedder
    from llmemo.stores.base import AsyncStore

Counts = list[tuple[str, float]]


class AsyncVerification:
    """One semantic layer's verified mode (`AsyncSemanticLayer(max_error=...)`)."""

    def __init__(self, config: Verified) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self._store: AsyncStore | None = None
        self._prefix = "llmemo"
        self._space = ""
        self._monotonic: Callable[[], float] = time.monotonic
        self._priors: dict[str, tuple[Prior, float]] = {}  # namespace -> (evidence, read at)
        self.embedder: AsyncEmbedder | None = None  # the `embedding` judge's
        self.verifier: AsyncLLMVerifier | None = None  # the `llm` judge's
        self._held: dict[str, Probe] = {}  # exact key -> the probe its `lookup` found

    def bind(
        self,
        store: AsyncStore,
        prefix: str,
        space: str,
        monotonic: Callable[[], float],
        embedder: AsyncEmbedder,
        verifier: AsyncLLMVerifier | None,
    ) -> None:
        from llmemo.errors import ConfigError

        if self.config.judge == "llm" and verifier is None:
            raise ConfigError("judge='llm' needs the layer's verifier= (an LLMVerifier)")
        self._store, self._prefix, self._space = store, prefix, space
        self._monotonic = monotonic
        self.embedder, self.verifier = embedder, verifier

    def hold(self, key: str, probe: Probe) -> None:
        """Keep a probe of `lookup` for the `store` of the same request (`HELD`)."""
        if len(self._held) >= rules.HELD:
            self._held = {}
        self._held[key] = probe

    def held(self, key: str) -> Probe | None:
        return self._held.pop(key, None)

    def _prior_key(self, namespace: str) -> str:
        return keys.verified_key(self._prefix, namespace, self._space)

    async def prior(self, namespace: str) -> Prior:
        """The namespace's evidence, read from the store at most every `prior_refresh` seconds
        (a store error: the last one read, else none, so nothing is served unverified)."""
        assert self._store is not None
        now = self._monotonic()
        kept = self._priors.get(namespace)
        if kept is not None and now - kept[1] < self.config.prior_refresh:
            return kept[0]
        try:
            prior = Prior.of(await self._store.counters(self._prior_key(namespace)))
        except StoreError:
            return kept[0] if kept is not None else Prior()
        self._priors[namespace] = (prior, now)
        return prior

    async def choose(self, namespace: str, key: str, similarity: float, counts: Counts) -> Choice:
        """Serve, explore or refuse a candidate that passed the threshold and the guard (counted
        as `verified_served`, `verified_explored`, `verified_refused_by_bound`)."""
        assert self._store is not None
        prior = await self.prior(namespace)
        state = None
        if rules.covered(self.config, prior, similarity):
            try:
                state = EntryState.decode(
                    await self._store.get(keys.entry_state_key(self._prefix, key))
                )
            except StoreError:
                state = EntryState(bad=1, worst=1.0)  # unknown: not served unverified
        choice = rules.decide(self.config, prior, similarity, state, self.rng)
        counts.append((rules.COUNTERS[choice], 1))
        return choice

    async def observe(self, probe: Probe, fresh: dict[str, Any]) -> Counts:
        """Judge the miss's fresh answer against the probed entry's and record the verdict in the
        namespace's evidence and the entry's state. Store errors are counted, not raised."""
        assert self._store is not None
        counts: Counts = []
        same = await self._judge(probe, fresh)
        if same is None:
            counts.append(("verified_unjudged", 1))
            return counts
        counts.append((f"verified_{'same' if same else 'differ'}", 1))
        key = self._prior_key(probe.namespace)
        state_key = keys.entry_state_key(self._prefix, probe.key)
        try:
            await self._store.incr(key, rules.observation(probe.similarity, same))
            state = EntryState.decode(await self._store.get(state_key))
            await self._store.set(state_key, state.add(probe.similarity, same).encode(), probe.ttl)
        except StoreError:
            counts.append(("verified_errors", 1))
        kept = self._priors.get(probe.namespace)
        if kept is not None:
            self._priors[probe.namespace] = (kept[0].add(probe.similarity, same), kept[1])
        return counts

    async def _judge(self, probe: Probe, fresh: dict[str, Any]) -> bool | None:
        """Is the cached answer the same as the fresh one (None: the judge could not tell)?"""
        judge = self.config.judge
        if judge == "exact":
            return rules.same_text(probe.response, fresh)
        if judge == "embedding":
            import numpy as np

            from llmemo.embed.base import EmbedderError

            assert self.embedder is not None
            texts = [rules.answer_text(probe.response), rules.answer_text(fresh)]
            try:
                vectors = await self.embedder.embed(texts)
            except EmbedderError:  # the pair stays unjudged (fail open)
                return None
            similarity = float(np.dot(vectors[0], vectors[1]))
            return similarity >= self.config.answer_similarity
        assert self.verifier is not None
        if probe.prompt is None:
            return None
        return (await self.verifier.verify(probe.query, probe.prompt)).same

    async def forget(self, keys_: Sequence[str]) -> None:
        """Deleted entries take their state with them."""
        assert self._store is not None
        if keys_:
            await self._store.delete([keys.entry_state_key(self._prefix, k) for k in keys_])
