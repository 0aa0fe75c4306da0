"""In-process vectors for LocalIndex: one sub-index per scope, exact while small, HNSW when large.

Keeping a separate sub-index per `IndexScope` makes the pre-filter exact by construction: a search
only ever looks at vectors of its own scope, so another tenant's or context's vector cannot be
returned, and k neighbours are found even when the scope is a tiny part of the whole index.
Below `graph_from` vectors a scope is a numpy matrix scanned exactly (faster than a graph there,
see docs/benchmarks.md); at `graph_from` it becomes a usearch HNSW graph. No I/O here.
"""

from __future__ import annotations

import heapq
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from llmemo.errors import require
from llmemo.index.base import (
    Dtype,
    IndexScope,
    Match,
    Vector,
    similarity_from_cosine_distance,
)

require("usearch", "semantic")

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
from usearch.index import Index  # noqa: E402

_GROWTH = 2


_BLOCK = 2048


@dataclass(frozen=True)
class PartState:
    """One scope's vectors as a snapshot holds them: keys in row (matrix) or label (graph) order,
    their deadlines (NaN: none), and the float32 rows or the usearch graph's own serialisation."""

    scope: IndexScope
    keys: list[str]
    deadlines: npt.NDArray[np.float64]
    labels: npt.NDArray[np.uint64] | None = None  # graph only
    next_label: int = 0  # graph only
    matrix: npt.NDArray[np.float32] | None = None  # matrix only
    graph: bytes | bytearray | memoryview | None = None  # graph only


def brute_similarities(matrix: npt.NDArray[np.float32], query: Vector) -> npt.NDArray[np.float64]:
    """Cosine similarity of unit rows to a unit query, on the one [0, 1] scale (clamped).

    In blocks of 2048 rows: a bigger matrix-vector product makes OpenBLAS start threads, which
    stall for milliseconds on a busy machine; a block costs ~10 us and stays on this thread.
    """
    dots = np.empty(len(matrix), dtype=np.float32)
    for start in range(0, len(matrix), _BLOCK):
        np.dot(matrix[start : start + _BLOCK], query, out=dots[start : start + _BLOCK])
    return np.clip(dots.astype(np.float64), 0.0, 1.0)


def graph_similarity(distance: float) -> float:
    """usearch's `ip` metric on unit rows reports 1 - cos: the shared conversion applies."""
    return similarity_from_cosine_distance(float(distance))


@dataclass(frozen=True)
class GraphParams:
    """HNSW parameters of the usearch graphs: links per node, ef at insert and at query.

    expansion_search 128: on 100k random 384-d vectors, 64 finds the true nearest neighbour for
    81 % of queries and 256 for 99 % (docs/benchmarks.md); 128 sits between at ~1 ms.
    """

    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 128


