"""The walk of `llmemo rekey`: every record that holds request or answer text, page by page, each
rewritten under the current key only while unchanged, its TTL kept (a page's rewrites sent
together); the position saved in the store after each page (decisions: core/rekey_base.py)."""

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
WHOLE = 512 * 1024 * 1024  # a head read this long is the whole value (Redis' largest string)


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
    todo: list[tuple[str, bytes]] = []
    for key, head in zip(page, heads, strict=True):
        if head is None:
            report.count("skipped")  # expired or deleted since the scan
        elif is_current(kind, head, keyring):
            report.count("current")
        else:
            todo.append((key, head))
    # a value shorter than the head read is all there; the longer ones are read whole, together
    longer = [key for key, head in todo if len(head) >= entries.HEAD_BYTES]
    whole = dict(zip(longer, await store.heads(longer, WHOLE), strict=True)) if longer else {}
    rewrites: list[tuple[str, bytes, bytes]] = []
    for key, head in todo:
        data = whole.get(key) if len(head) >= entries.HEAD_BYTES else head
        result, new = ("skipped", None) if data is None else outcome(kind, key, data, keyring)
        if new is not None and data is not None and not report.dry_run:
            rewrites.append((key, data, new))  # counted once the store has answered
        else:
            report.count(result)
    for done in await store.swap_many(rewrites) if rewrites else []:
        # not done: another writer changed it meanwhile, and its value stays
        report.count("rewritten" if done else "skipped")
