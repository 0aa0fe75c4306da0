"""Sealed records (core/crypto.py `seal_record`/`open_record`): the form of warm results and job
states with encryption keys."""

from __future__ import annotations

import base64
import os

import pytest

from llmemo.core.crypto import RECORD_MAGIC, Keyring, open_record, record_key_id, seal_record
from llmemo.errors import UndecryptableError


def ring(*ids: str, required: bool = False) -> Keyring:
    keys = [f"{i}:{base64.b64encode(os.urandom(32)).decode()}" for i in ids]
    return Keyring.parse(keys, required=required)


def test_a_record_round_trips_and_names_its_key() -> None:
    keys = ring("k1")
    sealed = seal_record(keys, "p:~warm:done:r", b'{"answer": "hello"}')
    assert sealed.startswith(RECORD_MAGIC) and b"hello" not in sealed
    assert record_key_id(sealed)[0] == "k1"
    assert open_record(keys, "p:~warm:done:r", sealed) == b'{"answer": "hello"}'


def test_without_keys_a_record_is_stored_as_it_is() -> None:
    assert seal_record(None, "k", b"{}") == b"{}"
    assert open_record(None, "k", b"{}") == b"{}"


def test_a_rotated_keyring_reads_records_of_the_old_key() -> None:
    k1 = os.urandom(32)
    sealed = seal_record(Keyring([("k1", k1)]), "k", b"data")
    both = Keyring([("k2", os.urandom(32)), ("k1", k1)])
    assert open_record(both, "k", sealed) == b"data"
    assert record_key_id(seal_record(both, "k", b"data"))[0] == "k2"


@pytest.mark.parametrize(
    "change",
    [
        lambda data: data[:-1] + bytes([data[-1] ^ 1]),  # tampered ciphertext
        lambda data: data[:5] + b"k9" + data[7:],  # another key id in front
        lambda data: data[:6],  # truncated
        lambda data: data[:4],  # the magic alone
    ],
)
def test_a_damaged_record_is_undecryptable(change: object) -> None:
    keys = ring("k1")
    sealed = seal_record(keys, "k", b"data")
    with pytest.raises(UndecryptableError):
        open_record(keys, "k", change(sealed))  # type: ignore[operator]


def test_a_record_moved_to_another_key_or_read_without_keys_is_undecryptable() -> None:
    keys = ring("k1")
    sealed = seal_record(keys, "p:~warm:done:a", b"data")
    with pytest.raises(UndecryptableError):
        open_record(keys, "p:~warm:done:b", sealed)
    with pytest.raises(UndecryptableError):
        open_record(None, "p:~warm:done:a", sealed)
    with pytest.raises(UndecryptableError):
        open_record(ring("k2"), "p:~warm:done:a", sealed)


def test_a_plain_record_is_refused_when_encryption_is_required() -> None:
    assert open_record(ring("k1"), "k", b"{}") == b"{}"
    with pytest.raises(UndecryptableError):
        open_record(ring("k1", required=True), "k", b"{}")
