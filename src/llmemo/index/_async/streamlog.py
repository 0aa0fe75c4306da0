"""The Redis ChangeLog: a stream capped with `XADD MAXLEN ~ N`, read with XINFO + XREAD in one MULTI.

The key carries its own hash tag (`{llmemo-index}`), so on a cluster it lives in one known slot.
XINFO's `entries-added` and `length` tell a reader whether trimming took events it never read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmemo.errors import require
from llmemo.index.changelog import READ_BATCH, Position, log_error
from llmemo.index.streams import advance, stream_state

require("redis", "redis")

import redis  # noqa: E402

from llmemo.stores.redis_base import AsyncNoMulti  # noqa: E402


class AsyncRedisStreamLog:
    """A ChangeLog on a Redis stream (any redis-py client: standalone or cluster)."""

    def __init__(self, client: Any, key: str, maxlen: int = 10_000) -> None:
        self.client = client
        self.key = key
        self.maxlen = maxlen
        self._multi = not isinstance(client, AsyncNoMulti)

    async def end(self) -> Position:
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.xinfo_stream(self.key)
            last, added, _ = stream_state((await pipe.execute(raise_on_error=False))[0])
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
            if not self._multi:
                # No MULTI on this client: pipeline XREAD, then XINFO on the stream's one node.
                # XINFO then counts at least what XREAD saw, so a trim is never missed (at worst
                # one is reported that was read).
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
        return advance(after, info, reply)

    async def close(self) -> None:
        """The client belongs to the store."""
