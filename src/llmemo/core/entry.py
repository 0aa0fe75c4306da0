"""Entries and their byte format: the one reader and writer of stored entry bytes.

Layout: MAGIC (4) | flags (1) | header length (2, big-endian) | header JSON | body.
The header holds the small metadata (model, tenant, user, tags, created, usage, ttl) so that
invalidation can read it with one GETRANGE per key without touching the body. The body is the
provider's response as JSON, zstd-compressed when that saves at least a tenth of it.

Encrypted entries (a `Keyring`, core/crypto.py): the body, compressed first, is sealed with
AES-256-GCM (flag 0x02; body = nonce | ciphertext | tag); the header stays readable and names
the key id ("x"). The associated data is the store key and the prefix with the header, so a
value moved to another key or with an edited header does not decrypt. Plain entries still read.

Other modules never read the header's letters: they call `encode`, `decode`, `decode_head`,
`decode_parts` with `stored`/`stale_after`, or `read`.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import zstandard

from llmemo.core.frozen import builder, built
from llmemo.errors import CorruptEntryError, UndecryptableError

if TYPE_CHECKING:
    from llmemo.core.crypto import Keyring

MAGIC = b"LMe1"
_FLAG_ZSTD = 0x01
_FLAG_SEALED = 0x02  # the body is AES-256-GCM ciphertext; the header's "x" names the key
_PREFIX = struct.Struct(">4sBH")
HEAD_BYTES = 2048  # read this much to be sure to have the whole header
MAX_TAGS = 16
_COMPRESS_FROM = 1024  # below this zstd saves a few hundred bytes and costs microseconds per hit
_local = threading.local()


@dataclass(frozen=True)
class Usage:
    """Token counts of the answer (what a hit saves)."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Entry:
    """A stored answer: the provider's full response and what llmemo needs to account for it."""

    response: Mapping[str, Any]
    model: str | None = None
    created: float = 0.0
    usage: Usage = field(default_factory=Usage)
    tags: tuple[str, ...] = ()
    tenant: str | None = None
    user: str | None = None
    provider: str | None = None
    ttl: float | None = None
    stale_after: float | None = None
    prompt: str | None = None


@dataclass(frozen=True)
class EntryHead:
    """The header of an entry: enough to decide invalidation without reading the body."""

    model: str | None
    tenant: str | None
    user: str | None
    tags: tuple[str, ...]
    created: float
    ttl: float | None = None  # the TTL it was stored with (None: no expiry)


@dataclass(slots=True)  # not frozen: built on every hit, and a frozen one costs 5x to build
class Stored:
    """A stored entry as the hit path reads it (no Entry rebuilt, no provider)."""

    response: dict[str, Any]
    created: float
    model: str | None
    usage: Usage
    tags: tuple[str, ...]
    ttl: float | None
    stale_after: float | None  # past this time (cache clock) the entry is stale
    prompt: str | None  # the prompt a semantic entry was stored with


_UsageBuilder = builder(Usage)


def _zstd() -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
    # zstandard's (de)compressor objects must not be shared between threads.
    pair = getattr(_local, "pair", None)
    if pair is None:
        pair = _local.pair = (zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor())
    return pair


def _header(entry: Entry) -> dict[str, Any]:
    head: dict[str, Any] = {
        "c": entry.created,
        "k": [entry.usage.input_tokens, entry.usage.output_tokens],
    }
    optional = {
        "m": entry.model,
        "t": entry.tenant,
        "u": entry.user,
        "p": entry.provider,
        "l": entry.ttl,
        "s": entry.stale_after,
    }
    head.update({k: v for k, v in optional.items() if v is not None})
    if entry.tags:
        head["g"] = list(entry.tags[:MAX_TAGS])
    return head


