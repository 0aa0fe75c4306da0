"""RediSearchIndex beyond the contract: schema, idempotent creation, key layout, dtypes, errors."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
import redis
from redis.crc import key_slot

from llmemo.errors import StoreError
from llmemo.index import RediSearchIndex
from llmemo.index.base import IndexItem, VectorIndexError, entry_key, record_key
from llmemo.index.redisearch_base import (
    HNSW,
    create_args,
    escape_tag,
    hybrid_policy,
    parse_script,
    parse_search,
    scope_filter,
    script_counts,
    search_index_name,
)
from tests.index.conftest import DIM, basis, scope

ENTRY = "llmemo:default:1:x:{" + "ab" * 32 + "}"


@pytest.fixture
def client(redis_stack_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_stack_url) as client:
        yield client


def test_names_and_keys() -> None:
    name = search_index_name("llmemo", 384, "float16")
    assert name == "llmemo:~vec2:f16:384"
    record = record_key(name, ENTRY)
    assert entry_key(name, record) == ENTRY
    assert key_slot(record.encode()) == key_slot(ENTRY.encode())  # same cluster slot as the entry


def test_create_args_have_no_text_field_and_a_cosine_hnsw() -> None:
    args = create_args("i", 384, "float32", HNSW(m=8, ef_construction=100, ef_runtime=20))
    assert args[:7] == ["FT.CREATE", "i", "ON", "HASH", "PREFIX", 1, "i:"]
    assert "TEXT" not in args
    assert args[7:11] == ["SCHEMA", "s", "TAG", "CASESENSITIVE"]  # one TAG: the scope digest
    assert args.count("TAG") == 1
    vector = args[args.index("VECTOR") :]
    assert vector[:3] == ["VECTOR", "HNSW", 12]
    assert vector[3:9] == ["TYPE", "FLOAT32", "DIM", 384, "DISTANCE_METRIC", "COSINE"]


def test_query_escaping() -> None:
    assert escape_tag("minilm%3Aall-MiniLM") == "minilm\\%3Aall\\-MiniLM"
    assert escape_tag("~") == "\\~"
    assert scope_filter(scope(tenant=None)) == "@s:{" + scope(tenant=None).digest() + "}"
    assert scope_filter(scope(tenant="~")) != scope_filter(scope(tenant=None))


def test_parse_resp2_and_resp3_replies() -> None:
    name = "llmemo:~vec2:f16:4"
    doc = f"{name}:{ENTRY}".encode()
    resp2 = [1, doc, [b"dist", b"0.25"]]
    resp3 = {
        b"total_results": 1,
        b"results": [{b"id": doc, b"extra_attributes": {b"dist": b"0.25"}}],
    }
    for reply in (resp2, resp3):
        [match] = parse_search(reply, name, 0.0)
        assert (match.key, match.similarity, match.payload) == (ENTRY, 0.75, None)
        assert parse_search(reply, name, 0.8) == []
    assert parse_search([1, doc, []], name, 0.0) == []  # expired mid-query: no score


def test_parse_script_reply() -> None:
    reply = [-1, -1, b"b", b"0.5", None, ENTRY.encode(), b"0.25", b"\x00entry"]
    found = parse_script(reply, 0.0)
    assert [(m.key, m.similarity, m.payload) for m in found] == [
        (ENTRY, 0.75, b"\x00entry"),
        ("b", 0.5, None),  # its entry is gone: the caller drops the vector
    ]
    assert [m.key for m in parse_script(reply, 0.6)] == [ENTRY]
    assert parse_script([-1, -1], 0.0) == []
    assert script_counts(reply) is None  # not asked to count
    assert script_counts([6000, 9000]) == (6000, 9000)


def test_the_graph_is_walked_only_for_a_big_scope_that_is_a_big_share() -> None:
    assert hybrid_policy(10_000, 23_000) == "BATCHES"  # one scope holds the whole index
    assert hybrid_policy(5_000, 6_000) is None  # small: brute force is cheap and exact
    assert hybrid_policy(10_000, 1_000_000) is None  # maybe a small share: the planner decides


def test_a_scope_holding_most_of_the_index_walks_the_graph(client: redis.Redis) -> None:
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((6000, DIM)).astype(np.float32)
    index = RediSearchIndex(client, DIM)
    index.add_many([IndexItem(f"k{i}", v, scope()) for i, v in enumerate(vectors)])
    index.add_many([IndexItem(f"o{i}", v, scope(tenant="t")) for i, v in enumerate(vectors[:9])])
    assert index._plan(scope()) == (None, True)  # unknown: the planner's choice, and count
    for query in range(3):
        assert [m.key for m in index.search(vectors[query], scope())] == [f"k{query}"]
        assert [m.key for m in index.search(vectors[query], scope(tenant="t"))] == [f"o{query}"]
    assert index._plan(scope()) == ("BATCHES", False)  # counted once, trusted for a while
    assert index._plan(scope(tenant="t")) == (None, False)


def test_creation_is_idempotent_and_shared(client: redis.Redis) -> None:
    first = RediSearchIndex(client, DIM)
    second = RediSearchIndex(client, DIM)
    first.create()
    second.create()  # "Index already exists" is success
    first.add(IndexItem(ENTRY, basis(0), scope(), b"x"))
    assert [m.key for m in second.search(basis(0), scope())] == [ENTRY]
    assert client.execute_command("FT._LIST") == [first.name.encode()]


def test_index_dropped_behind_its_back_is_recreated_over_existing_hashes(
    client: redis.Redis,
) -> None:
    index = RediSearchIndex(client, DIM)
    client.set(ENTRY, b"x")
    index.add(IndexItem(ENTRY, basis(0), scope(), b"x"))
    client.execute_command("FT.DROPINDEX", index.name)  # keeps the hashes
    assert [m.key for m in index.search(basis(0), scope())] in ([], [ENTRY])  # recreated here
    for _ in range(100):  # the server re-indexes existing hashes in the background
        found = index.search(basis(0), scope())
        if found:
            break
        time.sleep(0.02)
    assert [(m.key, m.payload) for m in found] == [(ENTRY, b"x")]


def test_record_layout_ttl_and_dtype(client: redis.Redis) -> None:
    for dtype, width in (("float16", 2), ("float32", 4)):
        index = RediSearchIndex(client, DIM, dtype=dtype)
        index.add(IndexItem(ENTRY, basis(3), scope(), b"answer", ttl=60))
        record = record_key(index.name, ENTRY)
        fields = client.hgetall(record)
        assert fields == {b"s": scope().digest().encode(), b"v": fields[b"v"]}  # no answer copy
        assert len(fields[b"v"]) == DIM * width
        assert 59_000 < client.pttl(record) <= 60_000
        index.add(IndexItem(ENTRY, basis(3), scope(), None, ttl=None))  # replaces: no TTL
        assert client.pttl(record) == -1


def test_float16_and_float32_agree(client: redis.Redis) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((50, DIM)).astype(np.float32)
    half = RediSearchIndex(client, DIM, dtype="float16")
    full = RediSearchIndex(client, DIM, dtype="float32")
    assert half.name != full.name
    for i, v in enumerate(vectors):
        half.add(IndexItem(f"k{i}", v, scope()))
        full.add(IndexItem(f"k{i}", v, scope()))
    query = vectors[0] + vectors[1]
    a = half.search(query, scope(), k=5)
    b = full.search(query, scope(), k=5)
    assert [m.key for m in a][:2] == [m.key for m in b][:2]
    for x, y in zip(a, b, strict=True):
        if x.key == y.key:
            assert x.similarity == pytest.approx(y.similarity, abs=2e-3)


def test_unrelated_keys_are_never_indexed(client: redis.Redis) -> None:
    index = RediSearchIndex(client, DIM)
    index.create()
    blob = basis(0).astype(np.float16).tobytes()
    fields = {"s": scope().digest(), "v": blob}
    client.hset(ENTRY, mapping=fields)  # a record-shaped hash outside the prefix
    client.hset("other:" + index.name + ":x", mapping=fields)
    client.hset(record_key("llmemo:~vec:f16:16", "y"), mapping=fields)  # the LocalIndex prefix
    client.set(record_key(index.name, "a-string"), b"not a hash")
    assert index.search(basis(0), scope(), k=5) == []
    assert index.count() == 0


def test_server_down_is_a_store_error() -> None:
    dead = redis.Redis(port=1, socket_connect_timeout=0.2)
    index = RediSearchIndex(dead, DIM)
    with pytest.raises(VectorIndexError, match=r"FT\.CREATE") as caught:
        index.search(basis(0), scope())
    assert isinstance(caught.value, StoreError)  # the cache fails open on it
    dead.close()


def test_drop_deletes_the_hashes(client: redis.Redis) -> None:
    index = RediSearchIndex(client, DIM)
    index.add(IndexItem(ENTRY, basis(0), scope(), b"x"))
    index.drop()
    index.drop()  # dropping a missing index is fine
    assert client.keys("*") == []
    assert client.execute_command("FT._LIST") == []
