"""CachedEmbedder: each text is embedded once, the store's failures cost nothing but time."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pytest

from llmemo.embed import AsyncCachedEmbedder, CachedEmbedder, EmbedderError, Matrix
from llmemo.embed.base import empty, normalise
from llmemo.embed.cached_base import decode_vector, embedding_key, encode_vector, model_fingerprint
from llmemo.embed.minilm import MiniLMEmbedder
from llmemo.errors import ConfigError, StoreError
from llmemo.stores.memory import AsyncMemoryStore, MemoryStore


class HashEmbedder:
    """A deterministic 16-dimensional embedder: each text's vector comes from its sha256."""

    name = "hash"
    model = "sha256-16"
    dim = 16

    def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return empty(self.dim)
        raw = [
            np.frombuffer(hashlib.sha256(t.encode()).digest(), dtype=np.uint8)[:16] for t in texts
        ]
        return normalise(np.stack(raw).astype(np.float32) - 127.5, self.dim)


class CountingEmbedder:
    """Wraps an embedder and records every batch it is asked for."""

    def __init__(self, inner: HashEmbedder | MiniLMEmbedder) -> None:
        self.inner = inner
        self.name, self.model, self.dim = inner.name, inner.model, inner.dim
        self.batches: list[list[str]] = []

    @property
    def texts(self) -> int:
        return sum(len(batch) for batch in self.batches)

    def embed(self, texts: Sequence[str]) -> Matrix:
        self.batches.append(list(texts))
        return self.inner.embed(texts)


class AsyncCountingEmbedder(CountingEmbedder):
    async def embed(self, texts: Sequence[str]) -> Matrix:  # type: ignore[override]
        return super().embed(texts)