class ScopeVectors:
    """The vectors of one scope: a growable float32 matrix, then (past `graph_from`) a graph."""

    def __init__(self, dim: int, dtype: Dtype, graph_from: int, params: GraphParams) -> None:
        self.dim = dim
        self._dtype = "f16" if dtype == "float16" else "f32"
        self._graph_from = graph_from
        self._params = params
        self._matrix = np.zeros((4, dim), dtype=np.float32)
        self._keys: list[str] = []  # row -> key (matrix mode)
        self._rows: dict[str, int] = {}  # key -> row (matrix mode) or label (graph mode)
        self._graph: Index | None = None
        self._labels: dict[int, str] = {}  # graph mode: label -> key
        self._next_label = 0

    def __len__(self) -> int:
        return len(self._rows)

    def load(self, keys: Sequence[str], matrix: npt.NDArray[np.float32]) -> None:
        """Fill an empty part at once: one batched, multi-threaded graph build when large."""
        self._matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self._keys = list(keys)
        self._rows = {key: row for row, key in enumerate(self._keys)}
        if len(self._keys) >= self._graph_from:
            self._to_graph()
        elif len(self._matrix) == 0:
            self._matrix = np.zeros((4, self.dim), dtype=np.float32)

    def put(self, key: str, vector: Vector) -> None:
        """Add or replace `key`'s unit vector."""
        if key in self._rows:
            self.remove(key)
        if self._graph is None and len(self._rows) >= self._graph_from:
            self._to_graph()
        if self._graph is not None:
            label = self._next_label
            self._next_label += 1
            self._graph.add(np.uint64(label), vector)
            self._rows[key] = label
            self._labels[label] = key
            return
        row = len(self._keys)
        if row == len(self._matrix):
            grown = np.zeros((len(self._matrix) * _GROWTH, self.dim), dtype=np.float32)
            grown[:row] = self._matrix
            self._matrix = grown
        self._matrix[row] = vector
        self._keys.append(key)
        self._rows[key] = row

    def remove(self, key: str) -> bool:
        """Forget `key`; False if it was not here."""
        where = self._rows.pop(key, None)
        if where is None:
            return False
        if self._graph is not None:
            self._graph.remove(np.uint64(where))
            del self._labels[where]
            return True
        last = len(self._keys) - 1
        if where != last:  # move the last row into the hole
            moved = self._keys[last]
            self._matrix[where] = self._matrix[last]
            self._keys[where] = moved
            self._rows[moved] = where
        self._keys.pop()
        return True

    def search(self, query: Vector, k: int) -> list[tuple[str, float]]:
        """Up to k (key, similarity) pairs, most similar first."""
        if self._graph is not None:
            found = self._graph.search(query, k, threads=1)
            return [
                (self._labels[int(label)], graph_similarity(distance))
                for label, distance in zip(found.keys, found.distances, strict=True)
                if int(label) in self._labels
            ]
        n = len(self._keys)
        if n == 0:
            return []
        sims = brute_similarities(self._matrix[:n], query)
        top = np.argpartition(-sims, k - 1)[:k] if n > k else np.arange(n)
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(self._keys[i], float(sims[i])) for i in top]

    def state(self, scope: IndexScope, deadline: Callable[[str], float]) -> PartState:
        """This part as a snapshot holds it (copies: the part may change right after)."""
        if self._graph is None:
            keys = list(self._keys)
            return PartState(
                scope,
                keys,
                np.array([deadline(key) for key in keys], dtype=np.float64),
                matrix=self._matrix[: len(keys)].copy(),
            )
        labels = np.fromiter(self._labels, dtype=np.uint64, count=len(self._labels))
        keys = list(self._labels.values())
        deadlines = np.array([deadline(key) for key in keys], dtype=np.float64)
        return PartState(
            scope,
            keys,
            deadlines,
            labels=labels,
            next_label=self._next_label,
            graph=self._graph.save(),
        )

    def restore(self, state: PartState) -> None:
        """Become the part `state` describes (this part is new and empty)."""
        if state.graph is None:
            assert state.matrix is not None
            self.load(state.keys, state.matrix)
            return
        assert state.labels is not None
        graph = self._new_graph()
        graph.load(state.graph)
        if len(graph) != len(state.keys):
            raise ValueError(
                f"graph holds {len(graph)} vectors, the snapshot lists {len(state.keys)}"
            )
        self._labels = dict(zip(state.labels.tolist(), state.keys, strict=True))
        self._rows = dict(zip(state.keys, state.labels.tolist(), strict=True))
        self._next_label = state.next_label
        self._graph = graph
        self._matrix = np.zeros((0, self.dim), dtype=np.float32)
        self._keys = []

    def _new_graph(self) -> Index:
        params = self._params
        return Index(
            ndim=self.dim,
            metric="ip",  # rows are unit vectors: inner product is the cosine, and cheaper
            dtype=self._dtype,
            connectivity=params.connectivity,
            expansion_add=params.expansion_add,
            expansion_search=params.expansion_search,
        )

    def _to_graph(self) -> None:
        graph = self._new_graph()
        n = len(self._keys)
        labels = np.arange(n, dtype=np.uint64)
        if n:
            graph.add(labels, self._matrix[:n], threads=0)  # 0: every core
        self._labels = dict(enumerate(self._keys))
        self._rows = {key: label for label, key in self._labels.items()}
        self._next_label = n
        self._graph = graph
        self._matrix = np.zeros((0, self.dim), dtype=np.float32)
        self._keys = []


