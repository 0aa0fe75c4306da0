"""A stream on its way from the upstream to the client: passed on as it arrives, collected as it goes.

`Relay` is the `fn` the cache calls on a miss: it opens the upstream stream, hands every event to the
client through a queue, and returns the assembled response only when the stream finished cleanly
(so `AsyncCache.compute` stores nothing else). `RelayResponse` sends the queue to the client and
marks the relay abandoned if the client goes away before the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from llmemo.core.streaming import Shape, StreamCollector, is_usage_chunk
from llmemo.service.errors import ClientGoneError, Flavour, ServiceError, stream_error
from llmemo.service.upstream import Provider, Upstreams, answer_headers

SSE_TYPE = "text/event-stream"


class Relay:
    """One upstream stream relayed to one client; call it (once) to run it."""

    def __init__(
        self,
        upstreams: Upstreams,
        provider: Provider,
        path: str,
        content: bytes,
        headers: Mapping[str, str],
        shape: Shape,
        flavour: Flavour,
        hide_usage: bool,
    ) -> None:
        self.upstreams = upstreams
        self.provider = provider
        self.path = path
        self.content = content
        self.headers = headers
        self.shape = shape
        self.flavour = flavour
        self.hide_usage = hide_usage
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.started: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self.gone = False  # set when the client left before the end of the stream
        self.delivered = False

    async def __call__(self) -> dict[str, Any]:
        response = await self.upstreams.open_stream(
            self.provider, self.path, self.content, self.headers
        )
        passed = answer_headers(response.headers)
        passed.pop("content-type", None)
        self.started.set_result(passed)
        collector = StreamCollector(self.shape)
        try:
            async for chunk in self.upstreams.chunks(self.provider, response):
                if self.gone:
                    raise ClientGoneError("the client disconnected before the end of the stream")
                for frame in collector.feed(chunk):
                    if not (self.hide_usage and is_usage_chunk(frame.json)):
                        self.queue.put_nowait(frame.raw)
            if collector.pending:
                self.queue.put_nowait(collector.pending)
        except ServiceError as exc:
            if not self.gone and not isinstance(exc, ClientGoneError):
                self.queue.put_nowait(stream_error(self.flavour, exc))
            raise
        finally:
            self.queue.put_nowait(None)
            await response.aclose()
        return collector.response()

    async def body(self, done: asyncio.Future[Any]) -> AsyncIterator[bytes]:
        """The client's side: queued events, then the end once `done` (the store) finished."""
        while (item := await self.queue.get()) is not None:
            yield item
        self.delivered = True
        if not done.done():
            await asyncio.wait([done])


class RelayResponse(StreamingResponse):
    """Streams a Relay's queue; a client that leaves early marks the relay gone (nothing stored)."""

    def __init__(self, relay: Relay, done: asyncio.Future[Any], headers: Mapping[str, str]) -> None:
        super().__init__(relay.body(done), headers=headers, media_type=SSE_TYPE)
        self.relay = relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if not self.relay.delivered:
                self.relay.gone = True