class DownStore(MemoryStore):
    """A store whose every read and write fails, as an unreachable Redis does."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def get(self, key: str, refresh: float | None = None) -> bytes | None:
        self.calls += 1
        raise StoreError("connection refused")

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        self.calls += 1
        raise StoreError("connection refused")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_second_call_is_served_by_the_store() -> None:
    counting = CountingEmbedder(HashEmbedder())
    cached = CachedEmbedder(counting, MemoryStore())
    first = cached.embed(["a", "b"])
    second = cached.embed(["b", "a"])
    assert counting.batches == [["a", "b"]]
    np.testing.assert_array_equal(second, first[::-1])
    assert (cached.hits, cached.misses) == (2, 2)


def test_only_misses_go_to_the_model_and_duplicates_once() -> None:
    counting = CountingEmbedder(HashEmbedder())
    cached = CachedEmbedder(counting, MemoryStore())
    cached.embed(["a", "b"])
    out = cached.embed(["c", "a", "c", "d", "b"])
    assert counting.batches == [["a", "b"], ["c", "d"]]
    np.testing.assert_array_equal(out, HashEmbedder().embed(["c", "a", "c", "d", "b"]))


def test_real_vectors_round_trip_exactly(minilm: MiniLMEmbedder) -> None:
    counting = CountingEmbedder(minilm)
    cached = CachedEmbedder(counting, MemoryStore())
    texts = ["What is the capital of France?", "Which city is France's capital?"]
    fresh = cached.embed(texts)
    again = cached.embed(texts)
    assert counting.texts == 2
    np.testing.assert_array_equal(again, fresh)
    assert again.dtype == np.float32
    assert again.shape == (2, 384)


def test_float16_halves_the_bytes_and_keeps_the_direction(minilm: MiniLMEmbedder) -> None:
    store = MemoryStore()
    cached = CachedEmbedder(minilm, store, dtype="float16")
    fresh = cached.embed(["hello world"])
    key = embedding_key("llmemo", "minilm", "all-MiniLM-L6-v2", 384, "hello world")
    assert len(store.get(key) or b"") == 384 * 2
    again = cached.embed(["hello world"])
    assert float(again[0] @ fresh[0]) > 0.9999
    np.testing.assert_allclose(np.linalg.norm(again, axis=1), 1.0, atol=1e-6)
    # A float32 reader of the same store reads the float16 value without a miss.
    reader = CachedEmbedder(CountingEmbedder(minilm), store)
    reader.embed(["hello world"])
    assert reader.hits == 1


def test_keys_separate_embedding_spaces_and_texts() -> None:
    key = embedding_key("llmemo", "openai", "text-embedding-3-small", 1536, "hi")
    assert key.startswith("llmemo:emb:openai:")
    assert key.endswith(hashlib.sha256(b"hi").hexdigest())
    others = {
        embedding_key("llmemo", "openai", "text-embedding-3-small", 512, "hi"),
        embedding_key("llmemo", "openai", "text-embedding-3-large", 1536, "hi"),
        embedding_key("llmemo", "ollama", "text-embedding-3-small", 1536, "hi"),
        embedding_key("llmemo", "openai", "text-embedding-3-small", 1536, "hi "),
        embedding_key("app2", "openai", "text-embedding-3-small", 1536, "hi"),
    }
    assert key not in others and len(others) == 5
    assert model_fingerprint("a", "b", 1) != model_fingerprint("a", "b", 2)


def test_a_store_shared_by_two_models_never_mixes_them() -> None:
    store = MemoryStore()
    small = CountingEmbedder(HashEmbedder())
    other = HashEmbedder()
    other.model = "another-model"
    other_counting = CountingEmbedder(other)
    CachedEmbedder(small, store).embed(["x"])
    CachedEmbedder(other_counting, store).embed(["x"])
    assert other_counting.texts == 1


def test_corrupt_values_are_misses_and_are_replaced() -> None:
    store = MemoryStore()
    counting = CountingEmbedder(HashEmbedder())
    cached = CachedEmbedder(counting, store)
    key = embedding_key("llmemo", "hash", "sha256-16", 16, "x")
    store.set(key, b"not a vector", None)
    np.testing.assert_array_equal(cached.embed(["x"]), HashEmbedder().embed(["x"]))
    assert counting.texts == 1
    assert decode_vector(store.get(key) or b"", 16) is not None
    nan = encode_vector(np.full(16, np.nan, dtype=np.float32), "float32")
    assert decode_vector(nan, 16) is None


def test_ttl_expires_and_hits_refresh_it() -> None:
    clock = Clock()
    counting = CountingEmbedder(HashEmbedder())
    cached = CachedEmbedder(counting, MemoryStore(clock=clock), ttl=100)
    cached.embed(["kept", "dropped"])
    clock.now += 60
    cached.embed(["kept"])  # a hit: its TTL starts again
    clock.now += 60
    cached.embed(["kept", "dropped"])
    assert counting.batches == [["kept", "dropped"], ["dropped"]]


def test_a_failing_store_falls_back_to_the_model_once_per_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counting = CountingEmbedder(HashEmbedder())
    store = DownStore()
    cached = CachedEmbedder(counting, store)
    out = cached.embed(["a", "b", "c"])
    np.testing.assert_array_equal(out, HashEmbedder().embed(["a", "b", "c"]))
    assert store.calls == 1  # one failed read; no writes to a store known to be down
    assert cached.store_errors == 1
    assert "embedding cache read failed" in caplog.text


def test_unsaved_vectors_are_written_by_save() -> None:
    counting = CountingEmbedder(HashEmbedder())
    store = MemoryStore()
    cached = CachedEmbedder(counting, store)
    cached.embed(["a"])
    vectors, unsaved = cached.embed_unsaved(["a", "b"])
    np.testing.assert_array_equal(vectors, HashEmbedder().embed(["a", "b"]))
    assert [key for key, _ in unsaved] == [embedding_key("llmemo", "hash", "sha256-16", 16, "b")]
    assert store.get(unsaved[0][0]) is None  # computed, not written
    cached.save(unsaved)
    cached.embed(["b"])
    assert counting.batches == [["a"], ["b"]]


def test_nothing_is_left_to_save_when_the_store_is_down() -> None:
    cached = CachedEmbedder(HashEmbedder(), DownStore())
    vectors, unsaved = cached.embed_unsaved(["a"])
    assert vectors.shape == (1, 16) and unsaved == ()


def test_a_failing_write_is_counted_and_ignored() -> None:
    class ReadOnly(MemoryStore):
        def set(self, key: str, value: bytes, ttl: float | None) -> None:
            raise StoreError("READONLY You can't write against a read only replica.")

    cached = CachedEmbedder(HashEmbedder(), ReadOnly())
    assert cached.embed(["a", "b"]).shape == (2, 16)
    assert cached.store_errors == 1


def test_embed_taken_writes_nothing_and_names_the_rows_it_read() -> None:
    counting = CountingEmbedder(HashEmbedder())
    store = MemoryStore()
    cached = CachedEmbedder(counting, store)
    cached.embed(["a"])
    vectors, rows = cached.embed_taken(["a", "b"])
    np.testing.assert_array_equal(vectors, HashEmbedder().embed(["a", "b"]))
    key_a, key_b = (embedding_key("llmemo", "hash", "sha256-16", 16, t) for t in "ab")
    assert rows == (key_a,)
    assert store.get(key_b) is None  # computed, never written
    cached.forget(rows)
    assert store.get(key_a) is None
    assert counting.batches == [["a"], ["b"]]


def test_a_failing_forget_is_counted_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    class NoDelete(MemoryStore):
        def delete(self, keys: Sequence[str]) -> int:
            raise StoreError("connection reset")

    cached = CachedEmbedder(HashEmbedder(), NoDelete())
    cached.embed(["a"])
    _, rows = cached.embed_taken(["a"])
    cached.forget(rows)
    assert cached.store_errors == 1
    assert "embedding cache delete failed" in caplog.text


def test_other_errors_are_not_swallowed() -> None:
    class Broken(MemoryStore):
        def get(self, key: str, refresh: float | None = None) -> bytes | None:
            raise RuntimeError("a bug, not an outage")

    with pytest.raises(RuntimeError, match="a bug"):
        CachedEmbedder(HashEmbedder(), Broken()).embed(["a"])


def test_an_embedder_returning_the_wrong_count_is_an_error() -> None:
    class Short(HashEmbedder):
        def embed(self, texts: Sequence[str]) -> Matrix:
            return super().embed(texts[:1])

    with pytest.raises(EmbedderError, match="1 vectors for 2 texts"):
        CachedEmbedder(Short(), MemoryStore()).embed(["a", "b"])


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="dtype"):
        CachedEmbedder(HashEmbedder(), MemoryStore(), dtype="int8")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ttl"):
        CachedEmbedder(HashEmbedder(), MemoryStore(), ttl=0)


def test_identity_and_empty_input() -> None:
    cached = CachedEmbedder(HashEmbedder(), MemoryStore())
    assert (cached.name, cached.model, cached.dim) == ("hash", "sha256-16", 16)
    assert cached.embed([]).shape == (0, 16)


@pytest.mark.asyncio
async def test_async_twin() -> None:
    counting = AsyncCountingEmbedder(HashEmbedder())
    cached = AsyncCachedEmbedder(counting, AsyncMemoryStore())
    assert (cached.name, cached.model, cached.dim) == ("hash", "sha256-16", 16)
    first = await cached.embed(["a", "b", "a"])
    second = await cached.embed(["b", "c"])
    assert counting.batches == [["a", "b"], ["c"]]
    np.testing.assert_array_equal(second[0], first[1])
    assert (cached.hits, cached.misses) == (1, 3)
    assert (await cached.embed([])).shape == (0, 16)


@pytest.mark.asyncio
async def test_async_unsaved_vectors_are_written_by_save() -> None:
    counting = AsyncCountingEmbedder(HashEmbedder())
    store = AsyncMemoryStore()
    cached = AsyncCachedEmbedder(counting, store)
    _, unsaved = await cached.embed_unsaved(["a"])
    assert await store.get(unsaved[0][0]) is None  # computed, not written
    await cached.save(unsaved)
    await cached.embed(["a"])
    assert counting.batches == [["a"]]


@pytest.mark.asyncio
async def test_async_twin_fails_open() -> None:
    class AsyncDown(AsyncMemoryStore):
        async def get(self, key: str, refresh: float | None = None) -> bytes | None:
            raise StoreError("timed out")

    cached = AsyncCachedEmbedder(AsyncCountingEmbedder(HashEmbedder()), AsyncDown())
    np.testing.assert_array_equal(await cached.embed(["a"]), HashEmbedder().embed(["a"]))
    assert cached.store_errors == 1
