"""What both cached embedders share without I/O: the key, the stored form of a vector, one call's
batch, and the counters (the embedders themselves: `embed/_async/cached.py`)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from llmemo.embed.base import AsyncEmbedder, Embedder, EmbedderError, Matrix, normalise
from llmemo.errors import ConfigError, StoreError
from llmemo.stores import keys

log = logging.getLogger("llmemo.embed")

Dtype = Literal["float32", "float16"]
_WIDTHS: dict[str, np.dtype[Any]] = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}
WEEK = 7 * 24 * 3600.0
Unsaved = tuple[tuple[str, bytes], ...]
"""Computed vectors not written to the store yet: (key, encoded vector) pairs (`embed_unsaved`)."""


def model_fingerprint(name: str, model: str, dim: int) -> str:
    """16 hex digits naming one embedding space: vectors under different ones never mix."""
    return hashlib.sha256(f"{name}\0{model}\0{dim}".encode()).hexdigest()[:16]


UNOWNED = "-.-"
"""The owner of texts embedded for no tenant and no user."""
_OWNERS: dict[tuple[str | None, str | None], str] = {}  # bounded: emptied when full


def _part(kind: bytes, name: str | None) -> str:
    if name is None:
        return "-"
    return hashlib.sha256(kind + b"\0" + name.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def owner_tag(tenant: str | None, user: str | None) -> str:
    """`{tenant hash}.{user hash}` (16 hex digits each, `-` for none): whose embedding row it is.
    Hashed, so a row's key does not spell the user's id."""
    owner = _OWNERS.get((tenant, user))
    if owner is None:
        if len(_OWNERS) >= 4096:
            _OWNERS.clear()
        owner = _OWNERS[tenant, user] = f"{_part(b'tenant', tenant)}.{_part(b'user', user)}"
    return owner


def owner_glob(tenant: str | None, user: str | None) -> str:
    """The glob over the owner tags of `tenant` (None: any) and `user` (None: any)."""
    t = "*" if tenant is None else _part(b"tenant", tenant)
    u = "*" if user is None else _part(b"user", user)
    return f"{t}.{u}"


def embedding_key(
    prefix: str, name: str, model: str, dim: int, text: str, owner: str = UNOWNED
) -> str:
    """The store key of one text's vector in one embedding space, for one owner (`owner_tag`)."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return keys.embedding_key(prefix, name, model_fingerprint(name, model, dim), owner, digest)


def encode_vector(vector: Matrix, dtype: Dtype) -> bytes:
    """One row as raw little-endian bytes of `dtype`."""
    raw: bytes = np.ascontiguousarray(vector, dtype=_WIDTHS[dtype]).tobytes()
    return raw


def decode_vector(raw: bytes, dim: int) -> Matrix | None:
    """The float32 unit row stored in `raw` (float32 or float16), or None if it is not one."""
    for dtype in _WIDTHS.values():
        if len(raw) == dim * dtype.itemsize:
            row = np.frombuffer(raw, dtype=dtype).astype(np.float32)[None, :]
            if not np.all(np.isfinite(row)):
                return None
            unit: Matrix = normalise(row, dim)[0]
            return unit
    return None


@dataclass
class _Batch:
    """One call's texts, deduplicated: which rows were found, which the model must compute."""

    texts: list[str]
    keys: list[str]
    rows: list[int]  # for each input text, its row among the unique texts
    vectors: Matrix
    missing: list[int] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        texts: Sequence[str],
        embedder: Embedder | AsyncEmbedder,
        prefix: str,
        owner: str = UNOWNED,
    ) -> _Batch:
        unique: dict[str, int] = {}
        rows = [unique.setdefault(text, len(unique)) for text in texts]
        name, model, dim = embedder.name, embedder.model, embedder.dim
        keys = [embedding_key(prefix, name, model, dim, text, owner) for text in unique]
        vectors = np.zeros((len(unique), dim), dtype=np.float32)
        return cls(list(unique), keys, rows, vectors)

    def take(self, row: int, raw: bytes | None) -> bool:
        vector = None if raw is None else decode_vector(raw, self.vectors.shape[1])
        if vector is None:
            self.missing.append(row)
            return False
        self.vectors[row] = vector
        return True

    def give_up(self, row: int) -> None:
        """The store failed at `row`: it and every later row go to the model."""
        self.missing.extend(range(row, len(self.texts)))

    def fill(self, computed: Matrix) -> None:
        computed = normalise(computed, self.vectors.shape[1])
        if computed.shape[0] != len(self.missing):
            raise EmbedderError(
                f"the embedder returned {computed.shape[0]} vectors for {len(self.missing)} texts"
            )
        self.vectors[self.missing] = computed

    def result(self) -> Matrix:
        return self.vectors[self.rows]

    def found(self) -> tuple[str, ...]:
        """The keys of the rows read from the store."""
        missing = set(self.missing)
        return tuple(key for row, key in enumerate(self.keys) if row not in missing)


class CachedBase:
    """Configuration, counters and the no-I/O steps both cached embedders share."""

    def __init__(self, ttl: float | None, dtype: Dtype, prefix: str) -> None:
        if dtype not in _WIDTHS:
            raise ConfigError(f"dtype must be 'float32' or 'float16', not {dtype!r}")
        if ttl is not None and ttl <= 0:
            raise ConfigError(f"ttl must be positive seconds or None, not {ttl!r}")
        self.ttl = ttl
        self.dtype: Dtype = dtype
        self.prefix = prefix
        self.hits = 0
        self.misses = 0
        self.store_errors = 0

    def _store_failed(self, action: str, exc: StoreError) -> None:
        self.store_errors += 1
        log.warning("embedding cache %s failed, embedding without it: %s", action, exc)

    def _count(self, batch: _Batch) -> None:
        self.misses += len(batch.missing)
        self.hits += len(batch.texts) - len(batch.missing)

    def _unsaved(self, batch: _Batch, reachable: bool) -> Unsaved:
        """The vectors the model computed for `batch`, encoded for the store (none if it is down)."""
        if not reachable:
            return ()
        return tuple(
            (batch.keys[row], encode_vector(batch.vectors[row], self.dtype))
            for row in batch.missing
        )
