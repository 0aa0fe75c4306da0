"""Feedback on semantic hits, without I/O: the served-hit log's records, wrong-hit reports, the
similarity floor a report puts on the matched entry, and the log's limits.

Every served semantic hit leaves a record in its namespace's capped, expiring log (store key
`keys.hits_log`), written with the hit's backfill in one round trip. Reporting a hit as wrong
(`AsyncCache.report_wrong_hit`) deletes the backfilled key, keeps the record as a labelled
negative example (`keys.wrong_log`), and gives the matched entry a floor (`keys.floor_key`): a
query must be more similar than the reported one for that entry to answer it, so the same query
never gets that answer again. The I/O is in core/_async/feedback.py (sync twin generated).

The texts of a record (the query and the matched prompt) are kept only when the matched entry
stores its prompt, and are sealed with the cache's encryption keys when it has some (AES-GCM,
bound to the record's key, like entries: core/crypto.py).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from llmemo.errors import ConfigError, UndecryptableError

if TYPE_CHECKING:
    from llmemo.core.crypto import Keyring

HIT_LOG_SIZE = 1000
"""Served semantic hits kept per namespace (the newest; 0 turns the log off)."""
HIT_LOG_TTL = 7 * 86400.0
"""Seconds a served-hit record is kept (a log idle this long is gone)."""
REPORT_LOG_SIZE = 1000
"""Wrong-hit reports kept per namespace (the newest)."""
REPORT_LOG_TTL = 90 * 86400.0
"""Seconds a wrong-hit report, and the floor it sets on the matched entry, are kept."""
FLOOR_MARGIN = 1e-3
"""A query as similar as the reported one, to this margin, is refused by the floor: the same text's
similarity moves by about 1e-5 between a fresh vector and one read back from the embedding cache
(float16), so the same query is caught whichever vector it gets."""
_AAD = b"llmemo-feedback\x00"


@dataclass(frozen=True)
class FeedbackLimits:
    """The bounds of the served-hit log and the wrong-hit reports (per namespace)."""

    hits: int = HIT_LOG_SIZE
    hits_ttl: float = HIT_LOG_TTL
    reports: int = REPORT_LOG_SIZE
    reports_ttl: float = REPORT_LOG_TTL

    def __post_init__(self) -> None:
        for name in ("hits", "reports"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"feedback {name} must be an int >= 0, got {value!r}")
        for name in ("hits_ttl", "reports_ttl"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"feedback {name} must be seconds > 0, got {value!r}")


@dataclass(frozen=True)
class ServedHit:
    """One served semantic hit: `key` is the exact key it was backfilled under (the key to
    report), `matched_key` the entry that answered; `query`/`matched` are None unless kept."""

    at: float
    namespace: str
    model: str | None
    similarity: float
    key: str
    matched_key: str
    tenant: str | None = None
    user: str | None = None
    query: str | None = None
    matched: str | None = None

    def as_dict(self, texts: bool = True) -> dict[str, Any]:
        """The JSON shape of `GET /admin/semantic-hits` (texts None unless `texts`)."""
        return {
            "at": self.at,
            "namespace": self.namespace,
            "model": self.model,
            "similarity": round(self.similarity, 6),
            "key": self.key,
            "matched_key": self.matched_key,
            "query": self.query if texts else None,
            "matched": self.matched if texts else None,
        }


@dataclass(frozen=True)
class WrongHit:
    """A wrong-hit report: the served hit it names (None when the log no longer held it)."""

    at: float
    key: str
    namespace: str
    hit: ServedHit | None
    note: str | None = None

    def as_dict(self, texts: bool = True) -> dict[str, Any]:
        return {
            "at": self.at,
            "key": self.key,
            "namespace": self.namespace,
            "note": self.note,
            "hit": None if self.hit is None else self.hit.as_dict(texts),
        }


@dataclass(frozen=True)
class Reported:
    """What `report_wrong_hit` did: keys deleted, whether the served hit was found in the log and
    kept as a negative example, and the floor the matched entry has now (None: none set)."""

    key: str
    deleted: int
    recorded: bool
    matched_key: str | None = None
    similarity: float | None = None
    floor: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "deleted": self.deleted,
            "recorded": self.recorded,
            "matched_key": self.matched_key,
            "similarity": self.similarity,
            "floor": self.floor,
        }


def _seal(text: str | None, key: str, keyring: Keyring | None) -> Any:
    if text is None or keyring is None:
        return text
    sealed = keyring.seal(text.encode(), _AAD + key.encode())
    return [keyring.current, base64.b64encode(sealed).decode("ascii")]


def _open(value: Any, key: str, keyring: Keyring | None) -> str | None:
    """A kept text, opened; None when it is sealed with a key this cache does not have."""
    if value is None or isinstance(value, str):
        return value
    if keyring is None or not isinstance(value, list) or len(value) != 2:
        return None
    try:
        plain = keyring.open(str(value[0]), base64.b64decode(value[1]), _AAD + key.encode())
    except (UndecryptableError, binascii.Error, ValueError, TypeError):
        return None
    return plain.decode(errors="replace")


def encode_hit(hit: ServedHit, keyring: Keyring | None) -> bytes:
    """A served hit's log record (JSON; texts sealed when there are keys)."""
    return orjson.dumps(_hit_doc(hit, keyring))


