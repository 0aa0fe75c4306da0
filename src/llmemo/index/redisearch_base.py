"""What both RediSearch indexes share without I/O: names, schema, query, reply parsing, the
hybrid-policy memo and the error boundary (the indexes themselves: `index/_async/redisearch.py`)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from llmemo.errors import require
from llmemo.index.base import (
    Dtype,
    IndexItem,
    IndexScope,
    Match,
    VectorIndexError,
    check_k,
    check_similarity,
    entry_key,
    index_name,
    record_key,
    similarity_from_cosine_distance,
    vector_bytes,
)
from llmemo.stores import keys
from llmemo.stores.commands import ms, text

require("redis", "redis")

import numpy.typing as npt  # noqa: E402
import redis  # noqa: E402
import redis.asyncio  # noqa: E402

LAYOUT = 2
"""The record layout (fields, schema): part of the index name, bumped when the layout changes."""
_SCOPE_FIELD = "s"
_VECTOR_FIELD = "v"
_SCORE = "dist"
log = logging.getLogger("llmemo.index")
_MISSING_INDEX = ("no such index", "unknown index name", "unknown index")
_QUERY_SPECIAL = re.compile(r"([^A-Za-z0-9_])")


@dataclass(frozen=True)
class HNSW:
    """HNSW graph parameters: M links per node, ef_construction at insert, ef_runtime per query.

    A cache asks for k=1 inside a scope that usually holds few vectors (then RediSearch scans the
    filtered set exactly); the graph is only walked for large scopes. There, on 100k random 384-d
    vectors (the hard case), ef_runtime 32 / 64 / 128 / 256 found the true nearest neighbour for
    74 / 89 / 98 / 99.7 % of queries at about the same sub-millisecond p50: 128 it is.
    """

    m: int = 16
    ef_construction: int = 200
    ef_runtime: int = 128


def search_index_name(prefix: str, dim: int, dtype: Dtype) -> str:
    """`{prefix}:~vec2:{f16|f32}:{dim}`: one index per vector shape and record layout.

    Neither this prefix nor the LocalIndex's `{prefix}:~vec:` one is a prefix of the other, so
    each index only ever sees its own records.
    """
    index_name(prefix, dim, dtype)  # validates
    return keys.search_index(prefix, LAYOUT, dtype, dim)


def create_args(name: str, dim: int, dtype: Dtype, hnsw: HNSW) -> list[str | int]:
    """FT.CREATE arguments: HASH records under `{name}:`, one CASESENSITIVE TAG, HNSW COSINE.

    No TEXT field: nothing about the answer is indexed, only its scope digest and vector.
    """
    schema: list[str | int] = [_SCOPE_FIELD, "TAG", "CASESENSITIVE"]
    params: list[str | int] = ["TYPE", dtype.upper(), "DIM", dim, "DISTANCE_METRIC", "COSINE"]
    params += ["M", hnsw.m, "EF_CONSTRUCTION", hnsw.ef_construction, "EF_RUNTIME", hnsw.ef_runtime]
    schema += [_VECTOR_FIELD, "VECTOR", "HNSW", len(params), *params]
    records = keys.record_prefix(name)
    return ["FT.CREATE", name, "ON", "HASH", "PREFIX", 1, records, "SCHEMA", *schema]


def escape_tag(token: str) -> str:
    """A tag token escaped for a DIALECT 2 query: every character but [A-Za-z0-9_] gets a '\\'."""
    return _QUERY_SPECIAL.sub(r"\\\1", token)


def scope_tag(scope: IndexScope) -> str:
    """The one TAG value of a scope: its 128-bit digest over all five fields (`IndexScope.digest`),
    so the pre-filter is exactly as strict as five TAGs (a collision needs ~2^64 scopes)."""
    return scope.digest()


def scope_filter(scope: IndexScope) -> str:
    """`@s:{digest}`: the pre-filter of the KNN query."""
    return f"@{_SCOPE_FIELD}:{{{escape_tag(scope_tag(scope))}}}"


def knn_query(scope: IndexScope, k: int, policy: str | None = None) -> str:
    """The DIALECT 2 query: KNN k inside the scope filter, the distance as `dist`; `policy`: a
    HYBRID_POLICY (None: RediSearch's planner picks one)."""
    # EF_RUNTIME is the index's (set at FT.CREATE), so the same query also runs on a FLAT index.
    hybrid = "" if policy is None else f" HYBRID_POLICY {policy}"
    return f"({scope_filter(scope)})=>[KNN {k} @{_VECTOR_FIELD} $v{hybrid} AS {_SCORE}]"


BATCHES_MIN = 5500
"""Scopes of fewer vectors are left to the planner (brute force over them is cheap and exact)."""
BATCHES_SHARE = 0.17
"""...and so are scopes holding at most this share of the database's keys."""
POLICY_TTL = 30.0
"""Seconds a scope's count (so its hybrid policy) is trusted before the search counts it again."""
POLICY_MEMO = 10_000
"""Scopes whose policy an index object remembers (emptied when full)."""


def hybrid_policy(in_scope: int, keys: int) -> str | None:
    """The HYBRID_POLICY for a scope of `in_scope` vectors in a database of `keys` keys: BATCHES
    (walk the HNSW graph, keep the matches in scope) for a big scope that is a large share of the
    index, else None (the planner decides).

    Why: RediSearch's planner (VecSim's decision tree, for M > 10 and k <= 12) brute-forces the
    filtered set whenever the index holds 5,500-30,000 vectors, whatever share the scope is; with
    one scope holding all of a 10k index that took 0.5-1.6 ms p50 here, BATCHES 0.3-0.4 ms. But
    BATCHES is ruinous for a small share of a big index (41 ms for 10 of 100k vectors), so it is
    only asked for when the share is surely large: a vector is a key, so `in_scope / keys` is
    a lower bound of the scope's share of the index, and above 0.17 the planner itself picks
    BATCHES on a bigger index. In every other case the planner's choice stands."""
    if in_scope >= BATCHES_MIN and in_scope > BATCHES_SHARE * keys:
        return "BATCHES"
    return None


def search_args(name: str, blob: bytes, scope: IndexScope, k: int) -> list[str | int | bytes]:
    """FT.SEARCH arguments (the fallback without scripts): KNN k, nearest first, with distances.

    The scope field is returned only to make the server load each hash: one that expired but is
    not yet out of the index then comes back without fields (and is skipped), not as a match."""
    return [
        "FT.SEARCH", name, knn_query(scope, k), "PARAMS", 2, "v", blob,
        "SORTBY", _SCORE, "ASC", "RETURN", 2, _SCORE, _SCOPE_FIELD, "LIMIT", 0, k, "DIALECT", 2,
    ]  # fmt: skip


SEARCH_SCRIPT = """
local name, query, blob, k, scope = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local out, skip = {-1, -1}, #name + 2
if scope ~= '' then
    local counted = redis.call('FT.SEARCH', name, scope, 'LIMIT', 0, 0, 'DIALECT', 2)
    out[1], out[2] = counted[1], redis.call('DBSIZE')
end
local reply = redis.call('FT.SEARCH', name, query, 'PARAMS', 2, 'v', blob,
    'SORTBY', 'dist', 'ASC', 'RETURN', 1, 'dist', 'LIMIT', 0, k, 'DIALECT', 2)
for i = 2, #reply, 2 do
    local fields, dist = reply[i + 1], false
    if type(fields) == 'table' then
        for j = 1, #fields - 1, 2 do
            if fields[j] == 'dist' then dist = fields[j + 1] end
        end
    end
    if dist and redis.call('EXISTS', reply[i]) == 1 then
        local key = string.sub(reply[i], skip)
        local entry = redis.pcall('GET', key)
        if type(entry) ~= 'string' then entry = false end
        out[#out + 1] = key
        out[#out + 1] = dist
        out[#out + 1] = entry
    end
end
return out
"""
"""One round trip per search: the KNN query, then the entry at each match's key (read-only).

Its keys are not declared: RediSearch runs on standalone servers only (a cluster gets LocalIndex).
Returns the scope's vector count and DBSIZE (both -1 unless ARGV[5], the scope filter, asks for
them: `hybrid_policy`), then a flat list of (entry key, distance, entry bytes or nil when the
entry is gone). A hash that expired but is not yet out of the index (the KNN reads only the
index) fails EXISTS and is skipped, so an expired vector is never a match."""


def script_args(
    name: str,
    blob: bytes,
    scope: IndexScope,
    k: int,
    policy: str | None = None,
    count: bool = False,
) -> list[str | int | bytes]:
    """SEARCH_SCRIPT's ARGV (`count`: also count the scope's vectors and the database's keys)."""
    return [name, knn_query(scope, k, policy), blob, k, scope_filter(scope) if count else ""]


def script_counts(reply: Any) -> tuple[int, int] | None:
    """(vectors in the scope, keys in the database) from SEARCH_SCRIPT's reply, if it counted."""
    items = list(reply or [])
    if len(items) < 2 or int(items[0]) < 0:
        return None
    return int(items[0]), int(items[1])


def parse_script(reply: Any, min_similarity: float) -> list[Match]:
    """Matches from SEARCH_SCRIPT's reply, nearest first, at least `min_similarity` similar."""
    items = list(reply or [])[2:]
    matches = []
    for i in range(0, len(items) - 2, 3):
        similarity = similarity_from_cosine_distance(float(text(items[i + 1])))
        if similarity < min_similarity:
            continue
        entry = items[i + 2]
        matches.append(Match(text(items[i]), similarity, None if entry is None else bytes(entry)))
    matches.sort(key=lambda m: -m.similarity)
    return matches


def record_fields(item: IndexItem, blob: bytes) -> dict[str, bytes | str]:
    """The hash of one item: its scope digest and its vector (the entry stays at its own key)."""
    return {_SCOPE_FIELD: scope_tag(item.scope), _VECTOR_FIELD: blob}


def _documents(reply: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(id, fields) of an FT.SEARCH reply in RESP2 (a flat list) or RESP3 (a map)."""
    if isinstance(reply, Mapping):
        for doc in reply.get(b"results", reply.get("results", [])):
            doc_id = doc.get(b"id", doc.get("id"))
            extra = doc.get(b"extra_attributes", doc.get("extra_attributes")) or {}
            yield text(doc_id), {text(k): v for k, v in extra.items()}
        return
    items = list(reply)[1:]
    for i in range(0, len(items) - 1, 2):
        flat = items[i + 1] or []
        yield text(items[i]), {text(flat[j]): flat[j + 1] for j in range(0, len(flat) - 1, 2)}


def parse_search(reply: Any, name: str, min_similarity: float) -> list[Match]:
    """Matches from a plain FT.SEARCH reply (no entries: the caller GETs them), nearest first."""
    matches = []
    for doc_id, fields in _documents(reply):
        score = fields.get(_SCORE)
        if score is None:  # a hash that expired while the query ran
            continue
        similarity = similarity_from_cosine_distance(float(text(score)))
        if similarity >= min_similarity:
            matches.append(Match(entry_key(name, doc_id), similarity))
    matches.sort(key=lambda m: -m.similarity)
    return matches


def info_count(reply: Any) -> int:
    """`num_docs` of an FT.INFO reply (RESP2 list or RESP3 map)."""
    if not isinstance(reply, Mapping):
        reply = dict(zip(reply[::2], reply[1::2], strict=False))
    fields = {text(k): v for k, v in reply.items()}
    return int(float(text(fields.get("num_docs", 0))))


def _missing_index(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, redis.ResponseError) and any(m in text for m in _MISSING_INDEX)


def _no_scripts(exc: BaseException) -> bool:
    """An ACL or a proxy refuses EVALSHA / SCRIPT LOAD: search without the script from now on."""
    text = str(exc).lower()
    return isinstance(exc, redis.exceptions.NoPermissionError) or (
        isinstance(exc, redis.ResponseError)
        and "unknown command" in text
        and ("evalsha" in text or "script" in text)
    )


def _exists(exc: BaseException) -> bool:
    return isinstance(exc, redis.ResponseError) and "already exists" in str(exc).lower()


class RediSearchBase:
    """Configuration and the error boundary shared by the twins."""

    def __init__(self, dim: int, prefix: str, dtype: Dtype, hnsw: HNSW | None, where: str) -> None:
        self.name = search_index_name(prefix, dim, dtype)
        self.prefix = prefix
        self.dtype: Dtype = dtype
        self.hnsw = hnsw or HNSW()
        self._dim = dim
        self._where = where
        self._ready = False
        self._scripted = True  # until the server refuses scripts
        self._policies: dict[str, tuple[str | None, float]] = {}  # scope tag -> (policy, until)

    def _plan(self, scope: IndexScope) -> tuple[str | None, bool]:
        """The hybrid policy for a search in `scope`, and whether it should count the scope."""
        known = self._policies.get(scope_tag(scope))
        if known is None or time.monotonic() >= known[1]:
            return (None if known is None else known[0]), True
        return known[0], False

    def _learn(self, scope: IndexScope, reply: Any) -> None:
        """Remember the policy the counts in a search script's reply call for."""
        counts = script_counts(reply)
        if counts is not None:
            if len(self._policies) >= POLICY_MEMO:
                self._policies = {}
            policy = hybrid_policy(*counts)
            self._policies[scope_tag(scope)] = (policy, time.monotonic() + POLICY_TTL)

    @property
    def dim(self) -> int:
        return self._dim

    @contextmanager
    def _errors(self, command: str) -> Iterator[None]:
        try:
            yield
        except (redis.RedisError, OSError) as exc:
            text = " ".join(str(exc).split()) or "no detail"
            raise VectorIndexError(
                f"redis {command} failed on {self._where}: {type(exc).__name__}: {text}"
            ) from exc

    def _query_vector(self, vector: npt.ArrayLike, k: int, min_similarity: float) -> bytes | None:
        """The query's vector bytes (None: a zero vector, which matches nothing)."""
        check_k(k)
        check_similarity(min_similarity)
        return vector_bytes(vector, self._dim, self.dtype)

    def _refused(self, exc: redis.ResponseError) -> None:
        """Re-raise unless the server refuses scripts; then fall back to plain FT.SEARCH."""
        if not _no_scripts(exc):
            raise exc
        log.warning(
            "llmemo: %s refuses scripts (%s): semantic hits take one more GET", self._where, exc
        )
        self._scripted = False


def _where(client: Any) -> str:
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    return f"{kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', '')}"


def _queue_add(pipe: Any, name: str, item: IndexItem, blob: bytes | None) -> None:
    """Replace the item's hash: UNLINK (drops stale fields and TTL), HSET, PEXPIRE.

    A zero vector has no direction: it is not indexed (and any older vector under the key goes).
    """
    key = record_key(name, item.key)
    pipe.unlink(key)
    if blob is not None:
        pipe.hset(key, mapping=record_fields(item, blob))
        if item.ttl is not None:
            pipe.pexpire(key, ms(item.ttl))
