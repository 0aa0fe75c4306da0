"""The command shapes both cluster twins send: UNLINK per slot, GETRANGE/EXISTS and counters
pipelined (one round trip per node), SCAN on every primary, and the `maxmemory-policy` warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from llmemo.errors import require
from llmemo.stores.protocol import Counters

require("redis", "redis")

from redis.crc import key_slot  # noqa: E402

from llmemo.stores.commands import (  # noqa: E402
    DELETE_IF_EQUAL,
    EXPIRE_IF_EQUAL,
    SWAP_IF_EQUAL,
    batches,
    text,
    unseen,
)
from llmemo.stores.redis_base import UNLINK_BATCH as _UNLINK_BATCH  # noqa: E402

# The policies under which a full server refuses writes instead of making room.
_NON_EVICTING = frozenset({"noeviction"})
_warned: set[str] = set()  # clusters (redacted URL) already warned about, once per process
log = logging.getLogger("llmemo.stores")


def _any(client: object) -> Any:
    """A cluster client seen untyped: its multi-node replies differ from the stubs' shapes."""
    return client


def _pipeline(client: Any) -> Any:
    """A non-transactional cluster pipeline: commands are grouped per node, one round trip each."""
    return client.pipeline(transaction=False)


async def async_primaries(client: Any) -> list[Any]:
    """Async: the primaries, once the slot map is loaded (the async client loads it lazily)."""
    await client.initialize()
    return list(client.get_primaries())


def primaries(client: Any) -> list[Any]:
    """Sync: the primaries (the sync client loaded the slot map when it was built)."""
    return list(client.get_primaries())


def _scripts(client: Any) -> tuple[Any, Any]:
    """The lease scripts (delete_if_equal, expire_if_equal), registered on a cluster client."""
    return client.register_script(DELETE_IF_EQUAL), client.register_script(EXPIRE_IF_EQUAL)


def _slot_groups(keys: Iterable[str]) -> list[list[str]]:
    """Keys grouped by cluster slot (first-seen order): one UNLINK per group cannot CROSSSLOT."""
    groups: dict[int, list[str]] = {}
    for key in keys:
        groups.setdefault(key_slot(key.encode()), []).append(key)
    return list(groups.values())


def _queue_unlinks(pipe: Any, keys: Sequence[str]) -> None:
    for group in _slot_groups(keys):
        for batch in batches(group, _UNLINK_BATCH):
            pipe.execute_command("UNLINK", *batch)


def _queue_heads(pipe: Any, keys: Sequence[str], size: int) -> None:
    for key in keys:
        if size > 0:
            pipe.getrange(key, 0, size - 1)
        pipe.exists(key)


def _queue_incr(pipe: Any, key: str, amounts: Counters) -> None:
    for name, amount in amounts.items():  # HINCRBYFLOAT for ints too, as RedisStore does
        pipe.hincrbyfloat(key, name, amount)


def _policy_warning(replies: Any, url: str) -> None:
    """Warn once per cluster when a primary's `maxmemory-policy` never evicts."""
    if url in _warned or not isinstance(replies, Mapping):
        return
    for node, reply in replies.items():
        values = {text(k): text(v) for k, v in dict(reply).items()}
        policy = values.get("maxmemory-policy")
        if policy in _NON_EVICTING:
            _warned.add(url)
            log.warning(
                "Redis Cluster %s: node %s has maxmemory-policy %s, so a full node refuses new "
                "entries (llmemo then answers from upstream without caching); set allkeys-lru "
                "or volatile-lru",
                url,
                text(node),
                policy,
            )
            return


class _PrimaryScan:
    """Where a SCAN of every primary in turn has got to (the key space is split between them)."""

    def __init__(self, primaries: Iterable[Any], pattern: str, count: int) -> None:
        self._nodes = iter(primaries)
        self.node: Any = next(self._nodes, None)  # None: every primary is done
        self.cursor = 0
        self.options: dict[str, Any] = {"match": pattern, "count": count}
        self._seen: set[str] = set()

    def page(self, reply: Any) -> list[str]:
        """The new keys of one SCAN reply; moves on to the next primary when this one is done."""
        cursors, found = reply
        self.cursor = cursors[self.node.name]
        if self.cursor == 0:
            self.node = next(self._nodes, None)
        return unseen(found, self._seen)


def _swap_script(client: Any) -> Any:
    """The swap script (llmemo rekey), registered on a cluster client."""
    return client.register_script(SWAP_IF_EQUAL)


def _page_start(primaries: Iterable[Any], cursor: str) -> tuple[list[Any], int, int]:
    """(primaries by name, which one, its SCAN cursor) a `scan_page` cursor continues from.

    The cursor is `host:port/cursor`; a node no longer a primary (failover, resharding) starts
    the walk again from the first one: keys may come up twice, none is missed.
    """
    nodes = sorted(primaries, key=lambda node: str(node.name))
    name, _, at = cursor.rpartition("/")
    names = [str(node.name) for node in nodes]
    if name in names and at.isdigit():
        return nodes, names.index(name), int(at)
    return nodes, 0, 0


def _page_end(nodes: Sequence[Any], index: int, reply: Any) -> tuple[str, list[str]]:
    """The cursor after one SCAN page on `nodes[index]` ("" after the last primary), its keys."""
    cursors, found = reply
    after = int(cursors[nodes[index].name])
    keys = list(dict.fromkeys(map(text, found)))
    if after:
        return f"{nodes[index].name}/{after}", keys
    if index + 1 < len(nodes):
        return f"{nodes[index + 1].name}/0", keys
    return "", keys


def _floats(names: Iterable[str], replies: Iterable[Any]) -> dict[str, float]:
    """Counter values by name, from replies in the same order."""
    return {name: float(value) for name, value in zip(names, replies, strict=True)}


def _counters(found: Mapping[Any, Any]) -> dict[str, float]:
    """An HGETALL reply as counter values by name."""
    return {text(name): float(value) for name, value in found.items()}