def encode(entry: Entry, keyring: Keyring | None = None, key: str = "") -> bytes:
    """Serialise an entry compactly; compress the body when it pays; with a keyring, encrypt
    it (bound to the store `key` it is written under)."""
    doc: dict[str, Any] = {"r": entry.response}
    if entry.prompt is not None:
        doc["q"] = entry.prompt
    body = orjson.dumps(doc)
    flags = 0
    if len(body) >= _COMPRESS_FROM:
        packed = _zstd()[0].compress(body)
        if len(packed) * 10 <= len(body) * 9:
            body, flags = packed, _FLAG_ZSTD
    header = _header(entry)
    if keyring is None:
        head = orjson.dumps(header)
        return _PREFIX.pack(MAGIC, flags, len(head)) + head + body
    header["x"] = keyring.current
    head = orjson.dumps(header)
    start = _PREFIX.pack(MAGIC, flags | _FLAG_SEALED, len(head)) + head
    return start + keyring.seal(body, _aad(key, start))


def _aad(key: str, start: bytes) -> bytes:
    """What a ciphertext is bound to: its store key, and the prefix and header before it."""
    return key.encode() + b"\x00" + start


def _split(data: bytes) -> tuple[int, dict[str, Any], int]:
    """(flags, header, where the body starts)."""
    if len(data) < _PREFIX.size:
        raise CorruptEntryError("too short to be an entry")
    magic, flags, size = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise CorruptEntryError("not an llmemo entry (wrong magic)")
    end = _PREFIX.size + size
    if len(data) < end:
        raise CorruptEntryError("truncated header")
    try:
        head = orjson.loads(data[_PREFIX.size : end])
    except orjson.JSONDecodeError as exc:
        raise CorruptEntryError(f"unreadable header: {exc}") from None
    if not isinstance(head, dict):
        raise CorruptEntryError("header is not an object")
    return flags, head, end


def _head_fields(head: dict[str, Any]) -> EntryHead:
    tags = head.get("g") or ()
    return EntryHead(
        model=head.get("m"),
        tenant=head.get("t"),
        user=head.get("u"),
        tags=tuple(str(t) for t in tags),
        created=float(head.get("c", 0.0)),
        ttl=None if head.get("l") is None else float(head["l"]),
    )


def decode_head(data: bytes) -> EntryHead:
    """Read only the header (data may be the first HEAD_BYTES of the value)."""
    try:
        return _head_fields(_split(data)[1])
    except (TypeError, ValueError) as exc:
        raise CorruptEntryError(f"bad header: {exc}") from None


def sealed_with(data: bytes) -> str | None:
    """The id of the key that sealed an entry (None: stored in clear); `data` may be its first
    HEAD_BYTES. CorruptEntryError when unreadable."""
    flags, head, _ = _split(data)
    if not flags & _FLAG_SEALED:
        return None
    key_id = head.get("x")
    if not isinstance(key_id, str):
        raise CorruptEntryError("encrypted entry without a key id")
    return key_id


def decode_parts(
    data: bytes, key: str = "", keyring: Keyring | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, body document) of the entry stored under `key`, for the hit path;
    CorruptEntryError when unreadable, UndecryptableError (a subclass) when it cannot be
    decrypted with `keyring`, or is plain while the keyring requires encryption."""
    flags, head, end = _split(data)
    body = data[end:]
    if flags & _FLAG_SEALED:
        if keyring is None:
            raise UndecryptableError("encrypted entry, and no encryption keys are configured")
        key_id = head.get("x")
        if not isinstance(key_id, str):
            raise CorruptEntryError("encrypted entry without a key id")
        body = keyring.open(key_id, body, _aad(key, data[:end]))
    elif keyring is not None and keyring.required:
        raise UndecryptableError("plaintext entry, and encryption is required")
    try:
        if flags & _FLAG_ZSTD:
            body = _zstd()[1].decompress(body)
        doc = orjson.loads(body)
    except (zstandard.ZstdError, orjson.JSONDecodeError) as exc:
        raise CorruptEntryError(f"unreadable body: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("r"), dict):
        raise CorruptEntryError("the stored response is not an object")
    return head, doc


def stale_after(head: Mapping[str, Any]) -> float | None:
    """When a decoded header's entry turns stale (None: never); CorruptEntryError if malformed."""
    value = head.get("s")
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError) as exc:
        raise CorruptEntryError(f"bad header: {exc}") from None


