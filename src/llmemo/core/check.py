"""What `Cache.check()` reports, and the decisions it makes on what a store says about itself.

The I/O is in `core/_async/check.py` (and its generated sync twin); this module is pure.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Policies under which a full Redis evicts cached entries to make room; any other one
# (`noeviction`, `*-random`, `volatile-ttl`) refuses writes or evicts blindly.
GOOD_EVICTION = frozenset({"allkeys-lru", "allkeys-lfu", "volatile-lru", "volatile-lfu"})


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What `Cache.check()` found. `ok` says whether the store works: a probe key was written,
    read back and deleted. The rest is set when the store can say it (Redis)."""

    store: str
    """The store's URL, any password redacted."""
    ok: bool
    reachable: bool
    """The store answered PING."""
    latency_ms: float | None = None
    """One round trip (PING), in milliseconds."""
    error: str | None = None
    """Why the store does not work (the first step that failed)."""
    server: str | None = None
    """The server and its version, e.g. "redis 7.2.4"."""
    search: bool | None = None
    """The RediSearch module is loaded (vector search in Redis); None when unknown."""
    eviction: str | None = None
    """Redis `maxmemory-policy`."""
    semantic: str | None = None
    """The cache's embedder: what loaded, or why it did not; None without a semantic layer."""
    semantic_ok: bool | None = None
    warnings: tuple[str, ...] = field(default=())
    """Things that work but will hurt: a policy that never evicts, a slow round trip."""

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def eviction_warning(policy: str | None) -> str | None:
    """Why a `maxmemory-policy` is wrong for a cache, or None when it is fine (or unknown)."""
    if policy is None or policy in GOOD_EVICTION:
        return None
    if policy == "noeviction":
        return (
            "maxmemory-policy is noeviction: a full Redis refuses new entries (the cache then "
            "stops storing); set allkeys-lru or allkeys-lfu"
        )
    return (
        f"maxmemory-policy is {policy}: a full Redis evicts without regard to use; "
        "set allkeys-lru or allkeys-lfu"
    )


def text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def one_node(reply: Any) -> Mapping[Any, Any]:
    """A cluster client answers INFO / CONFIG GET per node: the first node's answer; a plain
    client's answer as it is."""
    if isinstance(reply, Mapping) and reply and all(isinstance(v, Mapping) for v in reply.values()):
        return next(iter(reply.values()))
    return reply if isinstance(reply, Mapping) else {}


def has_search(modules: Sequence[Any]) -> bool:
    """Is RediSearch among the MODULE LIST entries (named "search" or "ft")?"""
    names = set()
    for module in modules:
        if isinstance(module, Mapping):
            values = {text(k): v for k, v in module.items()}
            names.add(text(values.get("name", "")).lower())
    return bool(names & {"search", "ft", "searchlight"})


def server_name(info: Mapping[Any, Any]) -> str | None:
    values = {text(k): v for k, v in info.items()}
    version = values.get("redis_version")
    if version is None:
        return None
    flavour = "valkey" if "valkey_version" in values else "redis"
    return f"{flavour} {text(values.get('valkey_version', version))}"


class Stopwatch:
    """Milliseconds since it was made."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def ms(self) -> float:
        return round((time.perf_counter() - self.start) * 1000, 3)
