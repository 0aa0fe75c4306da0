"""Every store key shape, pinned to its literal form: stored data must still be found."""

from __future__ import annotations

import hashlib

from llmemo import Cache
from llmemo.core.request import entry_pattern, exact_key, lock_key
from llmemo.embed.cached_base import embedding_key, model_fingerprint, owner_glob, owner_tag
from llmemo.index.base import entry_key, index_name, log_key, record_key
from llmemo.index.local_base import record_pattern
from llmemo.index.redisearch_base import HNSW, create_args, search_index_name
from llmemo.service.ratelimit import storage_for
from llmemo.stores import keys
from llmemo.stores.memory import MemoryStore

SHA = "ab" * 32


def test_entry_keys() -> None:
    assert exact_key("llmemo", "app", 3, SHA) == f"llmemo:app:3:x:{{{SHA}}}"
    assert lock_key("llmemo", "app", 3, SHA) == f"llmemo:app:3:l:{{{SHA}}}"
    assert entry_pattern("llmemo") == "llmemo:*:*:x:*"
    assert entry_pattern("llmemo", "app", 3) == "llmemo:app:3:x:*"
    assert keys.stats_pattern("p") == "p:*:stats"
    assert keys.check_key("p", "00ff") == "p:check:00ff"


def test_namespace_keys_of_a_cache() -> None:
    cache = Cache(MemoryStore(), prefix="p")
    assert cache._meta_key("faq") == "p:faq:meta"
    assert cache._stats_key("faq") == "p:faq:stats"
    cache.close()


def test_vector_keys() -> None:
    assert index_name("p", 384, "float32") == "p:~vec:f32:384"
    assert index_name("p", 8, "float16") == "p:~vec:f16:8"
    assert search_index_name("p", 384, "float16") == "p:~vec2:f16:384"
    assert log_key("p", 384, "float32") == "p:~vlog:f32:384:{llmemo-index}"
    assert keys.vector_identity("p", "float16", 384) == "p:~vid:f16:384:{llmemo-index}"
    entry = f"p:app:3:x:{{{SHA}}}"
    record = record_key("p:~vec:f32:384", entry)
    assert record == f"p:~vec:f32:384:p:app:3:x:{{{SHA}}}"
    assert entry_key("p:~vec:f32:384", record) == entry
    assert record_pattern("p*:~vec:f32:384") == "p\\*:~vec:f32:384:*"
    args = create_args("p:~vec2:f32:4", 4, "float32", HNSW())
    assert args[:7] == ["FT.CREATE", "p:~vec2:f32:4", "ON", "HASH", "PREFIX", 1, "p:~vec2:f32:4:"]


def test_embedding_key() -> None:
    digest = hashlib.sha256(b"hello").hexdigest()
    space = hashlib.sha256(b"minilm\0all-MiniLM-L6-v2\x00384").hexdigest()[:16]
    assert model_fingerprint("minilm", "all-MiniLM-L6-v2", 384) == space
    assert embedding_key("p", "minilm", "all-MiniLM-L6-v2", 384, "hello") == (
        f"p:emb:minilm:{space}:-.-:{digest}"
    )
    alice = hashlib.sha256(b"user\0alice").hexdigest()[:16]
    acme = hashlib.sha256(b"tenant\0acme").hexdigest()[:16]
    assert owner_tag(None, "alice") == f"-.{alice}"
    assert owner_tag("acme", "alice") == f"{acme}.{alice}"
    assert embedding_key("p", "minilm", "all-MiniLM-L6-v2", 384, "hello", f"-.{alice}") == (
        f"p:emb:minilm:{space}:-.{alice}:{digest}"
    )
    assert keys.embedding_pattern("p", owner_glob(None, "alice")) == f"p:emb:*:*:*.{alice}:*"
    assert keys.embedding_pattern("p", owner_glob("acme", None)) == f"p:emb:*:*:{acme}.*:*"


def test_erasure_patterns() -> None:
    assert keys.meta_pattern("p") == "p:*:meta"
    assert keys.vector_records("p") == "p:~vec*"


def test_verified_hit_keys() -> None:
    space = "minilm:all-MiniLM-L6-v2"
    assert keys.verified_key("p", "faq", space) == "p:faq:~verified:minilm:all-MiniLM-L6-v2"
    entry = exact_key("p", "faq", 0, "ab")
    assert keys.entry_state_key("p", entry) == "p:~vstate:p:faq:0:x:{ab}"  # the entry's slot


def test_service_keys() -> None:
    assert keys.warm_key("p", "lease", "r1") == "p:~warm:lease:r1"
    assert keys.limits_prefix() == "llmemo:~limits"
    assert storage_for("memory://").__class__.__name__ == "MemoryStorage"
    redis = storage_for("redis://localhost:1")
    assert redis.bridge.key_prefix == "llmemo:~limits"  # type: ignore[attr-defined]


def test_maintenance_keys() -> None:
    assert keys.rekey_state("p") == "p:~rekey"


def test_rollup_keys() -> None:
    assert keys.rollup_key("p", "m", 1700000040, 3) == "p:~dash:m:1700000040:3"
    assert keys.rollup_current("p", 0) == "p:~dash:cur:0"
    assert keys.rollup_lane("p", 2) == "p:~dash:lane:2"
    assert keys.rollup_lanes("p") == "p:~dash:lanes"


def test_feedback_keys() -> None:
    entry = f"p:app:3:x:{{{SHA}}}"
    assert keys.hits_log("p", "app") == "p:~hits:app"
    assert keys.wrong_log("p", "app") == "p:~wrong:app"
    assert keys.feedback_index("p", "hits") == "p:~hits-logs"
    assert keys.floor_key("p", entry) == f"p:~floor:p:app:3:x:{{{SHA}}}"
