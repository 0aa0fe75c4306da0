"""Auto-pipelining: the GETs that coroutines issue in one event-loop tick go to Redis together.

A service answering many concurrent hits spends most of its Redis time in redis-py's per-command
machinery (take a pooled connection, pack, send, read, give the connection back), not in Redis.
Here a GET joins a batch instead; the batch is sent as one pipeline (no MULTI) on the next loop
iteration, on one connection, and each caller gets its own reply. A lone GET takes the direct path,
so a quiet process pays only one scheduled callback for it.

Replies and errors stay per caller: a failed pipeline fails every caller in it with the same
redis-py error (the store's error boundary translates it), a per-command error fails only its
caller, and a caller that was cancelled is skipped.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio

MAX_BATCH = 512  # commands per pipeline; a bigger tick is split


async def exchange(conn: Any, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """Send commands on a redis-py asyncio connection in one write; one reply each, a command's
    own error reply (ResponseError) standing in its place. The caller owns the connection."""
    return await _exchange_packed(conn, conn.pack_commands(commands), len(commands))


async def _exchange_packed(conn: Any, packed: Any, count: int) -> list[Any]:
    """Send already packed commands; read `count` replies under one deadline for the whole batch
    (the connection's socket timeout), not a timer per reply."""
    await conn.send_packed_command(packed, check_health=False)  # the pool checked it
    try:
        return await asyncio.wait_for(_read_replies(conn, count), conn.socket_timeout)
    except TimeoutError:
        where = getattr(conn, "path", None) or f"{getattr(conn, 'host', '?')}:{conn.port}"
        raise redis.TimeoutError(f"Timeout reading from {where}") from None


async def _read_replies(conn: Any, count: int) -> list[Any]:
    replies: list[Any] = []
    for _ in range(count):
        try:  # math.inf: no timer of its own (the batch has one)
            replies.append(await conn.read_response(timeout=math.inf))
        except redis.ResponseError as exc:
            replies.append(exc)
    return replies


def pack_get(key: str, px: int | None) -> bytes:
    """`GET key` or `GETEX key PX px` in RESP (what redis-py's packer writes for them)."""
    name = key.encode()
    if px is None:
        return b"*2\r\n$3\r\nGET\r\n$%d\r\n%b\r\n" % (len(name), name)
    ms = b"%d" % px
    return b"*4\r\n$5\r\nGETEX\r\n$%d\r\n%b\r\n$2\r\nPX\r\n$%d\r\n%b\r\n" % (
        len(name),
        name,
        len(ms),
        ms,
    )


class GetBatcher:
    """Coalesce `GET key` / `GETEX key PX ms` calls made in the same loop tick into pipelines."""

    def __init__(self, client: redis.asyncio.Redis, max_batch: int = MAX_BATCH) -> None:
        self.client = client
        self.max_batch = max_batch
        self._pending: list[tuple[str, int | None, asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()  # running flushes, kept from the GC
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the pending batch is on
        self.batches = 0  # pipelines sent (a lone GET is not counted): for tests and metrics
        self.batched = 0  # commands that went out in a pipeline

    async def get(self, key: str, px: int | None) -> Any:
        """The reply to GET key (GETEX key PX px when px is given), sent with its tick's batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._pending and self._loop is not loop:
            self._pending = []  # left by an event loop that stopped before sending them
        if not self._pending:
            self._loop = loop
            loop.call_soon(self._flush)
        self._pending.append((key, px, future))
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), self.max_batch):
            task = asyncio.ensure_future(self._send(pending[start : start + self.max_batch]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[str, int | None, asyncio.Future[Any]]]) -> None:
        batch = [item for item in batch if not item[2].done()]  # cancelled callers
        if not batch:
            return
        packed = b"".join([pack_get(key, px) for key, px, _ in batch])
        try:
            replies = await self._roundtrip(packed, len(batch))
        except BaseException as exc:  # every caller gets the failure
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        if len(batch) > 1:
            self.batches += 1
            self.batched += len(batch)
        for (_, _, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _roundtrip(self, packed: bytes, count: int) -> list[Any]:
        """Send the commands in one write on one pooled connection; one reply (or error) each.

        Straight on redis-py's connection (its packing, parser, timeouts, TLS and auth): the
        client's pipeline object adds per-command bookkeeping this hot path does not need.
        A broken pooled connection is reconnected and the batch sent once more (GETs are safe
        to repeat); a timeout is not retried, so a slow store fails within one socket timeout.
        """
        pool = self.client.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            for attempt in (1, 2):
                try:
                    return await _exchange_packed(conn, packed, count)
                except redis.ConnectionError:
                    await conn.disconnect()
                    if attempt == 2:
                        raise
                except BaseException:
                    await conn.disconnect()  # replies may be left unread: never reuse it
                    raise
            raise AssertionError("unreachable")
        finally:
            await pool.release(conn)

    async def aclose(self) -> None:
        """Wait for the batches in flight (their callers are waiting for them anyway)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


AsyncGets = GetBatcher  # the name the async store source uses; its generated twin uses `Gets`


class Gets:
    """The sync face of GetBatcher: threads share no loop tick, so each GET is its own round trip.

    Sent straight on a pooled redis-py connection, as GetBatcher sends its batches: redis-py's
    per-command machinery (command lookup, packing, retry object, observability hooks) costs
    about a third of a loopback GET, and every cache hit pays it."""

    __slots__ = ("client",)

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def get(self, key: str, px: int | None) -> Any:
        """The reply to GET key (GETEX key PX px when px is given). A broken pooled connection
        is reconnected and the GET sent once more (the client's retry rule); a timeout is not."""
        if self.client.connection is not None:  # a single-connection client: its own path
            return self.client.get(key) if px is None else self.client.getex(key, px=px)
        pool = self.client.connection_pool
        conn: Any = pool.get_connection()  # redis-py types its methods loosely
        try:
            packed = [pack_get(key, px)]
            for attempt in (1, 2):
                try:
                    conn.send_packed_command(packed, check_health=False)  # the pool checked it
                    return conn.read_response()
                except redis.ResponseError:  # the reply was read whole: the connection is fine
                    raise
                except redis.ConnectionError:
                    conn.disconnect()
                    if attempt == 2:
                        raise
                except BaseException:
                    conn.disconnect()  # a reply may be left unread: never reuse it as it is
                    raise
            raise AssertionError("unreachable")
        finally:
            pool.release(conn)

    def close(self) -> None:
        return None
