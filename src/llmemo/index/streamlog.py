"""The Redis ChangeLog: a stream capped with `XADD MAXLEN ~ N`, read with XINFO + XREAD in one MULTI.

The key carries its own hash tag (`{llmemo-index}`), so on a cluster it lives in one known slot.
XINFO's `entries-added` and `length` tell a reader whether trimming took events it never read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmemo.errors import require
from llmemo.index.changelog import READ_BATCH, Position, log_error
from llmemo.stores.commands import text

require("redis", "redis")

import redis  # noqa: E402
import redis.asyncio.cluster  # noqa: E402


def _stream_state(info: Any) -> tuple[str, int, int]:
    """(last id, entries added, length) from an XINFO STREAM reply, or a missing stream's."""
    if isinstance(info, Exception):
        if "no such key" in str(info).lower():
            return "0-0", 0, 0
        raise info
    fields = {text(k): v for k, v in info.items()}
    return text(fields["last-generated-id"]), int(fields["entries-added"]), int(fields["length"])


def _stream_events(reply: Any) -> list[tuple[str, bytes]]:
    """(id, event) pairs of an XREAD reply on one stream, in each shape redis-py gives it:
    RESP2 `[[key, [(id, {fields})...]]]`, RESP3 `{key: [[(id, {fields})...]]}`, and the cluster
    client's `{key: [[id, [field, value, ...]]...]}`."""
    if not reply:
        return []
    if isinstance(reply, dict):
        value = next(iter(reply.values()))
        entries = value if value and isinstance(value[0][0], bytes | str) else value[0]
    else:
        entries = reply[0][1]
    out = []
    for entry_id, fields in entries:
        found = (
            fields
            if isinstance(fields, dict)
            else dict(zip(fields[::2], fields[1::2], strict=True))
        )
        out.append((text(entry_id), bytes(found[b"e"])))
    return out


def _advance(after: Position, info: Any, reply: Any) -> tuple[list[bytes], Position, bool]:
    """Apply one XINFO + XREAD snapshot: the events, the new position, and whether none was lost.

    Entries are numbered 1..added; the oldest `added - length` were trimmed. The reader has seen
    the first `after[1]`, so it missed some iff more than that were trimmed.
    """
    _, added, length = _stream_state(info)
    complete = added - length <= after[1]
    pairs = _stream_events(reply)
    if not pairs:
        return [], after, complete
    return [e for _, e in pairs], (pairs[-1][0], after[1] + len(pairs)), complete


class RedisStreamLog:
    """A ChangeLog on a Redis stream (any redis-py client: standalone or cluster)."""

    def __init__(self, client: Any, key: str, maxlen: int = 10_000) -> None:
        self.client = client
        self.key = key
        self.maxlen = maxlen

    def end(self) -> Position:
        try:
            info = self.client.pipeline(transaction=False).xinfo_stream(self.key)
            last, added, _ = _stream_state(info.execute(raise_on_error=False)[0])
        except (redis.RedisError, OSError) as exc:
            raise log_error("XINFO", exc) from exc
        return last, added

    def append(self, events: Sequence[bytes]) -> None:
        try:
            pipe = self.client.pipeline(transaction=False)
            for event in events:
                pipe.xadd(self.key, {"e": event}, maxlen=self.maxlen, approximate=True)
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            raise log_error("XADD", exc) from exc

    def read(self, after: Position) -> tuple[list[bytes], Position, bool]:
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.xinfo_stream(self.key)
            pipe.xread({self.key: after[0]}, count=READ_BATCH)
            info, reply = pipe.execute(raise_on_error=False)
        except (redis.RedisError, OSError) as exc:
            raise log_error("XREAD", exc) from exc
        if isinstance(reply, Exception):
            raise log_error("XREAD", reply)
        return _advance(after, info, reply)

    def close(self) -> None:
        """The client belongs to the store."""


class AsyncRedisStreamLog:
    """The asyncio twin of RedisStreamLog (a redis.asyncio client)."""

    def __init__(self, client: Any, key: str, maxlen: int = 10_000) -> None:
        self.client = client
        self.key = key
        self.maxlen = maxlen

    async def end(self) -> Position:
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.xinfo_stream(self.key)
            last, added, _ = _stream_state((await pipe.execute(raise_on_error=False))[0])
        except (redis.RedisError, OSError) as exc:
            raise log_error("XINFO", exc) from exc
        return last, added

    async def append(self, events: Sequence[bytes]) -> None:
        try:
            pipe = self.client.pipeline(transaction=False)
            for event in events:
                pipe.xadd(self.key, {"e": event}, maxlen=self.maxlen, approximate=True)
            await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            raise log_error("XADD", exc) from exc

    async def read(self, after: Position) -> tuple[list[bytes], Position, bool]:
        try:
            if isinstance(self.client, redis.asyncio.cluster.RedisCluster):
                # redis-py's asyncio cluster MULTI fails (a future on another loop): pipeline
                # XREAD, then XINFO on the stream's one node. XINFO then counts at least what
                # XREAD saw, so a trim is never missed (at worst one is reported that was read).
                pipe = self.client.pipeline(transaction=False)
                pipe.xread({self.key: after[0]}, count=READ_BATCH)
                pipe.xinfo_stream(self.key)
                reply, info = await pipe.execute(raise_on_error=False)
            else:
                pipe = self.client.pipeline(transaction=True)
                pipe.xinfo_stream(self.key)
                pipe.xread({self.key: after[0]}, count=READ_BATCH)
                info, reply = await pipe.execute(raise_on_error=False)
        except (redis.RedisError, OSError) as exc:
            raise log_error("XREAD", exc) from exc
        if isinstance(reply, Exception):
            raise log_error("XREAD", reply)
        return _advance(after, info, reply)

    async def close(self) -> None:
        """The client belongs to the store."""
