"""The I/O of `AsyncCache.wipe`: find a user's or tenant's records by SCAN, delete them, tell
every process (see core/erase.py for the target and report, docs/privacy.md for the rules).

Written once: the sync twin in `core/_sync/erase.py` is GENERATED from this file by
`scripts/gen_sync.py` (a test fails when it is out of date): edit this file, then run the script.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmemo.core.entry import HEAD_BYTES, decode_head
from llmemo.core.erase import (
    ALL_NAMESPACES,
    ERASED,
    WipeReport,
    WipeTarget,
    entry_of_record,
    local_shape,
    namespace_of_entry,
    namespace_of_meta,
)
from llmemo.core.facade import head_matches
from llmemo.core.request import entry_pattern
from llmemo.errors import ConfigError, CorruptEntryError
from llmemo.stores import keys as shapes

NO_TRIM = 2**31  # appending delete events never trims the shared log (its owners set the cap)

if TYPE_CHECKING:
    from llmemo.core._async.cache import AsyncCache
    from llmemo.index.base import Dtype
    from llmemo.stores.protocol import AsyncStore


async def wipe(
    cache: AsyncCache, target: WipeTarget, namespace: str | None, batch: int = 500
) -> WipeReport:
    """Delete the target's entries in `namespace` (ALL_NAMESPACES: every one), their vectors,
    the target's embedding-cache rows, then bump every namespace's erasure count. Store errors
    are raised: a wipe that silently did nothing would be worse."""
    store, prefix = cache.backend, cache.prefix
    ns = None if namespace == ALL_NAMESPACES else namespace
    gone: set[str] = set()
    entries = 0
    async for matched in store.scan(entry_pattern(prefix, ns), batch):
        found = [k for k in matched if "~" not in k]  # not vector records (`~` is the library's)
        heads = await store.heads(found, HEAD_BYTES)
        mine = []
        for key, head in zip(found, heads, strict=True):
            owned = None if head is None else _owned(head, target)
            if owned is None and head is not None and len(head) >= HEAD_BYTES:
                owned = _owned(await store.get(key) or b"", target)  # a header past HEAD_BYTES
            if owned:
                mine.append(key)
        if mine:
            entries += await store.delete(mine)
            gone.update(mine)
    vectors = await _sweep_vectors(store, prefix, gone, batch)
    if cache.semantic is not None and gone:  # this process's index, and the change log
        await cache.semantic.forget(sorted(gone))
    embeddings = await _delete_all(store, _embedding_pattern(prefix, target), batch)
    feedback = await cache.feedback.forget(tenant=target.tenant, user=target.user, namespace=ns)
    # What feedback and verified hits learned about the deleted entries (numbers, no text).
    learned = [
        k
        for key in sorted(gone)
        for k in (shapes.floor_key(prefix, key), shapes.entry_state_key(prefix, key))
    ]
    for start in range(0, len(learned), batch):
        feedback += await store.delete(learned[start : start + batch])
    scrub = getattr(store, "scrub", None)  # SQLite: deleted rows' bytes linger in free pages
    if scrub is not None and (entries or vectors or embeddings or feedback):
        await scrub()
    told = await _tell(store, prefix, {namespace_of_entry(prefix, k) for k in gone}, batch)
    cache.drop_local()
    cache._erasures.update(told)  # known here: no second drop when they are read next
    return WipeReport(entries, vectors, embeddings, 0, len(told), feedback)


def _owned(head: bytes, target: WipeTarget) -> bool | None:
    """Is the entry (its first bytes) the target's? None when its header cannot be read."""
    try:
        return head_matches(decode_head(head), None, target.tenant, target.user, None)
    except CorruptEntryError:
        return None


def _embedding_pattern(prefix: str, target: WipeTarget) -> str:
    from llmemo.embed.cached_base import owner_glob

    return shapes.embedding_pattern(prefix, owner_glob(target.tenant, target.user))


async def _sweep_vectors(store: AsyncStore, prefix: str, gone: set[str], batch: int) -> int:
    """Delete the vector records (local index records, RediSearch hashes: a scope digest and the
    prompt's vector) of the deleted entries, and any whose entry no longer exists; then tell the
    LocalIndexes of other processes through their change log."""
    deleted = 0
    shapes_gone: dict[tuple[Dtype, int], list[str]] = {}
    async for found in store.scan(shapes.vector_records(prefix), batch):
        owners = {r: entry_of_record(r) for r in found}
        doomed = [r for r, e in owners.items() if e is not None and e in gone]
        rest = [r for r, e in owners.items() if e is not None and e not in gone]
        if rest:  # orphans: a record outliving its entry (deleted without the semantic layer)
            heads = await store.heads([owners[r] or "" for r in rest], 1)
            doomed += [r for r, h in zip(rest, heads, strict=True) if h is None]
        if doomed:
            deleted += await store.delete(doomed)
        for record in doomed:
            shape = local_shape(prefix, record)
            if shape is not None:
                shapes_gone.setdefault(shape, []).append(owners[record] or "")
    for (dtype, dim), keys in shapes_gone.items():
        await _tell_index(store, prefix, dtype, dim, keys)
    return deleted


async def _tell_index(
    store: AsyncStore, prefix: str, dtype: Dtype, dim: int, keys: list[str]
) -> None:
    """A delete event per entry on the change log of LocalIndexes of that shape: running
    processes drop the vectors from memory at their next poll."""
    from llmemo.index.base import log_key
    from llmemo.index.changelog import encode_delete
    from llmemo.index.local_base import ASYNC_LOGS, log_factory

    try:
        factory = log_factory(store, ASYNC_LOGS)
    except ConfigError:  # a store no LocalIndex keeps in step across processes
        return
    log = factory(store, log_key(prefix, dim, dtype), NO_TRIM)
    if log is not None:
        try:
            await log.append([encode_delete(key) for key in keys])
        finally:
            await log.close()


async def _delete_all(store: AsyncStore, pattern: str, batch: int) -> int:
    deleted = 0
    async for found in store.scan(pattern, batch):
        deleted += await store.delete(found)
    return deleted


async def _tell(
    store: AsyncStore, prefix: str, touched: set[str | None], batch: int
) -> dict[str, float]:
    """Bump the erasure count of every namespace with a meta key, and of those wiped; returns
    the new counts."""
    names = {n for n in touched if n is not None}
    async for found in store.scan(shapes.meta_pattern(prefix), batch):
        names.update(n for n in (namespace_of_meta(prefix, k) for k in found) if n is not None)
    counts = {}
    for name in sorted(names):
        counts[name] = (await store.incr(shapes.meta_key(prefix, name), {ERASED: 1}))[ERASED]
    return counts
