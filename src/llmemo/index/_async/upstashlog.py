"""The change log over Upstash REST: the same capped stream as `streamlog`, sent as raw commands.

`XADD MAXLEN ~ N` in one pipeline; `XINFO STREAM` + `XREAD` in one MULTI (Upstash's /multi-exec),
read with the client-neutral helpers of `index.streams`. Events are binary, and REST carries JSON,
so each is base64 in the stream.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmemo.index.changelog import Position, log_error
from llmemo.index.streams import (
    UpstashLogBase,
    advance,
    no_end,
    no_read,
    stream_event,
    stream_state,
)
from llmemo.stores.upstash_rest import FAILURES as _FAILURES


class AsyncUpstashStreamLog(UpstashLogBase):
    """A ChangeLog on a stream, for LocalIndexes over an `UpstashStore`."""

    async def end(self) -> Position:
        try:
            last, added, _ = stream_state(await self.client.execute(["XINFO", "STREAM", self.key]))
        except _FAILURES as exc:
            return no_end(exc)
        return last, added

    async def append(self, events: Sequence[bytes]) -> None:
        if not events:
            return
        try:
            await self._queue(self.client.pipeline(), self._adds(events)).exec()
        except _FAILURES as exc:
            raise log_error("XADD", exc) from exc

    async def read(self, after: Position) -> tuple[list[bytes], Position, bool]:
        try:
            info, reply = await self._queue(self.client.multi(), self._read_commands(after)).exec()
        except _FAILURES as exc:
            return no_read(after, exc)
        return advance(after, info, reply, stream_event)

    async def close(self) -> None:
        """The client belongs to the store."""
