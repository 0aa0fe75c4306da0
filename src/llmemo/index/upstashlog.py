"""The change log over Upstash REST: the same capped stream as `streamlog`, sent as raw commands.

`XADD MAXLEN ~ N` in one pipeline; `XINFO STREAM` + `XREAD` in one MULTI (Upstash's /multi-exec),
read with the client-neutral helpers of `index.streams`. Events are binary, and REST carries JSON,
so each is base64 in the stream.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from llmemo.index.changelog import READ_BATCH, Position, log_error
from llmemo.index.streams import advance, stream_state
from llmemo.stores.upstash_rest import FAILURES as _FAILURES


def _event(value: Any) -> bytes:
    return base64.b64decode(value if isinstance(value, str | bytes) else str(value))


def _missing(exc: BaseException) -> bool:
    return "no such key" in str(exc).lower()


def _no_end(exc: BaseException) -> Position:
    """The end of a stream that XINFO could not describe: none yet, else the error."""
    if _missing(exc):
        return "0-0", 0
    raise log_error("XINFO", exc) from exc


def _no_read(after: Position, exc: BaseException) -> tuple[list[bytes], Position, bool]:
    """A read that failed: no stream means nothing was logged (or all of it is gone)."""
    if _missing(exc):
        return [], after, after[1] == 0
    raise log_error("XREAD", exc) from exc


class _Base:
    def __init__(self, client: Any, key: str, maxlen: int = 10_000) -> None:
        self.client = client
        self.key = key
        self.maxlen = maxlen

    def _adds(self, events: Sequence[bytes]) -> list[list[str]]:
        return [
            [
                "XADD",
                self.key,
                "MAXLEN",
                "~",
                str(self.maxlen),
                "*",
                "e",
                base64.b64encode(e).decode(),
            ]
            for e in events
        ]

    @staticmethod
    def _queue(batch: Any, commands: list[list[str]]) -> Any:
        """A pipeline or MULTI with these raw commands queued."""
        for command in commands:
            batch.execute(command)
        return batch

    def _read_commands(self, after: Position) -> list[list[str]]:
        return [
            ["XINFO", "STREAM", self.key],
            ["XREAD", "COUNT", str(READ_BATCH), "STREAMS", self.key, after[0]],
        ]


class UpstashStreamLog(_Base):
    """A ChangeLog on a stream, for LocalIndexes over an `UpstashStore`."""

    def end(self) -> Position:
        try:
            last, added, _ = stream_state(self.client.execute(["XINFO", "STREAM", self.key]))
        except _FAILURES as exc:
            return _no_end(exc)
        return last, added

    def append(self, events: Sequence[bytes]) -> None:
        if not events:
            return
        try:
            self._queue(self.client.pipeline(), self._adds(events)).exec()
        except _FAILURES as exc:
            raise log_error("XADD", exc) from exc

    def read(self, after: Position) -> tuple[list[bytes], Position, bool]:
        try:
            info, reply = self._queue(self.client.multi(), self._read_commands(after)).exec()
        except _FAILURES as exc:
            return _no_read(after, exc)
        return advance(after, info, reply, _event)

    def close(self) -> None:
        """The client belongs to the store."""


class AsyncUpstashStreamLog(_Base):
    """The asyncio twin, for an `AsyncUpstashStore`."""

    async def end(self) -> Position:
        try:
            last, added, _ = stream_state(await self.client.execute(["XINFO", "STREAM", self.key]))
        except _FAILURES as exc:
            return _no_end(exc)
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
            return _no_read(after, exc)
        return advance(after, info, reply, _event)

    async def close(self) -> None:
        """The client belongs to the store."""
