"""Every store key llmemo writes, one function per shape. Nothing else builds a key string.

A cache's keys all start with its prefix (default `llmemo`). Names that begin with `~` are the
library's own: `~` is not allowed in a namespace, so they never meet a namespace's keys. Braces
mark the Redis Cluster hash tag: an entry and its lease share a slot. The hashes inside the keys
(request SHA-256, embedding digests, run ids) are made by their own modules; these functions only
place them. Changing a shape here orphans stored data: tests/stores/test_keys.py pins each one.
"""

from __future__ import annotations

_GLOB_SPECIAL = str.maketrans({c: f"\\{c}" for c in "*?[]\\"})
# a vector dtype -> its name in keys
DTYPES = {"float32": "f32", "float16": "f16"}

# -- cache entries ------------------------------------------------------------------------------


def exact_key(prefix: str, namespace: str, version: int, sha: str) -> str:
    """`{prefix}:{namespace}:{version}:x:{sha}`; the braces make the sha a Redis Cluster hash tag."""
    return f"{prefix}:{namespace}:{version}:x:{{{sha}}}"


def lock_key(prefix: str, namespace: str, version: int, sha: str) -> str:
    """The single-flight lease for an entry: same hash tag, so the same cluster slot."""
    return f"{prefix}:{namespace}:{version}:l:{{{sha}}}"


def entry_pattern(prefix: str, namespace: str | None = None, version: int | None = None) -> str:
    """A SCAN pattern over entries of a namespace (and version), or of every namespace."""
    ns = "*" if namespace is None else namespace
    ver = "*" if version is None else str(version)
    return f"{prefix}:{ns}:{ver}:x:*"


def meta_key(prefix: str, namespace: str) -> str:
    """A namespace's counters: its version (bumped to invalidate it all)."""
    return f"{prefix}:{namespace}:meta"


def meta_pattern(prefix: str) -> str:
    """A SCAN pattern over every namespace's meta counters."""
    return f"{prefix}:*:meta"


def stats_key(prefix: str, namespace: str) -> str:
    """A namespace's shared hit/miss counters."""
    return f"{prefix}:{namespace}:stats"


def stats_pattern(prefix: str) -> str:
    """A SCAN pattern over every namespace's stats."""
    return f"{prefix}:*:stats"


def check_key(prefix: str, nonce: str) -> str:
    """The throwaway key `check()` writes, reads back and deletes."""
    return f"{prefix}:check:{nonce}"


# -- vectors and embeddings ---------------------------------------------------------------------


def vector_index(prefix: str, dtype: str, dim: int) -> str:
    """`{prefix}:~vec:{f16|f32}:{dim}`: a LocalIndex, one per vector shape."""
    return f"{prefix}:~vec:{DTYPES[dtype]}:{dim}"


def search_index(prefix: str, layout: int, dtype: str, dim: int) -> str:
    """`{prefix}:~vec{layout}:{f16|f32}:{dim}`: a RediSearch index, one per shape and layout."""
    return f"{prefix}:~vec{layout}:{DTYPES[dtype]}:{dim}"


def vector_records(prefix: str) -> str:
    """A SCAN pattern over the vector records of every index of a prefix (local and RediSearch)."""
    return f"{prefix}:~vec*"


def vector_log(prefix: str, dtype: str, dim: int) -> str:
    """`{prefix}:~vlog:{f16|f32}:{dim}:{llmemo-index}`: the change log of LocalIndexes of a shape."""
    return f"{prefix}:~vlog:{DTYPES[dtype]}:{dim}:{{llmemo-index}}"


def vector_identity(prefix: str, dtype: str, dim: int) -> str:
    """`{prefix}:~vid:{f16|f32}:{dim}:{llmemo-index}`: a random value naming this store's copy of a
    LocalIndex (gone when the store is emptied), which an index snapshot must match to be used."""
    return f"{prefix}:~vid:{DTYPES[dtype]}:{dim}:{{llmemo-index}}"


def vector_record(index: str, key: str) -> str:
    """The hash of `key`'s vector: `{index}:{key}` (the entry's hash tag is the first one in it)."""
    return f"{index}:{key}"


