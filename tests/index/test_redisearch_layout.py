"""RediSearchIndex's record layout (issue 4's memory target): one TAG, no copy of the answer,
the entry read from its own key in the search's round trip, a versioned index name."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from llmemo.index import RediSearchIndex
from llmemo.index.base import IndexItem, record_key
from llmemo.index.redisearch_base import LAYOUT
from tests.index.conftest import DIM, basis, scope

ENTRY = "llmemo:default:1:x:{" + "cd" * 32 + "}"


class Counting(redis.Redis):
    """A real client that counts the commands it sends (each one a round trip here)."""

    sent: list[str]

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(str(args[0]))
        return super().execute_command(*args, **options)


@pytest.fixture
def client(redis_stack_url: str) -> Iterator[Counting]:
    with Counting.from_url(redis_stack_url) as client:
        client.sent = []
        yield client


def test_the_entry_is_kept_once_and_comes_back_with_the_search(client: Counting) -> None:
    index = RediSearchIndex(client, DIM)
    entry = b"\x00encoded entry" * 50
    client.set(ENTRY, entry, ex=60)  # the cache stores the entry, then indexes it
    index.add(IndexItem(ENTRY, basis(0), scope(), entry, ttl=60))
    record = client.hgetall(record_key(index.name, ENTRY))
    assert set(record) == {b"s", b"v"}
    assert entry not in b"".join(record.values())  # Redis holds the answer once

    index.search(basis(0), scope())  # the first search may load the script
    client.sent.clear()
    [match] = index.search(basis(0), scope())
    assert (match.key, match.payload) == (ENTRY, entry)
    assert client.sent == ["EVALSHA"]  # KNN + the entry: one round trip

    client.set(ENTRY, b"refreshed", ex=60)
    assert index.search(basis(0), scope())[0].payload == b"refreshed"
    client.delete(ENTRY)
    [gone] = index.search(basis(0), scope())
    assert (gone.key, gone.payload) == (ENTRY, None)  # the caller finds it gone and drops it


def test_expired_vectors_are_never_matches(client: Counting) -> None:
    index = RediSearchIndex(client, DIM)
    index.add(IndexItem("short", basis(0), scope(), ttl=0.05))
    index.add(IndexItem("long", basis(0) + basis(1), scope(), ttl=60))
    time.sleep(0.1)  # expired; the server's expiry cycle may not have removed it yet
    assert [m.key for m in index.search(basis(0), scope(), k=5)] == ["long"]


def test_an_index_of_the_older_layout_is_never_reused(client: Counting) -> None:
    old = "llmemo:~vec:f16:16"  # five TAGs and the answer in the hash
    client.execute_command(
        "FT.CREATE", old, "ON", "HASH", "PREFIX", 1, f"{old}:", "SCHEMA",
        "ns", "TAG", "ver", "TAG", "tenant", "TAG", "fp", "TAG", "model", "TAG",
        "vec", "VECTOR", "HNSW", 6, "TYPE", "FLOAT16", "DIM", DIM, "DISTANCE_METRIC", "COSINE",
    )  # fmt: skip
    index = RediSearchIndex(client, DIM)
    assert index.name == f"llmemo:~vec{LAYOUT}:f16:{DIM}" != old
    index.add(IndexItem(ENTRY, basis(0), scope()))
    assert {n.decode() for n in client.execute_command("FT._LIST")} == {old, index.name}
    assert [m.key for m in index.search(basis(0), scope())] == [ENTRY]
    info = client.execute_command("FT.INFO", old)
    fields = info if isinstance(info, dict) else dict(zip(info[::2], info[1::2], strict=False))
    assert int(fields[b"num_docs"]) == 0  # the new records are not under the old prefix


@pytest.fixture
def no_scripts_url(redis_stack_url: str) -> Iterator[str]:
    """A user that may do everything but run scripts."""
    with redis.Redis.from_url(redis_stack_url) as admin:
        admin.execute_command(
            "ACL", "SETUSER", "noscripts", "on", ">pw", "~*", "&*", "+@all", "-@scripting"
        )
        try:
            yield redis_stack_url.replace("redis://", "redis://noscripts:pw@", 1)
        finally:
            admin.execute_command("ACL", "DELUSER", "noscripts")


def test_without_scripts_the_plain_search_answers_and_the_caller_gets(
    no_scripts_url: str, redis_stack_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        Counting.from_url(no_scripts_url) as client,
        redis.Redis.from_url(redis_stack_url) as admin,
    ):
        client.sent = []
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.evalsha("0" * 40, 0)
        index = RediSearchIndex(client, DIM)
        client.set(ENTRY, b"entry")
        index.add(IndexItem(ENTRY, basis(0), scope(), b"entry", ttl=60))
        index.add(IndexItem("short", basis(0) + basis(1), scope(), ttl=0.05))
        time.sleep(0.1)
        found = index.search(basis(0), scope(), k=5)
        assert [(m.key, m.payload) for m in found] == [(ENTRY, None)]  # expired one skipped
        assert "refuses scripts" in caplog.text
        client.sent.clear()
        assert [m.key for m in index.search(basis(0), scope())] == [ENTRY]
        assert client.sent == ["FT.SEARCH"]  # the script is not tried again
        assert admin.get(ENTRY) == b"entry"
