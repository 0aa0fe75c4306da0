"""Erasure reaches every copy: traffic for several users on every store, one user wiped, then the
WHOLE keyspace (every key and value of every primary; the SQLite file and its write-ahead log)
holds no byte of that user's prompts or answers (zstd frames decompressed, sealed entries opened
with the keys), while the other users still hit, in this process and in a new one."""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import zstandard

from devtools.redis_cluster import RedisClusterServer
from devtools.redis_server import RedisServer
from devtools.upstash_gateway import UpstashGateway
from llmemo import Cache
from llmemo.core import entry as entries
from llmemo.core.crypto import keyring
from llmemo.core.erase import entry_of_record
from llmemo.core.semantic import SemanticLayer
from llmemo.embed.cached_base import owner_tag
from llmemo.errors import CorruptEntryError
from llmemo.index import LocalIndex
from llmemo.stores import RedisClusterStore, UpstashStore
from tests.core.helpers import Upstream, answer, chat
from tests.semantic.conftest import CountingEmbedder

USERS = ("alice", "bob", "carol")
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
SECRET = base64.b64encode(os.urandom(32)).decode()


def marker(user: str) -> str:
    return f"QZX{user.upper()}MARK7731"


Dump = Callable[[], list[tuple[str, bytes]]]


@dataclass
class Backend:
    """A way to open caches on one store (as separate processes would), and to read it raw."""

    open: Callable[[], Cache]
    dump: Dump


def _redis_dump(urls: list[str]) -> Dump:
    def dump() -> list[tuple[str, bytes]]:
        found: list[tuple[str, bytes]] = []
        for url in urls:
            with redis.Redis.from_url(url) as client:
                for raw in client.scan_iter(count=1000):
                    found += [(raw.decode(), raw), *_values(client, raw)]
        return found

    return dump


def _values(client: redis.Redis, raw: bytes) -> list[tuple[str, bytes]]:
    key = raw.decode()
    kind = client.type(raw).decode()
    if kind == "string":
        parts = [client.get(raw) or b""]
    elif kind == "hash":
        parts = [b for kv in client.hgetall(raw).items() for b in kv]
    elif kind == "stream":
        parts = [b for _, fields in client.xrange(raw) for kv in fields.items() for b in kv]
    elif kind == "list":
        parts = client.lrange(raw, 0, -1)
    elif kind == "set":
        parts = list(client.smembers(raw))
    elif kind == "zset":
        parts = [m for m, _ in client.zrange(raw, 0, -1, withscores=True)]
    else:
        raise AssertionError(f"unexpected key type {kind} at {key}")
    return [(key, part) for part in parts]


def _primaries(cluster: RedisClusterServer) -> list[str]:
    return [f"redis://127.0.0.1:{port}" for port in cluster.primaries()]


def _sqlite_dump(path: Path) -> Dump:
    def dump() -> list[tuple[str, bytes]]:
        return [
            (str(p), p.read_bytes())
            for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal"))
            if p.exists()
        ]

    return dump


def _texts(key: str, blob: bytes, ring: Any) -> Iterator[bytes]:
    """The blob, every zstd frame in it decompressed, the entry it holds opened; the same for
    its base64 decoding (the Upstash store sends and keeps values in base64)."""
    yield from _plain(key, blob, ring)
    try:
        decoded = base64.b64decode(blob, validate=True)
    except ValueError:
        return
    yield from _plain(key, decoded, ring)


def _plain(key: str, blob: bytes, ring: Any) -> Iterator[bytes]:
    yield blob
    start = blob.find(ZSTD_MAGIC)
    while start != -1:
        with contextlib.suppress(zstandard.ZstdError):
            yield zstandard.ZstdDecompressor().decompressobj().decompress(blob[start:])
        start = blob.find(ZSTD_MAGIC, start + 1)
    for name in (key, entry_of_record(key) or ""):
        try:
            head, doc = entries.decode_parts(blob, name, ring)
        except (CorruptEntryError, ValueError, IndexError):
            continue
        yield repr((head, doc)).encode()


def leaks(found: list[tuple[str, bytes]], needle: str, ring: Any = None) -> list[str]:
    """The keys (or files) where `needle` is still readable."""
    return sorted(
        {k for k, blob in found for text in _texts(k, blob, ring) if needle.encode() in text}
    )


