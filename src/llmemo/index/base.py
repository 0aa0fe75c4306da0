"""The VectorIndex protocol, its asyncio twin, and the values they exchange.

One similarity scale everywhere: cosine similarity in [0, 1], where 1.0 is the same direction and
0.0 is orthogonal or opposite (negative cosines are clamped to 0). Backends convert their own
distance to it in one pure function (`similarity_from_cosine_distance`), never the caller.

A search is PRE-filtered by its `IndexScope`: only vectors added under an equal scope are
candidates, so a match from another namespace, version, tenant, context or embedding model is
impossible (not merely filtered out of the top k afterwards, which could return fewer matches).
The caller applies its threshold; `min_similarity` only lets a backend stop early.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from llmemo.errors import ConfigError, StoreError, require
from llmemo.stores import keys

require("numpy", "semantic")

import numpy as np  # noqa: E402  (after the one-line hint for a missing extra)
import numpy.typing as npt  # noqa: E402

from llmemo.index._async.protocol import AsyncVectorIndex as AsyncVectorIndex  # noqa: E402
from llmemo.index._sync.protocol import VectorIndex as VectorIndex  # noqa: E402

Vector: TypeAlias = npt.NDArray[np.float32]
"""A (dim,) float32 vector; indexes normalise it to unit length (a zero vector never matches)."""

Dtype = Literal["float16", "float32"]
"""How vectors are kept: float16 halves their memory and moves similarities by < 1e-3."""

NO_TENANT = "~"
"""The tag stored for `tenant=None`; `tag_token` never produces it for a real tenant."""

_NUMPY: dict[str, type[np.floating[Any]]] = {"float16": np.float16, "float32": np.float32}
_SHORT = {"float16": "f16", "float32": "f32"}
_SAFE_TAG = re.compile(r"[A-Za-z0-9_.\-]")
_NAMESPACE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class VectorIndexError(StoreError):
    """A vector index failed (server unreachable, refused, timed out): the cache fails open on it,
    as on any StoreError. An index that exists with another schema is a ConfigError instead."""


@dataclass(frozen=True)
class IndexScope:
    """Which vectors may match: all five fields must be equal (a pre-filter, never a post-filter).

    namespace and version are the cache's; tenant is None when answers are shared; fingerprint is
    `context_fingerprint(request, scope)` (LLM model, system prompt, earlier turns, parameters);
    model names the EMBEDDING model (e.g. "minilm:all-MiniLM-L6-v2"), because vectors of two
    embedders are not comparable even when their dimensions agree.
    """

    namespace: str
    version: int
    tenant: str | None
    fingerprint: str
    model: str

    def __post_init__(self) -> None:
        if not isinstance(self.namespace, str) or not _NAMESPACE.match(self.namespace):
            raise ConfigError(f"invalid index namespace {self.namespace!r}")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 0:
            raise ConfigError(f"index version must be an int >= 0, got {self.version!r}")
        for name in ("tenant", "fingerprint", "model"):
            value = getattr(self, name)
            if value is None and name == "tenant":
                continue
            if not isinstance(value, str) or not value:
                raise ConfigError(f"index scope {name} must be a non-empty string, got {value!r}")

    def tags(self) -> dict[str, str]:
        """The scope as tag values (field name -> token), each safe for a RediSearch TAG field."""
        return {
            "ns": self.namespace,
            "ver": str(self.version),
            "tenant": tag_token(self.tenant),
            "fp": tag_token(self.fingerprint),
            "model": tag_token(self.model),
        }

    def digest(self) -> str:
        """A short stable id of the scope (names a local sub-index; equal iff the scopes are)."""
        joined = "\x00".join(self.tags().values()).encode()
        return hashlib.blake2b(joined, digest_size=16).hexdigest()


def tag_token(value: str | None) -> str:
    """An injective encoding into [A-Za-z0-9_.%-]: other bytes become %XX; None becomes `NO_TENANT`.

    RediSearch splits TAG values on a separator and folds case unless told otherwise; this encoding
    keeps every value one exact token whatever the caller put in it.
    """
    if value is None:
        return NO_TENANT
    if all(_SAFE_TAG.match(c) for c in value):
        return value
    return "".join(
        c if _SAFE_TAG.match(c) else "".join(f"%{b:02X}" for b in c.encode()) for c in value
    )


def similarity_from_cosine_distance(distance: float) -> float:
    """Cosine distance (1 - cos, in [0, 2]) to similarity in [0, 1]; NaN (zero vector) is 0."""
    if math.isnan(distance):
        return 0.0
    return min(1.0, max(0.0, 1.0 - distance))


def cosine_distance_from_similarity(similarity: float) -> float:
    """The inverse of `similarity_from_cosine_distance` on [0, 1] (for range cut-offs)."""
    check_similarity(similarity)
    return 1.0 - similarity


def check_similarity(value: float) -> float:
    """`value` if it is a similarity in [0, 1]; ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"similarity must be a number in [0, 1], got {value!r}")
    return float(value)