def record_entry(index: str, record: str) -> str:
    """The entry key a vector record belongs to (the inverse of `vector_record`)."""
    return record[len(index) + 1 :]


def record_prefix(index: str) -> str:
    """The key prefix of an index's records (RediSearch's `PREFIX`)."""
    return f"{index}:"


def record_pattern(index: str) -> str:
    """A SCAN pattern over an index's records (the name's glob characters escaped)."""
    return f"{index.translate(_GLOB_SPECIAL)}:*"


def embedding_key(prefix: str, embedder: str, space: str, owner: str, digest: str) -> str:
    """One text's vector in one embedding space (`space`: the model fingerprint), for one owner
    (`owner`: the hashed tenant and user the text was embedded for, so erasing one owner's rows
    leaves another's row of the same text)."""
    return f"{prefix}:emb:{embedder}:{space}:{owner}:{digest}"


def embedding_pattern(prefix: str, owner: str) -> str:
    """A SCAN pattern over the embedding rows of owners matching the glob `owner`."""
    return f"{prefix}:emb:*:*:{owner}:*"


# -- semantic feedback --------------------------------------------------------------------------


def hits_log(prefix: str, namespace: str) -> str:
    """`{prefix}:~hits:{namespace}`: the capped log of a namespace's served semantic hits."""
    return f"{prefix}:~hits:{namespace}"


def wrong_log(prefix: str, namespace: str) -> str:
    """`{prefix}:~wrong:{namespace}`: the capped log of a namespace's reported wrong hits."""
    return f"{prefix}:~wrong:{namespace}"


def feedback_index(prefix: str, kind: str) -> str:
    """`{prefix}:~{kind}-logs`: the names of every namespace's logs of one kind (`hits` or
    `wrong`), so listing them never scans the key space."""
    return f"{prefix}:~{kind}-logs"


def floor_key(prefix: str, entry: str) -> str:
    """`{prefix}:~floor:{entry key}`: the similarity a query must exceed to be answered by this
    entry after a wrong hit was reported (the entry's hash tag comes first: the same slot)."""
    return f"{prefix}:~floor:{entry}"


# -- verified semantic hits ---------------------------------------------------------------------


def verified_key(prefix: str, namespace: str, space: str) -> str:
    """A namespace's verified-hit evidence in one embedding space: same / different counts per
    similarity bin (core/verified.py)."""
    return f"{prefix}:{namespace}:~verified:{space}"


def entry_state_key(prefix: str, key: str) -> str:
    """`{prefix}:~vstate:{entry key}`: what one entry has been judged (verified hits); it keeps
    the entry's hash tag, so the same cluster slot."""
    return f"{prefix}:~vstate:{key}"


# -- the service --------------------------------------------------------------------------------


def warm_key(prefix: str, kind: str, ident: str) -> str:
    """A warm run's record (`kind`: job, done, lease or jti)."""
    return f"{prefix}:~warm:{kind}:{ident}"


def limits_prefix(prefix: str = "llmemo") -> str:
    """The prefix of the service's rate-limit counters (the `limits` library adds the rest)."""
    return f"{prefix}:~limits"


# -- maintenance --------------------------------------------------------------------------------


def rekey_state(prefix: str) -> str:
    """`{prefix}:~rekey`: where an interrupted `llmemo rekey` continues (its scan cursor)."""
    return f"{prefix}:~rekey"


# -- the dashboard's rollups (service/rollups.py) -----------------------------------------------


def rollup_key(prefix: str, level: str, start: int, lane: int) -> str:
    """A finished rollup bucket: `{prefix}:~dash:{m|t|h}:{start epoch s}:{lane}`."""
    return f"{prefix}:~dash:{level}:{start}:{lane}"


def rollup_current(prefix: str, lane: int) -> str:
    """A service instance's current rollups (its buckets so far, breaker state, store errors)."""
    return f"{prefix}:~dash:cur:{lane}"


def rollup_lane(prefix: str, lane: int) -> str:
    """The lease of a rollup lane, held by the instance that writes under that number."""
    return f"{prefix}:~dash:lane:{lane}"


def rollup_lanes(prefix: str) -> str:
    """The counters naming every rollup lane ever taken (readers look at those)."""
    return f"{prefix}:~dash:lanes"
