"""What a wrapped client returns for `stream=True`: the live SDK stream (recorded) or a replay.

Both kinds have the SDK stream's interface: iteration over the SDK's chunk objects, `with`,
`close()`, and (live only) every other attribute of the SDK stream, such as `response`. They are
llmemo objects, not instances of `openai.Stream`/`anthropic.Stream`: building those needs the
SDKs' private internals, which change between releases.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, Generic, TypeVar

from llmemo.core.facade import Hit
from llmemo.integrations.stream_base import AsyncClosing, AsyncDone, async_replay

T = TypeVar("T")


class AsyncCacheStream(AsyncClosing, Generic[T]):
    """A stream of chunk objects; `hit` is the cache entry it replays (None when live)."""

    def __init__(self, items: AsyncIterator[T], live: Any = None, hit: Hit | None = None) -> None:
        self._items = items
        self._live = live
        self.hit = hit

    @classmethod
    def recording(cls, live: Any, on_done: AsyncDone[T] | None = None) -> AsyncCacheStream[T]:
        """Pass `live`'s chunks through; call `on_done(chunks)` when it ends without an error."""
        return cls(_record(live, on_done) if on_done else aiter(live), live)

    @classmethod
    def replaying(cls, chunks: Sequence[T], hit: Hit) -> AsyncCacheStream[T]:
        return cls(async_replay(chunks), None, hit)

    @property
    def cached(self) -> bool:
        return self.hit is not None

    @property
    def response(self) -> Any:
        """The live stream's HTTP response; None for a replay."""
        return None if self._live is None else self._live.response

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        return await anext(self._items)

    async def close(self) -> None:
        """Stop the stream (a live stream that did not finish is not stored)."""
        if isinstance(self._items, AsyncGenerator):
            await self._items.aclose()
        if self._live is not None:
            await self._live.close()

    async def __aenter__(self) -> AsyncCacheStream[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __getattr__(self, name: str) -> Any:
        live = self.__dict__.get("_live")
        if live is None:
            raise AttributeError(f"{type(self).__name__} replaying a cache hit has no {name!r}")
        return getattr(live, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'hit' if self.cached else 'live'}>"


async def _record(live: Any, on_done: AsyncDone[T]) -> AsyncIterator[T]:
    chunks: list[T] = []
    async for chunk in live:
        chunks.append(chunk)
        yield chunk
    await on_done(chunks)  # only reached when the SDK stream ended without raising
