"""Reading a capped Redis stream used as a change log, whatever client delivered the replies:
redis-py (RESP2, RESP3, the cluster client) or the Upstash REST SDK; and the raw commands the
Upstash change log sends. No client is imported here.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

from llmemo.index.changelog import READ_BATCH, Position, log_error
from llmemo.stores.commands import text


def stream_state(info: Any) -> tuple[str, int, int]:
    """(last id, entries added, length) from an XINFO STREAM reply, or a missing stream's."""
    if isinstance(info, Exception):
        if "no such key" in str(info).lower():
            return "0-0", 0, 0
        raise info
    pairs = info.items() if isinstance(info, dict) else zip(info[::2], info[1::2], strict=True)
    fields = {text(k): v for k, v in pairs}
    return text(fields["last-generated-id"]), int(fields["entries-added"]), int(fields["length"])


def stream_events(reply: Any, event: Callable[[Any], bytes] = bytes) -> list[tuple[str, bytes]]:
    """(id, event) pairs of an XREAD reply on one stream, in each shape redis-py gives it:
    RESP2 `[[key, [(id, {fields})...]]]`, RESP3 `{key: [[(id, {fields})...]]}`, the cluster
    client's `{key: [[id, [field, value, ...]]...]}` (and Upstash REST's, as RESP2 with flat
    fields). `event` turns the `e` field's value into the event's bytes."""
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
        value = found[b"e"] if b"e" in found else found["e"]
        out.append((text(entry_id), event(value)))
    return out


def advance(
    after: Position, info: Any, reply: Any, event: Callable[[Any], bytes] = bytes
) -> tuple[list[bytes], Position, bool]:
    """Apply one XINFO + XREAD snapshot: the events, the new position, and whether none was lost.

    Entries are numbered 1..added; the oldest `added - length` were trimmed. The reader has seen
    the first `after[1]`, so it missed some iff more than that were trimmed.
    """
    _, added, length = stream_state(info)
    complete = added - length <= after[1]
    pairs = stream_events(reply, event)
    if not pairs:
        return [], after, complete
    return [e for _, e in pairs], (pairs[-1][0], after[1] + len(pairs)), complete


def stream_event(value: Any) -> bytes:
    return base64.b64decode(value if isinstance(value, str | bytes) else str(value))


def _missing(exc: BaseException) -> bool:
    return "no such key" in str(exc).lower()


def no_end(exc: BaseException) -> Position:
    """The end of a stream that XINFO could not describe: none yet, else the error."""
    if _missing(exc):
        return "0-0", 0
    raise log_error("XINFO", exc) from exc


def no_read(after: Position, exc: BaseException) -> tuple[list[bytes], Position, bool]:
    """A read that failed: no stream means nothing was logged (or all of it is gone)."""
    if _missing(exc):
        return [], after, after[1] == 0
    raise log_error("XREAD", exc) from exc


class UpstashLogBase:
    """The raw commands of the Upstash change log (both faces send the same)."""

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
