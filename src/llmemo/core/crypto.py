"""Encryption at rest: a keyring of AES-256-GCM keys (extra `crypto`), the first encrypts, all decrypt.

A key is given as `id:base64key` (32 bytes once decoded). The id is short, stored beside each
ciphertext so that a reader knows which key sealed it (and, without it, that it cannot read it).
The codec (core/entry.py) seals entry bodies with it; the associated data binds the ciphertext
to the store key and the entry's header, so a value copied under another key does not decrypt.
Other records that hold request or answer text (warm results and job states) are sealed whole
with `seal_record`: RECORD_MAGIC | key id length (1) | key id | nonce | ciphertext | tag, the
associated data being the store key and everything before the nonce.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from llmemo.errors import ConfigError, UndecryptableError, require

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96-bit random nonce per write (GCM's standard size)
TAG_BYTES = 16
_ID = re.compile(r"[A-Za-z0-9_.-]{1,16}")
RECORD_MAGIC = b"LMs1"  # a sealed record; a plain one (JSON) never starts with it


class Keyring:
    """AES-256-GCM keys by id. `seal` uses the first; `open` any of them.

    `required=True`: a plaintext entry (written before encryption was turned on) is a miss
    instead of being served.
    """

    __slots__ = ("_ciphers", "_invalid", "ids", "required")

    def __init__(self, keys: Iterable[tuple[str, bytes]], *, required: bool = False) -> None:
        checked = check_keys(keys)
        require("cryptography", "crypto")
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        ciphers: dict[str, AESGCM] = {key_id: AESGCM(secret) for key_id, secret in checked}
        self._ciphers = ciphers
        self._invalid = InvalidTag  # kept: no import on the hit path
        self.ids = tuple(ciphers)
        self.required = required

    @classmethod
    def parse(cls, spec: str | Iterable[str], *, required: bool = False) -> Keyring:
        """Keys from `id:base64key` items (a comma-separated string or a list)."""
        return cls(parse_keys(spec), required=required)

    @property
    def current(self) -> str:
        """The id of the key new writes use."""
        return self.ids[0]

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """nonce | ciphertext+tag of `plaintext` under the current key."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._ciphers[self.ids[0]].encrypt(nonce, plaintext, aad)

    def open(self, key_id: str, sealed: bytes, aad: bytes) -> bytes:
        """The plaintext of `seal`'s output; UndecryptableError for an unknown key id, a
        tampered ciphertext or other associated data (the message holds no key material)."""
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UndecryptableError(f"sealed with key {key_id!r}, which this keyring lacks")
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            raise UndecryptableError("ciphertext too short")
        try:
            return cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
        except self._invalid:
            raise UndecryptableError(
                f"authentication failed under key {key_id!r} (tampered, or moved from another key)"
            ) from None

    def __repr__(self) -> str:  # never the keys themselves
        return f"Keyring(ids={list(self.ids)!r}, required={self.required!r})"


def seal_record(keyring: Keyring | None, key: str, plaintext: bytes) -> bytes:
    """A record as stored under `key`: `plaintext` itself without a keyring, else sealed."""
    if keyring is None:
        return plaintext
    key_id = keyring.current.encode()
    start = RECORD_MAGIC + bytes((len(key_id),)) + key_id
    return start + keyring.seal(plaintext, _record_aad(key, start))


def open_record(keyring: Keyring | None, key: str, data: bytes) -> bytes:
    """The plaintext of a record read from `key` (sealed or plain); UndecryptableError when it
    cannot be decrypted, or is plain while the keyring requires encryption."""
    if not data.startswith(RECORD_MAGIC):
        if keyring is not None and keyring.required:
            raise UndecryptableError("plaintext record, and encryption is required")
        return data
    key_id, start = record_key_id(data)
    if keyring is None:
        raise UndecryptableError("encrypted record, and no encryption keys are configured")
    return keyring.open(key_id, data[len(start) :], _record_aad(key, start))


def record_key_id(data: bytes) -> tuple[str, bytes]:
    """(key id, the bytes before the nonce) of a sealed record; UndecryptableError if malformed."""
    at = len(RECORD_MAGIC)
    if len(data) <= at or len(data) < at + 1 + data[at]:
        raise UndecryptableError("truncated sealed record")
    end = at + 1 + data[at]
    return data[at + 1 : end].decode(errors="replace"), data[:end]


def _record_aad(key: str, start: bytes) -> bytes:
    return key.encode() + b"\x00" + start


def parse_keys(spec: str | Iterable[str]) -> list[tuple[str, bytes]]:
    """(id, key bytes) of `id:base64key` items (a comma-separated string or a list), checked
    (ids, lengths, duplicates) without the `crypto` extra; ConfigError with a one-line reason."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    return check_keys(parse_key(item) for item in items if item.strip())


def check_keys(keys: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The keys as a list, once each id is valid and unique and each key is 32 bytes."""
    checked: dict[str, bytes] = {}
    for key_id, secret in keys:
        if not _ID.fullmatch(key_id):
            raise ConfigError(
                f"encryption key id {key_id!r}: use 1 to 16 letters, digits, '_', '.' or '-'"
            )
        if key_id in checked:
            raise ConfigError(f"encryption key id {key_id!r} is given twice")
        if len(secret) != KEY_BYTES:
            raise ConfigError(
                f"encryption key {key_id!r} is {len(secret)} bytes; AES-256 needs {KEY_BYTES}"
            )
        checked[key_id] = secret
    if not checked:
        raise ConfigError("encryption needs at least one key (id:base64key)")
    return list(checked.items())


def parse_key(item: str) -> tuple[str, bytes]:
    """(id, key bytes) of one `id:base64key`; ConfigError with a one-line reason."""
    key_id, sep, encoded = item.strip().partition(":")
    if not sep or not key_id:
        raise ConfigError("an encryption key must be given as id:base64key (e.g. k1:3q2+7w...)")
    try:
        secret = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"encryption key {key_id!r} is not valid base64") from None
    return key_id, secret


def new_key() -> str:
    """A fresh random key, base64 (for `id:` + this in LLMEMO_ENCRYPTION_KEYS)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def keyring(
    option: Keyring | str | Iterable[str] | None, *, required: bool = False
) -> Keyring | None:
    """The Keyring of a cache's `encryption=` option (None: entries are stored in clear)."""
    if option is None or isinstance(option, Keyring):
        return option
    return Keyring.parse(option, required=required)