def _hit_doc(hit: ServedHit, keyring: Keyring | None) -> dict[str, Any]:
    return {
        "at": hit.at,
        "ns": hit.namespace,
        "model": hit.model,
        "sim": hit.similarity,
        "key": hit.key,
        "matched": hit.matched_key,
        "tenant": hit.tenant,
        "user": hit.user,
        "q": _seal(hit.query, hit.key, keyring),
        "p": _seal(hit.matched, hit.key, keyring),
    }


def _hit_of(doc: Any, keyring: Keyring | None) -> ServedHit | None:
    if not isinstance(doc, dict):
        return None
    try:
        key = str(doc["key"])
        return ServedHit(
            at=float(doc["at"]),
            namespace=str(doc["ns"]),
            model=None if doc.get("model") is None else str(doc["model"]),
            similarity=float(doc["sim"]),
            key=key,
            matched_key=str(doc["matched"]),
            tenant=None if doc.get("tenant") is None else str(doc["tenant"]),
            user=None if doc.get("user") is None else str(doc["user"]),
            query=_open(doc.get("q"), key, keyring),
            matched=_open(doc.get("p"), key, keyring),
        )
    except (KeyError, TypeError, ValueError):
        return None


def decode_hit(data: bytes, keyring: Keyring | None) -> ServedHit | None:
    """A log record's served hit; None for a record that is not one (skipped by readers)."""
    try:
        return _hit_of(orjson.loads(data), keyring)
    except orjson.JSONDecodeError:
        return None


def encode_report(report: WrongHit, keyring: Keyring | None) -> bytes:
    """A wrong-hit report's record (the served hit's record inside)."""
    return orjson.dumps(
        {
            "at": report.at,
            "key": report.key,
            "ns": report.namespace,
            "note": _seal(report.note, report.key, keyring),
            "hit": None if report.hit is None else _hit_doc(report.hit, keyring),
        }
    )


def decode_report(data: bytes, keyring: Keyring | None) -> WrongHit | None:
    """A report record's WrongHit; None for a record that is not one."""
    try:
        doc = orjson.loads(data)
        key = str(doc["key"])
        return WrongHit(
            at=float(doc["at"]),
            key=key,
            namespace=str(doc["ns"]),
            hit=_hit_of(doc.get("hit"), keyring),
            note=_open(doc.get("note"), key, keyring),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def namespace_of_key(prefix: str, key: str) -> str:
    """The namespace of an exact entry key (`{prefix}:{namespace}:{version}:x:{sha}`);
    ConfigError for anything else (before any I/O)."""
    head = f"{prefix}:"
    parts = key[len(head) :].split(":", 3) if key.startswith(head) else []
    if len(parts) != 4 or not parts[1].isdigit() or parts[2] != "x" or not parts[3]:
        raise ConfigError(
            f"{key!r} is not an entry key of this cache ({prefix}:NAMESPACE:VERSION:x:{{SHA}}); "
            "report the key a semantic hit was served under (x-llmemo-key, semantic_hits())"
        )
    return parts[0]


def floor_bytes(similarity: float) -> bytes:
    return repr(float(similarity)).encode()


def parse_floor(data: bytes | None) -> float | None:
    """A stored floor (None: none, or unreadable: a floor never blocks by mistake)."""
    if data is None:
        return None
    try:
        return float(data)
    except ValueError:
        return None


def below_floor(similarity: float, floor: float | None) -> bool:
    """Is a candidate this similar refused by its entry's floor?"""
    return floor is not None and similarity <= floor + FLOOR_MARGIN


def newest_first(items: list[Any], limit: int) -> list[Any]:
    """Records of several logs merged, newest first, at most `limit`."""
    return sorted(items, key=lambda item: item.at, reverse=True)[: max(0, limit)]


def matches(
    hit: ServedHit | None,
    key: str | None,
    tenant: str | None,
    user: str | None,
) -> bool:
    """Does a record belong to what `forget` was asked to erase (every given field equal)?"""
    if hit is None:
        return False
    return (
        (key is None or key in (hit.key, hit.matched_key))
        and (tenant is None or hit.tenant == tenant)
        and (user is None or hit.user == user)
    )
