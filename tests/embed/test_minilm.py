"""The numpy MiniLM against sentence-transformers (the parity test), and its semantic sanity."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import numpy as np
import pytest

from llmemo.embed import ThreadedEmbedder, async_from_spec, from_spec
from llmemo.embed.minilm import MiniLMEmbedder
from llmemo.embed.weights import find_model_dir
from llmemo.errors import ConfigError

LONG_EN = " ".join(
    f"Sentence {i} of a long support ticket explains, once again, that the invoice is wrong."
    for i in range(40)
)
LONG_DE = "Der Kunde schreibt, dass die Rechnung für März doppelt abgebucht wurde. " * 30
LONG_CODE = "def add(a, b):\n    return a + b  # adds two numbers\n" * 60

# ~30 varied texts: questions, paraphrases, numbers, negation, code, URLs, emoji, eight languages,
# three texts far past 256 tokens (so truncation is exercised), empty and blank.
SENTENCES = [
    "What is the capital of France?",
    "Which city is France's capital?",
    "How do I reset my password?",
    "I forgot my password, how can I change it?",
    "Is 7 a prime number?",
    "Is 9 a prime number?",
    "Convert 10 USD to EUR",
    "Can't I cancel my subscription online?",
    "Write a Python function that reverses a linked list.",
    "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) > 1;",
    "See https://example.com/docs?page=2#install for the install guide.",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG!!!",
    "naïve café résumé coöperate",
    "🙂👍 thanks, that worked 🎉",
    "Quelle est la capitale de la France ?",
    "Wie spät ist es gerade in Tokio?",
    "¿Dónde está la biblioteca más cercana?",
    "Привет, как дела? Что нового?",
    "東京の人口は何人ですか？",
    "北京是中国的首都。",
    "ما هي عاصمة فرنسا؟",
    "भारत की राजधानी क्या है?",
    "a",
    "supercalifragilisticexpialidocious" * 4,
    "Summarise the following meeting notes in three bullet points for the weekly status email.",
    LONG_EN,
    LONG_DE,
    LONG_CODE,
    "",
    "   \n\t  ",
]


def test_the_long_texts_are_truncated(minilm: MiniLMEmbedder) -> None:
    for text in (LONG_EN, LONG_DE, LONG_CODE):
        assert len(minilm._tokenizer.encode(text).ids) == 256


def test_the_tokenizer_reads_a_bounded_prefix(minilm: MiniLMEmbedder) -> None:
    """Only `max_chars` (32 a token) are tokenised: a 3 MB text costs what 8 KB does. For prose,
    code and other languages the cut changes no token the model reads."""
    assert minilm.max_chars == 256 * 32
    tokenizer = minilm._tokenizer
    for text in (LONG_EN, LONG_DE, LONG_CODE, "東京は日本の首都です。" * 1000):
        long = text * (2 * minilm.max_chars // len(text) + 1)
        assert tokenizer.encode(long[: minilm.max_chars]).ids == tokenizer.encode(long).ids
    # what is past the prefix is never read, even where the whole text would give other tokens
    padded = " " * minilm.max_chars + "cats and dogs"
    np.testing.assert_array_equal(minilm.embed([padded]), minilm.embed([""]))
    assert not np.array_equal(minilm.embed([padded]), minilm.embed(["cats and dogs"]))


def test_parity_with_sentence_transformers(minilm: MiniLMEmbedder, reference: Any) -> None:
    expected = reference.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=True)
    got = minilm.embed(SENTENCES)
    assert got.shape == expected.shape == (len(SENTENCES), 384)
    assert got.dtype == np.float32
    cosines = (got * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    worst = int(np.argmin(cosines))
    assert cosines.min() >= 0.999, f"cosine {cosines[worst]:.6f} for {SENTENCES[worst][:60]!r}"


def test_parity_one_text_at_a_time(minilm: MiniLMEmbedder, reference: Any) -> None:
    """Batch 1 (no padding at all) matches as well as a padded batch does."""
    for text in (SENTENCES[0], SENTENCES[14], LONG_EN):
        expected = reference.encode([text], convert_to_numpy=True, normalize_embeddings=True)
        assert float(minilm.embed([text])[0] @ expected[0]) >= 0.999


def test_rows_are_unit_and_independent_of_the_batch(minilm: MiniLMEmbedder) -> None:
    together = minilm.embed(SENTENCES)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    alone = np.stack([minilm.embed([text])[0] for text in [*SENTENCES[:6], LONG_EN]])
    np.testing.assert_allclose(together[[0, 1, 2, 3, 4, 5, 25]], alone, atol=1e-5)
    shuffled = list(reversed(SENTENCES))
    np.testing.assert_allclose(minilm.embed(shuffled)[::-1], together, atol=1e-5)


def test_small_batches_give_the_same_vectors(minilm: MiniLMEmbedder) -> None:
    small = MiniLMEmbedder(batch_size=3)
    np.testing.assert_allclose(small.embed(SENTENCES), minilm.embed(SENTENCES), atol=1e-5)


PARAPHRASES = [
    (
        "What is the capital of France?",
        "Which city is France's capital?",
        "How do I bake sourdough bread?",
    ),
    (
        "How do I reset my password?",
        "I forgot my password, how can I change it?",
        "What's the weather in Rome?",
    ),
    (
        "Cheap flights from London to Paris",
        "Low-cost airfare London to Paris",
        "Symptoms of the flu in children",
    ),
    (
        "How old is the universe?",
        "What is the age of the universe?",
        "Best way to learn the guitar",
    ),
]


@pytest.mark.parametrize(("query", "paraphrase", "unrelated"), PARAPHRASES)
def test_paraphrases_are_closer_than_unrelated_texts(
    minilm: MiniLMEmbedder, query: str, paraphrase: str, unrelated: str
) -> None:
    q, p, u = minilm.embed([query, paraphrase, unrelated])
    assert float(q @ p) > 0.7
    assert float(q @ u) < 0.3
    assert float(q @ p) - float(q @ u) > 0.5


def test_no_texts_no_work(minilm: MiniLMEmbedder) -> None:
    assert minilm.embed([]).shape == (0, 384)


def test_identity(minilm: MiniLMEmbedder) -> None:
    assert (minilm.name, minilm.model, minilm.dim) == ("minilm", "all-MiniLM-L6-v2", 384)


def test_loads_and_embeds_without_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing reaches for the hub (or anything else): every outgoing connection fails here."""

    def refuse(self: socket.socket, address: object) -> None:
        raise AssertionError(f"network access to {address!r}")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert MiniLMEmbedder().embed(["offline"]).shape == (1, 384)


