"""The decisions of rekey without I/O (core/rekey_base.py): a rewritten value keeps everything
but its key, and what cannot be read is told apart from what is current."""

from __future__ import annotations

import os

from llmemo.core import entry as entries
from llmemo.core.crypto import Keyring, seal_record
from llmemo.core.rekey_base import ENTRY, RECORD, RekeyReport, outcome, resume, state_bytes
from tests.core.helpers import answer

K1, K2, OTHER = os.urandom(32), os.urandom(32), os.urandom(32)
OLD, NEW = Keyring([("k1", K1)]), Keyring([("k2", K2), ("k1", K1)])
KEY = "llmemo:faq:3:x:{0123}"
FULL = entries.Entry(
    response=answer("Paris, since 987."),
    model="gpt-4o-mini",
    created=1_700_000_000.5,
    usage=entries.Usage(12, 3),
    tags=("geo", "faq"),
    tenant="acme",
    user="ann",
    provider="openai",
    ttl=3600.0,
    stale_after=1_700_003_000.0,
    prompt="What is the capital of France?",
)


def test_a_rewritten_entry_keeps_every_field_and_its_header() -> None:
    for before in (entries.encode(FULL, OLD, KEY), entries.encode(FULL)):  # sealed, plain
        result, after = outcome(ENTRY, KEY, before, NEW)
        assert result == "rewritten" and after is not None
        assert entries.sealed_with(after) == "k2"
        assert entries.decode(after, KEY, Keyring([("k2", K2)])) == FULL
        assert entries.decode_head(after) == entries.decode_head(before)


def test_current_undecryptable_and_corrupt_are_told_apart() -> None:
    assert outcome(ENTRY, KEY, entries.encode(FULL, NEW, KEY), NEW) == ("current", None)
    stranger = entries.encode(FULL, Keyring([("k1", OTHER)]), KEY)
    assert outcome(ENTRY, KEY, stranger, NEW) == ("undecryptable", None)
    moved = entries.encode(FULL, OLD, "llmemo:faq:3:x:{other}")
    assert outcome(ENTRY, KEY, moved, NEW) == ("undecryptable", None)
    assert outcome(ENTRY, KEY, b"not an entry", NEW) == ("skipped", None)


def test_records_are_rewritten_whole() -> None:
    key = "llmemo:~warm:done:r1"
    for before in (seal_record(OLD, key, b'{"a": 1}'), b'{"a": 1}'):
        result, after = outcome(RECORD, key, before, NEW)
        assert result == "rewritten" and after is not None and after.startswith(b"LMs1\x02k2")
        assert outcome(RECORD, key, after, NEW) == ("current", None)
    stranger = seal_record(Keyring([("k9", OTHER)]), key, b"{}")
    assert outcome(RECORD, key, stranger, NEW) == ("undecryptable", None)


def test_a_saved_position_resumes_only_for_the_same_key() -> None:
    report = RekeyReport("k2", rewritten=5, current=2, skipped=1)
    saved = state_bytes(report, 1, "cursor-7")
    again = RekeyReport("k2")
    assert resume(saved, again) == (1, "cursor-7")
    assert (again.rewritten, again.current, again.skipped, again.resumed) == (5, 2, 1, True)
    negative = state_bytes(RekeyReport("k2"), -1, "c")
    for other in (state_bytes(RekeyReport("k3"), 1, "c"), negative, b"garbage", b"[]", None):
        fresh = RekeyReport("k2")
        assert resume(other, fresh) == (0, "") and not fresh.resumed
