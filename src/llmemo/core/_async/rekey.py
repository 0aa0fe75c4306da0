"""The walk of `llmemo rekey`: every record that holds request or answer text, page by page, each
rewritten under the current key only while unchanged, its TTL kept; the position saved in the
store after each page (the decisions: core/rekey_base.py)."""

from __future__ import annotations

from collections.abc import Callable

from llmemo.core import entry as entries
from llmemo.core.crypto import Keyring
from llmemo.core.rekey_base import (
    BATCH,
    STATE_TTL,
    RekeyReport,
    is_current,
    outcome,
    resume,
    state_bytes,
    targets,
)
from llmemo.stores import keys
from llmemo.stores.protocol import AsyncRewritableStore

Progress = Callable[[RekeyReport], None]


async def async_rekey(
    store: AsyncRewritableStore,
    keyring: Keyring,
    prefix: str = "llmemo",
    *,
    dry_run: bool = False,
    restart: bool = False,
    batch: int = BATCH,
    progress: Progress | None = None,
) -> RekeyReport:
    """Re-encrypt every entry and warm record of `prefix` under the keyring's first key (plain
    ones too). Resumable: an interrupted run continues from the position saved in the store
    (`{prefix}:~rekey`) unless `restart`; `dry_run` counts without writing (nor saving)."""
    report = RekeyReport(keyring.current, dry_run=dry_run)
    state_key = keys.rekey_state(prefix)
    start, cursor = (0, "")
    if not dry_run and not restart:
        start, cursor = resume(await store.get(state_key), report)
    walk = targets(prefix)
    for index in range(start, len(walk)):
        kind, pattern = walk[index]
        while True:
            cursor, page = await store.scan_page(pattern, cursor, batch)
            await _page(store, keyring, kind, page, report)
            report.position = {"target": index, "pattern": pattern, "cursor": cursor}
            if not dry_run:
                following = (index, cursor) if cursor else (index + 1, "")
                await store.set(state_key, state_bytes(report, *following), STATE_TTL)
            if progress is not None:
                progress(report)
            if not cursor:
                break
    report.done = True
    if not dry_run:
        await store.delete([state_key])
    return report


async def _page(
    store: AsyncRewritableStore, keyring: Keyring, kind: str, page: list[str], report: RekeyReport
) -> None:
    heads = await store.heads(page, entries.HEAD_BYTES)
    for key, head in zip(page, heads, strict=True):
        if head is None:
            report.count("skipped")  # expired or deleted since the scan
            continue
        if is_current(kind, head, keyring):
            report.count("current")
            continue
        # a value shorter than the head read is all there: no second read
        data = head if len(head) < entries.HEAD_BYTES else await store.get(key)
        if data is None:
            report.count("skipped")
            continue
        result, new = outcome(kind, key, data, keyring)
        if new is not None and not report.dry_run and not await store.swap(key, data, new):
            result = "skipped"  # another writer changed it meanwhile: its value stays
        report.count(result)