def test_from_a_model_folder(tmp_path: Any) -> None:
    embedder = MiniLMEmbedder(find_model_dir(), model="my-minilm")
    assert embedder.model == "my-minilm"
    assert MiniLMEmbedder(find_model_dir()).model == "model"  # the folder's name
    with pytest.raises(ConfigError, match=r"tokenizer\.json"):
        MiniLMEmbedder(tmp_path)


def test_refuses_a_model_that_is_not_mean_pooled(tmp_path: Any) -> None:
    folder = tmp_path / "cls-model"
    (folder / "1_Pooling").mkdir(parents=True)
    for name in ("tokenizer.json", "model.safetensors", "config.json"):
        (folder / name).symlink_to(find_model_dir() / name)
    (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    with pytest.raises(ConfigError, match="mean pooling only"):
        MiniLMEmbedder(folder)


def test_bad_batch_size() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        MiniLMEmbedder(batch_size=0)


def test_from_spec(minilm: MiniLMEmbedder) -> None:
    embedder = from_spec("minilm-f32")  # "minilm" alone: int8 on onnxruntime (test_onnx.py)
    assert isinstance(embedder, MiniLMEmbedder)
    np.testing.assert_allclose(embedder.embed(["hello"]), minilm.embed(["hello"]), atol=1e-6)
    with pytest.raises(ConfigError, match="no '@URL'"):
        from_spec("minilm@http://localhost:1")


@pytest.mark.asyncio
async def test_threaded_runs_off_the_event_loop(minilm: MiniLMEmbedder) -> None:
    embedder = async_from_spec("minilm-f32")
    assert isinstance(embedder, ThreadedEmbedder)
    assert (embedder.name, embedder.model, embedder.dim) == ("minilm", "all-MiniLM-L6-v2", 384)
    threaded = ThreadedEmbedder(minilm)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    ticker = asyncio.create_task(tick())
    vectors = await threaded.embed(SENTENCES)
    ticker.cancel()
    np.testing.assert_allclose(vectors, minilm.embed(SENTENCES), atol=1e-6)
    assert ticks > 1  # the loop kept running while the model computed
    assert (await threaded.embed([])).shape == (0, 384)
