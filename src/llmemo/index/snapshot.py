"""LocalIndex snapshots: the in-process vectors saved to a local file with the change-log position
they reflect, so that a starting process loads them and replays only the log after that position
instead of rebuilding every graph from the store's records.

The file: `MAGIC`, the header's length (8 bytes, little-endian), the header (JSON: format, what
the snapshot must match, the log position, and each part's sizes), the body (per scope: the keys,
the graph labels, the deadlines, then the float32 rows or the usearch graph in usearch's own
serialisation), and the SHA-256 of everything before it. It is written to a temporary file in
the same directory, flushed to disk, then renamed over the old one: a reader sees the old
snapshot or the new one, never part of one. No store I/O here.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from llmemo.index.ann import PartState, Vectors
from llmemo.index.base import IndexScope
from llmemo.index.changelog import Position

MAGIC = b"llmemo-localindex-snapshot\n"
FORMAT = 1
_DIGEST = 32  # SHA-256
_LENGTH = 8


class SnapshotError(ValueError):
    """A snapshot that cannot be used: unreadable, corrupt, of another format or another index."""


@dataclass(frozen=True)
class Shape:
    """What a snapshot must match to be loaded: the index, its change log, the store's identity
    (a random value the store keeps, new when the store is emptied), and the vector settings.

    Of the graph settings only `connectivity` (links per node) is in the saved graph; the
    expansions are search and insert effort, taken from the loading index's settings."""

    name: str
    log: str
    store: str
    dim: int
    dtype: str
    graph_from: int
    connectivity: int
    metric: str = "ip"

    def fields(self) -> dict[str, Any]:
        return asdict(self)


def save(path: Path, shape: Shape, position: Position, states: list[PartState]) -> int:
    """Write a snapshot atomically (temporary file, fsync, rename); the bytes written."""
    parts, blobs = [], []
    for state in states:
        chunks = _chunks(state)
        parts.append(
            {
                "scope": _scope_fields(state.scope),
                "mode": "matrix" if state.graph is None else "graph",
                "n": len(state.keys),
                "next": state.next_label,
                "sizes": [len(chunk) for chunk in chunks],
            }
        )
        blobs += chunks
    header = orjson.dumps(
        {"format": FORMAT, **shape.fields(), "position": list(position), "parts": parts}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    digest = hashlib.sha256()
    written = 0
    try:
        with open(temporary, "wb") as file:
            for chunk in (MAGIC, len(header).to_bytes(_LENGTH, "little"), header, *blobs):
                digest.update(chunk)
                written += file.write(chunk)
            written += file.write(digest.digest())
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return written


def load(path: Path, shape: Shape, vectors: Vectors) -> Position:
    """Fill `vectors` from the snapshot at `path`; the log position it reflects.

    FileNotFoundError when there is none; SnapshotError when it is corrupt or does not match
    `shape` (then `vectors` is unchanged).
    """
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size < len(MAGIC) + _LENGTH + _DIGEST:
            raise SnapshotError("file too short")
        with (
            mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
            memoryview(mapped) as view,
        ):
            return _load(view, shape, vectors)


def _load(view: memoryview, shape: Shape, vectors: Vectors) -> Position:
    if view[: len(MAGIC)] != MAGIC:
        raise SnapshotError("not a LocalIndex snapshot")
    with view[:-_DIGEST] as covered:
        if hashlib.sha256(covered).digest() != view[-_DIGEST:]:
            raise SnapshotError("checksum mismatch (corrupt or truncated)")
    start = len(MAGIC) + _LENGTH
    end = start + int.from_bytes(view[len(MAGIC) : start], "little")
    header = orjson.loads(view[start:end])
    if header.get("format") != FORMAT:
        raise SnapshotError(f"format {header.get('format')!r}, this version reads {FORMAT}")
    for field, expected in shape.fields().items():
        if header.get(field) != expected:
            raise SnapshotError(f"{field} is {header.get(field)!r}, this index has {expected!r}")
    views: list[memoryview] = []
    try:
        states = []
        at = end
        for part in header["parts"]:
            chunks = []
            for size in part["sizes"]:
                chunks.append(view[at : at + size])
                at += size
            views += chunks
            states.append(_state(part, chunks, shape.dim))
        if at != len(view) - _DIGEST:
            raise SnapshotError("body length does not match the header")
        try:
            vectors.restore(states)
        except (ValueError, RuntimeError) as exc:  # usearch refused its part
            raise SnapshotError(f"graph not loadable: {exc}") from exc
    finally:
        for chunk in views:
            chunk.release()
    return str(header["position"][0]), int(header["position"][1])


def _chunks(state: PartState) -> list[bytes | bytearray | memoryview]:
    labels = b"" if state.labels is None else state.labels.astype("<u8").tobytes()
    if state.graph is not None:
        data: bytes | bytearray | memoryview = state.graph
    else:
        assert state.matrix is not None
        data = state.matrix.astype("<f4").tobytes()
    return [orjson.dumps(state.keys), labels, state.deadlines.astype("<f8").tobytes(), data]


def _state(part: dict[str, Any], chunks: list[memoryview], dim: int) -> PartState:
    keys_blob, labels_blob, deadlines_blob, data = chunks
    keys = [str(key) for key in orjson.loads(keys_blob)]
    deadlines = np.frombuffer(deadlines_blob, dtype="<f8").astype(np.float64)
    if len(keys) != part["n"] or len(deadlines) != len(keys):
        raise SnapshotError("a part's keys and deadlines do not match its count")
    ns, version, tenant, fingerprint, model = part["scope"]
    scope = IndexScope(ns, version, tenant, fingerprint, model)
    if part["mode"] == "matrix":
        matrix = np.frombuffer(data, dtype="<f4").astype(np.float32)
        if matrix.size != len(keys) * dim:
            raise SnapshotError("a part's rows do not match its count")
        return PartState(scope, keys, deadlines, matrix=matrix.reshape(len(keys), dim))
    labels = np.frombuffer(labels_blob, dtype="<u8").astype(np.uint64)
    if len(labels) != len(keys):
        raise SnapshotError("a part's labels do not match its count")
    return PartState(
        scope, keys, deadlines, labels=labels, next_label=int(part["next"]), graph=data
    )


def _scope_fields(scope: IndexScope) -> list[Any]:
    return [scope.namespace, scope.version, scope.tenant, scope.fingerprint, scope.model]
