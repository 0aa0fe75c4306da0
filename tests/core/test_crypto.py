"""Encryption at rest in the codec: sealed bodies, key rotation, wrong keys, tampering, migration."""

from __future__ import annotations

import base64
import sys

import pytest

from llmemo.core import entry as entries
from llmemo.core.crypto import Keyring, keyring, new_key
from llmemo.errors import ConfigError, CorruptEntryError, MissingExtraError, UndecryptableError

PROMPT = "what is the capital of Burkina Faso, asked by alice@example.com"
ANSWER = "Ouagadougou is the capital; " * 40  # over 1 KiB: compressed before sealing
KEY = "llmemo:default:v0:exact:abc"


def ring(*ids: str, required: bool = False) -> Keyring:
    return Keyring.parse([f"{i}:{SECRETS[i]}" for i in ids], required=required)


SECRETS = {name: new_key() for name in ("k1", "k2", "other")}


def entry(answer: str = ANSWER) -> entries.Entry:
    response = {"choices": [{"message": {"role": "assistant", "content": answer}}]}
    return entries.Entry(response=response, model="gpt-x", tags=("t",), prompt=PROMPT)


@pytest.mark.parametrize("answer", ["short", ANSWER], ids=["plain-body", "compressed-body"])
def test_round_trip_and_no_plaintext_byte(answer: str) -> None:
    data = entries.encode(entry(answer), ring("k1"), KEY)
    got = entries.decode(data, KEY, ring("k1"))
    assert got.response == entry(answer).response
    assert got.prompt == PROMPT
    for secret in ("Ouagadougou", "Burkina", "alice@example.com", "short", "capital"):
        assert secret.encode() not in data
    assert entries.decode_head(data).model == "gpt-x"  # the header stays readable
    assert entries.decode_head(data).tags == ("t",)


def test_nonce_is_fresh_per_write() -> None:
    first = entries.encode(entry(), ring("k1"), KEY)
    second = entries.encode(entry(), ring("k1"), KEY)
    assert first != second


def test_rotation_old_key_reads_new_key_writes() -> None:
    old = entries.encode(entry(), ring("k1"), KEY)
    rotated = ring("k2", "k1")
    assert entries.read(old, KEY, rotated).response == entry().response
    new = entries.encode(entry(), rotated, KEY)
    assert entries.read(new, KEY, ring("k2")).response == entry().response
    with pytest.raises(UndecryptableError, match="'k2'"):
        entries.read(new, KEY, ring("k1"))


@pytest.mark.parametrize(
    "reader",
    [None, "other-same-id", "other-id"],
    ids=["no-keys", "wrong-key-same-id", "unknown-id"],
)
def test_wrong_or_missing_key_is_undecryptable(reader: str | None) -> None:
    data = entries.encode(entry(), ring("k1"), KEY)
    keys = {
        None: None,
        "other-same-id": Keyring.parse([f"k1:{SECRETS['other']}"]),
        "other-id": ring("other"),
    }[reader]
    with pytest.raises(UndecryptableError) as caught:
        entries.read(data, KEY, keys)
    for secret in SECRETS.values():
        assert secret not in str(caught.value)


@pytest.mark.parametrize("where", [-1, -20, 30], ids=["tag", "ciphertext", "header"])
def test_tampered_value_is_undecryptable(where: int) -> None:
    data = bytearray(entries.encode(entry(), ring("k1"), KEY))
    data[where] ^= 0x01
    with pytest.raises(CorruptEntryError):  # UndecryptableError, or a header no longer JSON
        entries.read(bytes(data), KEY, ring("k1"))


def test_value_moved_to_another_key_does_not_decrypt() -> None:
    data = entries.encode(entry(), ring("k1"), KEY)
    with pytest.raises(UndecryptableError):
        entries.read(data, KEY + "x", ring("k1"))


def test_plaintext_entry_is_served_unless_encryption_is_required() -> None:
    plain = entries.encode(entry())
    assert entries.read(plain, KEY, ring("k1")).response == entry().response
    with pytest.raises(UndecryptableError, match="required"):
        entries.read(plain, KEY, ring("k1", required=True))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("k1", "id:base64key"),
        (":abc", "id:base64key"),
        ("k1:not base64!", "not valid base64"),
        (f"k1:{base64.b64encode(b'x' * 16).decode()}", "16 bytes; AES-256 needs 32"),
        (f"k1:{SECRETS['k1']},k1:{SECRETS['k2']}", "given twice"),
        (f"a key with spaces:{SECRETS['k1']}", "letters, digits"),
        ("", "at least one key"),
    ],
    ids=["no-colon", "no-id", "bad-base64", "wrong-length", "duplicate-id", "bad-id", "empty"],
)
def test_bad_keys_are_clear_one_liners(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        keyring(spec)
    assert "\n" not in str(caught.value)
    for secret in SECRETS.values():
        assert secret not in str(caught.value)


def test_keyring_repr_holds_no_key() -> None:
    keys = ring("k1", "k2")
    assert SECRETS["k1"] not in repr(keys) and "k1" in repr(keys)
    assert keys.current == "k1"


def test_a_missing_extra_is_a_one_line_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'llmemo\[crypto\]'") as caught:
        keyring(f"k1:{SECRETS['k1']}")
    assert "\n" not in str(caught.value)