def unit(vector: npt.ArrayLike, dim: int) -> Vector:
    """`vector` as a contiguous unit float32 (dim,) array; ConfigError if its shape is wrong."""
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.shape != (dim,):
        raise ConfigError(f"expected a vector of dimension {dim}, got shape {array.shape}")
    norm = float(np.linalg.norm(array))
    if not math.isfinite(norm) or norm == 0.0:
        return np.zeros(dim, dtype=np.float32)
    return np.ascontiguousarray(array / norm, dtype=np.float32)


def index_name(prefix: str, dim: int, dtype: Dtype) -> str:
    """`{prefix}:~vec:{f16|f32}:{dim}`: one index per vector shape ('~' is no namespace's)."""
    if not prefix or "{" in prefix or "}" in prefix:
        raise ConfigError(f"index prefix {prefix!r} must be non-empty and without braces")
    if dtype not in _SHORT:
        raise ConfigError(f"vector dtype must be one of {sorted(_SHORT)}, got {dtype!r}")
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= 32768:
        raise ConfigError(f"vector dim must be an int in [1, 32768], got {dim!r}")
    return keys.vector_index(prefix, dtype, dim)


def log_key(prefix: str, dim: int, dtype: Dtype) -> str:
    """`{prefix}:~vlog:{f16|f32}:{dim}:{llmemo-index}`: the change log of LocalIndexes of that shape."""
    index_name(prefix, dim, dtype)  # validates
    return keys.vector_log(prefix, dtype, dim)


def record_key(name: str, key: str) -> str:
    """The hash of `key`'s vector: `{name}:{key}` (the entry's hash tag is the first one in it)."""
    return keys.vector_record(name, key)


def entry_key(name: str, record: str) -> str:
    """The inverse of `record_key`."""
    return keys.record_entry(name, record)


def vector_bytes(vector: npt.ArrayLike, dim: int, dtype: Dtype) -> bytes | None:
    """The unit vector as little-endian bytes of `dtype`; None for a zero vector (no direction)."""
    v = unit(vector, dim)
    if not v.any():
        return None
    return v.astype(np.dtype(_NUMPY[dtype]).newbyteorder("<")).tobytes()


@dataclass(frozen=True)
class IndexItem:
    """One vector to index under `key` (the entry's store key, e.g. its exact key).

    payload is the encoded entry, which the caller also stores at `key`: a backend may return the
    entry with its search (RediSearchIndex reads it at `key` in the same round trip, without a
    copy); others leave it to the caller, who GETs `key`. ttl (seconds) should be the entry's,
    so the vector never outlives the answer; None means no expiry.
    """

    key: str
    vector: Vector = field(repr=False)
    scope: IndexScope
    payload: bytes | None = field(default=None, repr=False)
    ttl: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ConfigError(f"index item key must be a non-empty string, got {self.key!r}")
        if self.ttl is not None and not self.ttl > 0:
            raise ConfigError(f"index item ttl must be > 0 seconds or None, got {self.ttl!r}")


@dataclass(frozen=True)
class Match:
    """A neighbour: the entry's key, its similarity in [0, 1], and the entry bytes when the backend
    returned them in the same query (None: fetch `key` from the store; it may have expired)."""

    key: str
    similarity: float
    payload: bytes | None = field(default=None, repr=False)


def check_k(k: int) -> int:
    """`k` if it is a positive int; ConfigError otherwise."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be an int >= 1, got {k!r}")
    return k
