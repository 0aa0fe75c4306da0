"""Embeddings cached in a Store, so a text is embedded once until the vector index holds it.

Key: `{prefix}:emb:{name}:{fingerprint of name, model, dim}:{owner}:{sha256(text)}`, where `owner`
is the hashed tenant and user the text was embedded for (`owner_tag`): a wipe of one user deletes
that user's rows and never another's row of the same text. Value: the vector's raw
little-endian float32 bytes, or float16 (half the memory, cosine error ~1e-4) when configured. A
value of either width is read back whatever the current setting, so switching costs no misses. A
failing store is a miss (fail open): the text is embedded and the error counted and logged.
`embed_unsaved` leaves the write to the caller (`save`), so the semantic layer can skip it when
a backfilled hit makes the vector useless; `embed_taken` never writes and names the rows it read,
so the semantic layer can `forget` a row once the vector index holds that vector.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmemo.embed.base import AsyncEmbedder, Matrix, empty
from llmemo.embed.cached_base import UNOWNED, WEEK, CachedBase, Dtype, Unsaved, _Batch
from llmemo.errors import StoreError
from llmemo.stores.protocol import AsyncStore


class AsyncCachedEmbedder(CachedBase):
    """An Embedder that looks each text up in `store` first and sends only the misses to `embedder`.

    A hit refreshes its TTL (`ttl` seconds, None: no expiry), so texts in use stay cached.
    """

    def __init__(
        self,
        embedder: AsyncEmbedder,
        store: AsyncStore,
        *,
        ttl: float | None = WEEK,
        dtype: Dtype = "float32",
        prefix: str = "llmemo",
    ) -> None:
        super().__init__(ttl, dtype, prefix)
        self.embedder = embedder
        self.store = store

    @property
    def name(self) -> str:
        return self.embedder.name

    @property
    def model(self) -> str:
        return self.embedder.model

    @property
    def dim(self) -> int:
        return self.embedder.dim

    async def embed(self, texts: Sequence[str]) -> Matrix:
        vectors, unsaved = await self.embed_unsaved(texts)
        await self.save(unsaved)
        return vectors

    async def embed_unsaved(
        self, texts: Sequence[str], owner: str = UNOWNED
    ) -> tuple[Matrix, Unsaved]:
        """As `embed`, but the vectors the model computed are not written yet: they are returned
        for `save`, so a caller that will not need them again can skip that round trip."""
        if not texts:
            return empty(self.dim), ()
        batch, reachable = await self._read(texts, owner)
        return batch.result(), self._unsaved(batch, reachable)

    async def embed_taken(
        self, texts: Sequence[str], owner: str = UNOWNED
    ) -> tuple[Matrix, tuple[str, ...]]:
        """The vectors, from the store or the model, nothing written; and the keys of the rows
        that were read, for `forget`."""
        if not texts:
            return empty(self.dim), ()
        batch, _ = await self._read(texts, owner)
        return batch.result(), batch.found()

    async def _read(self, texts: Sequence[str], owner: str = UNOWNED) -> tuple[_Batch, bool]:
        """The batch of `texts` with the stored rows read and the rest computed; False when the
        store failed."""
        batch = _Batch.of(texts, self.embedder, self.prefix, owner)
        reachable = True
        for row, key in enumerate(batch.keys):
            try:
                raw = await self.store.get(key, refresh=self.ttl)
            except StoreError as exc:
                # The store is down: pay its timeout once, not once per text.
                self._store_failed("read", exc)
                batch.give_up(row)
                reachable = False
                break
            batch.take(row, raw)
        self._count(batch)
        if batch.missing:
            batch.fill(await self.embedder.embed([batch.texts[row] for row in batch.missing]))
        return batch, reachable

    async def save(self, unsaved: Unsaved) -> None:
        """Write vectors `embed_unsaved` computed (a failing store is logged and counted)."""
        for key, raw in unsaved:
            try:
                await self.store.set(key, raw, self.ttl)
            except StoreError as exc:
                self._store_failed("write", exc)
                break

    async def forget(self, keys: Sequence[str]) -> None:
        """Delete these rows (a failing store is logged and counted: the row expires anyway)."""
        if keys:
            try:
                await self.store.delete(keys)
            except StoreError as exc:
                self._store_failed("delete", exc)
