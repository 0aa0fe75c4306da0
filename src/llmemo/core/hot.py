"""Kept answers: a hit's response as finished JSON bytes, served again while its entry is unchanged.

A caller that answers the same request again and again (the service's hot answers) keeps the
bytes `AsyncCache.answer_bytes` made of an entry (or `AsyncCache.kept_answer`, of a hit it has just
answered), with the stored value they were made from. Each
use asks `AsyncCache.still_current` whether a lookup would read that same value now (the near
cache, else the store, a rolling TTL renewed), byte for byte, and not past its soft TTL; then
`AsyncCache.count_served` counts the use as the hit it is. What a use skips is decoding the
entry and encoding the answer. This module holds the decisions, without I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from llmemo.core import entry as entries
from llmemo.core.facade import Call, Hit, decode_hit
from llmemo.errors import CorruptEntryError

if TYPE_CHECKING:
    from llmemo.core.crypto import Keyring


@dataclass(slots=True)
class HotAnswer:
    """A hit's answer as bytes, and the entry behind it."""

    call: Call  # what a lookup of the request prepares
    value: bytes  # the stored value it was made from
    body: bytes  # the response's JSON
    hit: Hit  # the hit it was made from (created, ttl, usage, model)
    stale_after: float | None  # the entry's soft TTL, if it has one
    counts: tuple[tuple[str, float], ...]  # what one use adds to the cache's stats


def decode_answer(
    key: str, value: bytes, now: float, keyring: Keyring | None = None
) -> tuple[Hit, float | None, bytes] | None:
    """(hit, soft TTL, response JSON) of a stored value read at `now`; None when unreadable
    (a lookup then counts it) or stale (a stale entry is left to a lookup)."""
    try:
        head, doc = entries.decode_parts(value, key, keyring)
        hit = decode_hit(head, doc, key, now)
        stale_after = entries.stale_after(head)
    except (CorruptEntryError, TypeError, ValueError):
        return None
    if hit.stale:
        return None
    return hit, stale_after, orjson.dumps(hit.response)


def kept(
    call: Call, hit: Hit, value: bytes, body: bytes, counts: tuple[tuple[str, float], ...]
) -> HotAnswer | None:
    """The kept answer of a hit just served (`value`: the stored value it was read from, `body`:
    its response's JSON); None when it is stale or its header cannot be read."""
    if hit.stale:
        return None
    try:
        stale_after = entries.soft_ttl(value)
    except CorruptEntryError:
        return None
    return HotAnswer(call, value, body, hit, stale_after, counts)


def is_current(answer: HotAnswer, value: bytes, now: float) -> bool:
    """Is `value` (what a lookup would read now) the one `answer` was made of, not yet stale?"""
    if value is not answer.value and value != answer.value:
        return False
    return answer.stale_after is None or now < answer.stale_after


def near_lifetime(answer: HotAnswer, now: float) -> float | None:
    """What the entry behind `answer` has left (None: no expiry), for the near cache."""
    hit = answer.hit
    return None if hit.ttl is None else hit.ttl - (now - hit.created)


def age(answer: HotAnswer, now: float) -> float:
    """Seconds since the entry was stored (the `Age` of an answer)."""
    return max(0.0, now - answer.hit.created)
