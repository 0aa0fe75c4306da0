"""The decisions of `llmemo rekey` without I/O: which records hold request or answer text, how one
is rewritten under the current key, the tally, and the saved position (the walk: core/_async/rekey.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from llmemo.core import entry as entries
from llmemo.core.crypto import RECORD_MAGIC, Keyring, open_record, record_key_id, seal_record
from llmemo.errors import CorruptEntryError, UndecryptableError
from llmemo.stores import keys

STATE_TTL = 7 * 86400.0
"""Seconds an interrupted run's position is kept in the store (a run after that starts over)."""
BATCH = 500
"""Keys per SCAN page; the position is saved after each page."""
ENTRY, RECORD = "entry", "record"


def targets(prefix: str) -> list[tuple[str, str]]:
    """(kind, SCAN pattern) of every record that holds request or answer text, in walk order:
    cache entries (answers, and the prompts of semantic entries), warm results, warm job states."""
    return [
        (ENTRY, keys.entry_pattern(prefix)),
        (RECORD, keys.warm_key(prefix, "done", "*")),
        (RECORD, keys.warm_key(prefix, "job", "*")),
    ]


def is_current(kind: str, head: bytes, keyring: Keyring) -> bool:
    """Whether a value (its first HEAD_BYTES will do) is sealed with the current key already
    (False for anything unreadable: the whole value decides then)."""
    try:
        if kind == ENTRY:
            return entries.sealed_with(head) == keyring.current
        return head.startswith(RECORD_MAGIC) and record_key_id(head)[0] == keyring.current
    except (CorruptEntryError, UndecryptableError):
        return False


def resealed(kind: str, key: str, data: bytes, keyring: Keyring) -> bytes:
    """`data`, stored under `key`, rewritten under the keyring's current key (a plain one
    encrypted). UndecryptableError: no key of the keyring opens it; CorruptEntryError: it is
    not an llmemo value."""
    if kind == ENTRY:
        sealed = entries.sealed_with(data) is not None
        entry = entries.decode(data, key, keyring if sealed else None)
        return entries.encode(entry, keyring, key)
    sealed = data.startswith(RECORD_MAGIC)
    return seal_record(keyring, key, open_record(keyring if sealed else None, key, data))


@dataclass
class RekeyReport:
    """What a rekey run did (so far): every key it looked at is counted once in one of the four."""

    key_id: str
    rewritten: int = 0  # re-encrypted under the current key (or, with dry_run, would be)
    current: int = 0  # sealed with the current key already
    undecryptable: int = 0  # no key of the keyring opens it: left alone
    skipped: int = 0  # gone, changed by another writer meanwhile, or not an llmemo value
    resumed: bool = False  # continued where an interrupted run stopped
    done: bool = False  # every target walked to its end
    dry_run: bool = False
    position: dict[str, Any] = field(default_factory=dict)  # where the walk is

    @property
    def seen(self) -> int:
        return self.rewritten + self.current + self.undecryptable + self.skipped

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("position")
        data["seen"] = self.seen
        return data

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


def outcome(kind: str, key: str, data: bytes, keyring: Keyring) -> tuple[str, bytes | None]:
    """("current" | "rewritten" | "undecryptable" | "skipped", the new value if rewritten)."""
    try:
        if is_current(kind, data, keyring):
            return "current", None
        return "rewritten", resealed(kind, key, data, keyring)
    except UndecryptableError:
        return "undecryptable", None
    except CorruptEntryError:
        return "skipped", None


_COUNTS = ("rewritten", "current", "undecryptable", "skipped")


def state_bytes(report: RekeyReport, target: int, cursor: str) -> bytes:
    """The saved position: the key id it rewrites to, the target and cursor, the counts so far."""
    counts = {name: getattr(report, name) for name in _COUNTS}
    return orjson.dumps({"key": report.key_id, "target": target, "cursor": cursor, **counts})


def resume(data: bytes | None, report: RekeyReport) -> tuple[int, str]:
    """(target, cursor) to start from: a saved position for the same key id continues (its counts
    carried into `report`); anything else starts over."""
    try:
        state = orjson.loads(data) if data else None
        if not isinstance(state, dict) or state.get("key") != report.key_id:
            return 0, ""
        target, cursor = int(state["target"]), str(state["cursor"])
        counts = {name: int(state.get(name, 0)) for name in _COUNTS}
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return 0, ""
    if target < 0:
        return 0, ""
    for name, value in counts.items():
        setattr(report, name, value)
    report.resumed = True
    return target, cursor
