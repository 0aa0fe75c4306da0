"""RediSearchIndex beyond the contract: schema, idempotent creation, key layout, dtypes, errors."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
import redis
from redis.crc import key_slot

from llmemo.errors import StoreError
from llmemo.index.base import IndexItem, VectorIndexError, entry_key, index_name, record_key
from llmemo.index.redisearch import (
    HNSW,
    RediSearchIndex,
    create_args,
    escape_tag,
    parse_search,
    scope_filter,
)
from tests.index.conftest import DIM, basis, scope

ENTRY = "llmemo:default:1:x:{" + "ab" * 32 + "}"


@pytest.fixture
def client(redis_stack_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_stack_url) as client:
        yield client


def test_names_and_keys() -> None:
    name = index_name("llmemo", 384, "float16")
    assert name == "llmemo:~vec:f16:384"
    record = record_key(name, ENTRY)
    assert entry_key(name, record) == ENTRY
    assert key_slot(record.encode()) == key_slot(ENTRY.encode())  # same cluster slot as the entry


def test_create_args_have_no_text_field_and_a_cosine_hnsw() -> None:
    args = create_args("i", 384, "float32", HNSW(m=8, ef_construction=100, ef_runtime=20))
    assert args[:7] == ["FT.CREATE", "i", "ON", "HASH", "PREFIX", 1, "i:"]
    assert "TEXT" not in args
    assert args.count("CASESENSITIVE") == 5
    vector = args[args.index("VECTOR") :]
    assert vector[:3] == ["VECTOR", "HNSW", 12]
    assert vector[3:9] == ["TYPE", "FLOAT32", "DIM", 384, "DISTANCE_METRIC", "COSINE"]


def test_query_escaping() -> None:
    assert escape_tag("minilm%3Aall-MiniLM") == "minilm\\%3Aall\\-MiniLM"
    assert escape_tag("~") == "\\~"
    text = scope_filter(scope(tenant=None))
    assert text.startswith("@ns:{default} @ver:{1} @tenant:{\\~} @fp:{c0ffee")


def test_parse_resp2_and_resp3_replies() -> None:
    name = "llmemo:~vec:f16:4"
    doc = f"{name}:{ENTRY}".encode()
    resp2 = [1, doc, [b"dist", b"0.25", b"p", b"\x00payload"]]
    resp3 = {
        b"total_results": 1,
        b"results": [{b"id": doc, b"extra_attributes": {b"dist": b"0.25", b"p": b"\x00payload"}}],
    }
    for reply in (resp2, resp3):
        [match] = parse_search(reply, name, 0.0)
        assert (match.key, match.similarity, match.payload) == (ENTRY, 0.75, b"\x00payload")
        assert parse_search(reply, name, 0.8) == []
    assert parse_search([1, doc, [b"p", b"x"]], name, 0.0) == []  # expired mid-query: no score


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
        assert set(fields) == {b"ns", b"ver", b"tenant", b"fp", b"model", b"vec", b"p"}
        assert len(fields[b"vec"]) == DIM * width
        assert fields[b"p"] == b"answer"
        assert 59_000 < client.pttl(record) <= 60_000
        index.add(IndexItem(ENTRY, basis(3), scope(), None, ttl=None))  # replaces: no p, no TTL
        assert b"p" not in client.hgetall(record)
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
    tags = scope().tags()
    client.hset(ENTRY, mapping={**tags, "vec": blob})  # an entry-shaped hash outside the prefix
    client.hset("other:" + index.name + ":x", mapping={**tags, "vec": blob})
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