class Vectors:
    """Every scope's vectors, with expiry deadlines (wall-clock seconds), behind one lock."""

    def __init__(
        self,
        dim: int,
        dtype: Dtype = "float16",
        graph_from: int = 8192,
        params: GraphParams | None = None,
    ) -> None:
        self.dim = dim
        self._dtype: Dtype = dtype
        self._graph_from = graph_from
        self._params = params or GraphParams()
        self._scopes: dict[IndexScope, ScopeVectors] = {}
        self._where: dict[str, tuple[IndexScope, float | None]] = {}
        self._deadlines: list[tuple[float, str]] = []  # a heap; stale rows are skipped
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._where)

    def load(self, rows: Iterable[tuple[str, IndexScope, Vector, float | None]]) -> None:
        """Replace everything with `rows` (a rebuild): each scope is built in one batch."""
        groups: dict[IndexScope, dict[str, Vector]] = {}
        where: dict[str, tuple[IndexScope, float | None]] = {}
        for key, scope, vector, deadline in rows:
            old = where.get(key)
            if old is not None:
                del groups[old[0]][key]
            if vector.any():
                groups.setdefault(scope, {})[key] = vector
                where[key] = (scope, deadline)
            else:
                where.pop(key, None)
        scopes: dict[IndexScope, ScopeVectors] = {}
        for scope, members in groups.items():
            if not members:
                continue
            part = ScopeVectors(self.dim, self._dtype, self._graph_from, self._params)
            part.load(list(members), np.stack(list(members.values())))
            scopes[scope] = part
        deadlines = [(d, key) for key, (_, d) in where.items() if d is not None]
        heapq.heapify(deadlines)
        with self._lock:
            self._scopes, self._where, self._deadlines = scopes, where, deadlines

    def states(self) -> list[PartState]:
        """Every scope's part as a snapshot holds it, taken at one instant (under the lock)."""
        with self._lock:
            where = self._where

            def deadline(key: str) -> float:
                found = where[key][1]
                return math.nan if found is None else found

            return [part.state(scope, deadline) for scope, part in self._scopes.items()]

    def restore(self, states: Iterable[PartState]) -> None:
        """Replace everything with the parts of a snapshot."""
        scopes: dict[IndexScope, ScopeVectors] = {}
        where: dict[str, tuple[IndexScope, float | None]] = {}
        for state in states:
            part = ScopeVectors(self.dim, self._dtype, self._graph_from, self._params)
            part.restore(state)
            scopes[state.scope] = part
            for key, deadline in zip(state.keys, state.deadlines.tolist(), strict=True):
                where[key] = (state.scope, None if math.isnan(deadline) else deadline)
        deadlines = [(d, key) for key, (_, d) in where.items() if d is not None]
        heapq.heapify(deadlines)
        with self._lock:
            self._scopes, self._where, self._deadlines = scopes, where, deadlines

    def put(self, key: str, scope: IndexScope, vector: Vector, deadline: float | None) -> None:
        """Add or replace `key` (in whichever scope it was) with a unit vector."""
        with self._lock:
            self._remove(key)
            if not vector.any():
                return  # a zero vector has no direction: never a match
            part = self._scopes.get(scope)
            if part is None:
                part = self._scopes[scope] = ScopeVectors(
                    self.dim, self._dtype, self._graph_from, self._params
                )
            part.put(key, vector)
            self._where[key] = (scope, deadline)
            if deadline is not None:
                heapq.heappush(self._deadlines, (deadline, key))

    def remove(self, keys: Sequence[str]) -> int:
        """Forget `keys`; how many were here."""
        with self._lock:
            return sum(self._remove(key) for key in keys)

    def clear(self) -> None:
        with self._lock:
            self._scopes.clear()
            self._where.clear()
            self._deadlines.clear()

    def expire(self, now: float) -> int:
        """Forget every vector whose deadline is past; how many."""
        with self._lock:
            return self._expire(now)

    def search(
        self, query: Vector, scope: IndexScope, k: int, min_similarity: float, now: float
    ) -> list[Match]:
        """Up to k live matches in `scope`, most similar first, each >= min_similarity."""
        with self._lock:
            self._expire(now)
            part = self._scopes.get(scope)
            if part is None or not query.any():
                return []
            found = part.search(query, k)
        return [Match(key, sim) for key, sim in found if sim >= min_similarity]

    def _remove(self, key: str) -> bool:
        where = self._where.pop(key, None)
        if where is None:
            return False
        scope = where[0]
        part = self._scopes[scope]
        part.remove(key)
        if not len(part):
            del self._scopes[scope]
        return True

    def _expire(self, now: float) -> int:
        gone = 0
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            deadline, key = heapq.heappop(heap)
            where = self._where.get(key)
            if where is not None and where[1] == deadline:
                gone += self._remove(key)
        return gone
