"""Erasure of one user's or one tenant's data (`Cache.wipe`): the target, the report, no I/O.

What a wipe deletes and how the other processes learn of it is in docs/privacy.md ("Erasure");
the I/O is written once, in core/_async/erase.py (sync twin generated).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from llmemo.errors import ConfigError

if TYPE_CHECKING:  # numpy comes with llmemo.index: `import llmemo` stays light
    from llmemo.index.base import Dtype

ERASED = "erased"
"""The field of a namespace's meta counters (`keys.meta_key`) that every wipe bumps: a process
that reads it moved drops its in-process copies (`BaseCache.drop_local`)."""
ALL_NAMESPACES = "*"
_DTYPES: dict[str, Dtype] = {"f16": "float16", "f32": "float32"}  # a key's dtype -> its name


@dataclass(frozen=True)
class WipeTarget:
    """Whose data to erase: a user (in every tenant, or in one), or a whole tenant."""

    user: str | None = None
    tenant: str | None = None

    def __post_init__(self) -> None:
        for name, value in (("user", self.user), ("tenant", self.tenant)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"wipe: {name} must be a non-empty string, got {value!r}")
        if self.user is None and self.tenant is None:
            raise ConfigError(
                "wipe needs a user or a tenant (to delete every entry, use invalidate)"
            )


@dataclass(frozen=True)
class WipeReport:
    """What a wipe deleted, per kind: entries (with their stored prompts), vector records,
    embedding-cache rows, warm records, served-hit and wrong-hit records with what feedback and
    verified hits learned of the deleted entries (`feedback`); and how many namespaces were told
    (`ERASED`)."""

    entries: int = 0
    vectors: int = 0
    embeddings: int = 0
    warm: int = 0
    namespaces: int = 0
    feedback: int = 0

    @property
    def deleted(self) -> int:
        """Every record deleted, of every kind."""
        return self.entries + self.vectors + self.embeddings + self.warm + self.feedback

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "deleted": self.deleted}


def entry_of_record(record: str) -> str | None:
    """The entry key a vector record (`{prefix}:~vec…:{dtype}:{dim}:{entry key}`) belongs to."""
    parts = record.split(":", 4)
    return parts[4] if len(parts) == 5 else None


def local_shape(prefix: str, record: str) -> tuple[Dtype, int] | None:
    """(dtype, dim) of a LocalIndex record (`{prefix}:~vec:{f16|f32}:{dim}:…`), None for any
    other key (a RediSearch record's index is `~vec{layout}`)."""
    parts = record.split(":", 4)
    if len(parts) < 5 or parts[0] != prefix or parts[1] != "~vec" or not parts[3].isdigit():
        return None
    dtype = _DTYPES.get(parts[2])
    return None if dtype is None else (dtype, int(parts[3]))


def namespace_of_meta(prefix: str, key: str) -> str | None:
    """The namespace of a meta key (`{prefix}:{namespace}:meta`), None for any other key."""
    head, tail = f"{prefix}:", ":meta"
    if key.startswith(head) and key.endswith(tail):
        name = key[len(head) : -len(tail)]
        if name and ":" not in name:
            return name
    return None


def namespace_of_entry(prefix: str, key: str) -> str | None:
    """The namespace of an entry key (`{prefix}:{namespace}:{version}:x:{sha}`)."""
    parts = key[len(prefix) + 1 :].split(":", 1)
    return parts[0] if key.startswith(f"{prefix}:") and len(parts) == 2 else None
