"""What the two cache streams do differently, behind one name each: the `on_done` callback's type,
iterating a replay's chunks, and `aclose()`, which only async streams have."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar, cast

T = TypeVar("T")

AsyncDone = Callable[[list[T]], Awaitable[object]]
"""Awaited with every chunk once a recorded stream ends without an error."""
Done = Callable[[list[T]], object]
"""Called with every chunk once a recorded stream ends without an error."""


class AsyncClosing:
    """`aclose()`, as async iterators have it: the same as `close()`."""

    async def aclose(self) -> None:
        await cast(Any, self).close()


class Closing:
    """A sync stream has `close()` only."""


async def async_replay(chunks: Sequence[T]) -> AsyncIterator[T]:
    """The chunks of a cache hit, as an async iterator."""
    for chunk in chunks:
        yield chunk


def replay(chunks: Sequence[T]) -> Iterator[T]:
    """The chunks of a cache hit, as an iterator."""
    return iter(chunks)
