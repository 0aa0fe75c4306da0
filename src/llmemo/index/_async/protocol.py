"""The index protocols: `VectorIndex` (nearest neighbours in a scope) and `ChangeLog` (the log that
keeps local indexes of several processes in step)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: `index.base` and `index.changelog` import this module
    import numpy.typing as npt

    from llmemo.index.base import IndexItem, IndexScope, Match
    from llmemo.index.changelog import Position


@runtime_checkable
class AsyncVectorIndex(Protocol):
    """Nearest neighbours by cosine similarity, inside one scope.

    `add` replaces any vector already under the item's key. `search` returns at most k matches,
    best first, all from `scope` and with similarity >= min_similarity. `delete` takes entry keys
    and returns how many were indexed. `count` is how many vectors the index holds, in all scopes
    (a server-side index may still count one that expired in the last few hundred ms). `drop`
    removes the index and every vector it holds. `touch` gives an entry's vector `ttl` more
    seconds, because its entry got them (rolling TTL); an unknown key is ignored. Failures raise
    VectorIndexError.
    """

    @property
    def dim(self) -> int: ...

    async def add(self, item: IndexItem) -> None: ...

    async def touch(self, key: str, ttl: float) -> None: ...

    async def search(
        self, vector: npt.ArrayLike, scope: IndexScope, k: int = 1, min_similarity: float = 0.0
    ) -> list[Match]: ...

    async def delete(self, keys: Sequence[str]) -> int: ...

    async def count(self) -> int: ...

    async def drop(self) -> None: ...

    async def close(self) -> None: ...


class AsyncChangeLog(Protocol):
    """An append-only, capped, ordered log of index events shared by processes."""

    async def end(self) -> Position: ...

    async def append(self, events: Sequence[bytes]) -> None: ...

    async def read(self, after: Position) -> tuple[list[bytes], Position, bool]: ...

    async def close(self) -> None: ...
