"""Command shapes every Redis-speaking store shares (redis-py, Redis Cluster, Upstash REST).

No client library is imported here, so the Upstash store (which does not install redis-py) and the
redis-py stores use the same scripts and helpers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# Release a lock / extend a lease only while it still holds the caller's token.
DELETE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
EXPIRE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# Rewrite a value in place (llmemo rekey) only while it is unchanged, its remaining TTL kept.
SWAP_IF_EQUAL = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -1 then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', math.max(ttl, 1))
end
return 1
"""


def ms(seconds: float) -> int:
    """A TTL in whole milliseconds; at least 1 because Redis refuses PX 0."""
    return max(1, round(seconds * 1000))


def batches(keys: Sequence[str], size: int) -> list[Sequence[str]]:
    """Keys in runs of at most `size` (one UNLINK each)."""
    return [keys[i : i + size] for i in range(0, len(keys), size)]


def text(value: object) -> str:
    """A reply value as text (bytes decoded; numbers and the like through str)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def scan_cursor(cursor: str) -> int:
    """The SCAN cursor a `scan_page` cursor continues from (0, the start, for anything else)."""
    return int(cursor) if cursor.isdigit() else 0


def page_cursor(cursor: int) -> str:
    """A SCAN reply's cursor as `scan_page` returns it ("" once the scan is done)."""
    return "" if int(cursor) == 0 else str(int(cursor))


def unseen(found: Iterable[bytes | str], seen: set[str]) -> list[str]:
    """Keys of one SCAN reply not yielded before (SCAN may repeat a key while Redis rehashes)."""
    batch = [k for k in dict.fromkeys(map(text, found)) if k not in seen]
    seen.update(batch)
    return batch