def soft_ttl(data: bytes) -> float | None:
    """When the entry in `data` turns stale (None: never), from its header alone;
    CorruptEntryError if unreadable."""
    return stale_after(_split(data)[1])


def stored(head: Mapping[str, Any], doc: Mapping[str, Any]) -> Stored:
    """The Stored of `decode_parts`'s (header, body document); CorruptEntryError if malformed."""
    try:
        usage = head.get("k") or (0, 0)
        tags = head.get("g")
        ttl = head.get("l")
        prompt = doc.get("q")
        return Stored(
            doc["r"],
            float(head.get("c", 0.0)),
            head.get("m"),
            Usage(int(usage[0]), int(usage[1])),
            tuple(map(str, tags)) if tags else (),
            None if ttl is None else float(ttl),
            stale_after(head),
            prompt if isinstance(prompt, str) else None,
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CorruptEntryError(f"bad header: {exc}") from None


def read(data: bytes, key: str = "", keyring: Keyring | None = None) -> Stored:
    """Parse a stored value for the hit path; CorruptEntryError when unreadable.

    What `stored(*decode_parts(...))` gives, in one pass: this is every hit's decode."""
    if (
        data[:4] != MAGIC
        or len(data) < _PREFIX.size
        or data[4] & _FLAG_SEALED
        or (keyring is not None and keyring.required)
    ):  # not plain: the long way (its errors say what is wrong)
        return stored(*decode_parts(data, key, keyring))
    flags = data[4]
    end = _PREFIX.size + ((data[5] << 8) | data[6])
    try:
        head = orjson.loads(data[_PREFIX.size : end])
        body = data[end:]
        if flags & _FLAG_ZSTD:
            body = _zstd()[1].decompress(body)
        doc = orjson.loads(body)
        response = doc["r"]
        usage = head.get("k") or (0, 0)
        tags = head.get("g")
        ttl = head.get("l")
        soft = head.get("s")
        prompt = doc.get("q")
        if type(response) is not dict or len(data) < end:
            raise TypeError("the stored response is not an object")
        return Stored(
            response,
            float(head.get("c", 0.0)),
            head.get("m"),
            built(Usage, _UsageBuilder(int(usage[0]), int(usage[1]))),
            tuple(map(str, tags)) if tags else (),
            None if ttl is None else float(ttl),
            None if soft is None else float(soft),
            prompt if isinstance(prompt, str) else None,
        )
    except (
        orjson.JSONDecodeError,
        zstandard.ZstdError,
        KeyError,
        TypeError,
        ValueError,
        IndexError,
        AttributeError,
    ):  # the long way says what is wrong
        return stored(*decode_parts(data, key, keyring))


def decode(data: bytes, key: str = "", keyring: Keyring | None = None) -> Entry:
    """Parse an entry; anything unreadable raises CorruptEntryError (never another error)."""
    head, doc = decode_parts(data, key, keyring)
    found = stored(head, doc)
    try:
        meta = _head_fields(head)
    except (TypeError, ValueError) as exc:
        raise CorruptEntryError(f"bad header: {exc}") from None
    provider = head.get("p")
    return Entry(
        response=found.response,
        model=found.model,
        created=found.created,
        usage=found.usage,
        tags=found.tags,
        tenant=meta.tenant,
        user=meta.user,
        provider=provider if isinstance(provider, str) else None,
        ttl=found.ttl,
        stale_after=found.stale_after,
        prompt=found.prompt,
    )


def usage_of(response: Mapping[str, Any]) -> Usage:
    """Token usage from an OpenAI or Anthropic response (0 where the response has none)."""
    usage = response.get("usage")
    if not isinstance(usage, Mapping):
        return Usage()

    def count(*names: str) -> int:
        total = 0
        for name in names:
            value = usage.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                total += value
        return total

    inputs = count("prompt_tokens") or count(
        "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"
    )
    outputs = count("completion_tokens") or count("output_tokens")
    return Usage(inputs, outputs)