@pytest.fixture(params=["sqlite", "redis", "redis-stack", "cluster", "upstash", "encrypted"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, embedder: CountingEmbedder
) -> Iterator[Backend]:
    def layer(index: Any = "auto") -> SemanticLayer:
        return SemanticLayer(embedder, index, threshold=0.85)

    kind = request.param
    if kind == "sqlite":
        path = tmp_path / "cache.db"
        yield Backend(
            lambda: Cache.from_url(f"sqlite:///{path}", semantic=layer()), _sqlite_dump(path)
        )
    elif kind in ("redis", "encrypted"):
        url = request.getfixturevalue("redis_url")
        options = {"encryption": [f"k1:{SECRET}"]} if kind == "encrypted" else {}
        yield Backend(lambda: Cache.from_url(url, semantic=layer(), **options), _redis_dump([url]))
    elif kind == "redis-stack":
        url = request.getfixturevalue("redis_stack_url")
        yield Backend(lambda: Cache.from_url(url, semantic=layer("redisearch")), _redis_dump([url]))
    elif kind == "cluster":
        url = request.getfixturevalue("redis_cluster_url")
        cluster = request.getfixturevalue("redis_cluster")

        def clustered() -> Cache:
            store = RedisClusterStore.from_url(url)
            return Cache(store, semantic=layer(LocalIndex(store, embedder.dim, poll_interval=0)))

        yield Backend(clustered, _redis_dump(_primaries(cluster)))
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        plain = request.getfixturevalue("redis_url")
        with UpstashGateway(server.url) as gateway:

            def upstash() -> Cache:
                store = UpstashStore.from_url(gateway.store_url)
                return Cache(
                    store, semantic=layer(LocalIndex(store, embedder.dim, poll_interval=0))
                )

            yield Backend(upstash, _redis_dump([plain]))


def question(user: str) -> str:
    return f"What is the capital of France? Ticket {marker(user)}"


def paraphrase(user: str) -> str:
    return f"Which city is the capital of France? Ticket {marker(user)}"


def traffic(cache: Cache, user: str) -> None:
    """Exact and semantic entries, a compressed answer and a semantic miss's embedding row."""
    mark = marker(user)
    fn = Upstream(answer(f"Paris, for {mark}."))
    assert cache.compute(chat(question(user)), fn, user=user).status == "miss"
    assert cache.compute(chat(paraphrase(user)), fn, user=user).status == "semantic"
    long = Upstream(answer(f"{mark} " + "a long answer, compressed. " * 80))
    assert cache.compute(chat(f"Write at length for {mark}"), long, user=user).status == "miss"
    cache.compute(chat(f"How do I bake bread? {mark}"), fn, user=user, no_store=True)
    assert cache.compute(chat(f"Tell me about {mark}", temperature=0), fn, user=user).stored


def test_a_wiped_user_leaves_no_byte_in_the_whole_keyspace(backend: Backend) -> None:
    ring = keyring([f"k1:{SECRET}"])
    cache = backend.open()
    for user in USERS:
        traffic(cache, user)
    before = backend.dump()
    assert leaks(before, marker("alice"), ring)  # the scan does see a user's data
    alice = owner_tag(None, "alice").split(".")[1].encode()  # her embedding rows' owner tag
    assert any(alice in key.encode() + blob for key, blob in before)

    report = cache.wipe(user="alice")

    assert report.entries >= 4 and report.embeddings >= 1 and report.vectors >= 1
    after = backend.dump()
    assert leaks(after, marker("alice"), ring) == []
    assert not any(alice in key.encode() + blob for key, blob in after)
    assert leaks(after, marker("bob"), ring)  # the others' data stays
    later = backend.open()  # another process, after the wipe
    for user in ("bob", "carol"):
        for reader in (cache, later):
            assert reader.lookup(chat(question(user)), user=user) is not None
            assert reader.lookup(chat(paraphrase(user)), user=user) is not None
    assert later.lookup(chat(question("alice")), user="alice") is None
    cache.close()
    later.close()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_wipe_without_a_semantic_layer_empties_other_processes_local_indexes(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, embedder: CountingEmbedder
) -> None:
    """`llmemo wipe` has no semantic layer: the delete events still reach running LocalIndexes."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path}/cache.db"
    else:
        url = request.getfixturevalue("redis_url")
    running = Cache.from_url(url)
    index = LocalIndex(running.backend, embedder.dim, poll_interval=0)
    running = Cache(running.backend, semantic=SemanticLayer(embedder, index, threshold=0.85))
    for user in ("alice", "bob"):
        traffic(running, user)
    before = index.count()
    with Cache.from_url(url) as wiper:  # no semantic layer, as the CLI
        report = wiper.wipe(user="alice")
    assert report.vectors >= 3
    assert index.count() == before - report.vectors  # the log's delete events, applied
    assert running.lookup(chat(paraphrase("bob")), user="bob") is not None
    running.close()
