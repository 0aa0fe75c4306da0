"""MiniLMEmbedder.embed_tokens: the token vectors behind a sentence vector, from the same pass.

bench/semantic_quality.py measures token-alignment verifiers with them (docs/benchmarks.md).
"""

from __future__ import annotations

import numpy as np

from llmemo.embed.minilm import MiniLMEmbedder

TEXTS = [
    "What is the capital of France?",
    "Which city is France's capital?",
    "Tokenisation splits unbelievably long words.",
]


def test_the_sentence_vectors_are_embeds_own(minilm: MiniLMEmbedder) -> None:
    vectors, _ = minilm.embed_tokens(TEXTS)
    assert np.array_equal(vectors, minilm.embed(TEXTS))
    # depth = every layer is the full model; depth 0 (static token embeddings) is not
    assert np.array_equal(minilm.embed_tokens(TEXTS, len(minilm._bert.layers))[0], vectors)
    static = minilm.embed_tokens(TEXTS, 0)[0]
    assert static.shape == vectors.shape
    assert not np.allclose(static, vectors, atol=1e-3)


def test_one_unit_row_per_wordpiece_without_cls_and_sep(minilm: MiniLMEmbedder) -> None:
    _, states = minilm.embed_tokens(TEXTS)
    first = states[0]
    assert first.tokens == ("what", "is", "the", "capital", "of", "france", "?")
    assert first.words == (0, 1, 2, 3, 4, 5, 6)
    assert first.vectors.shape == (7, minilm.dim)
    assert first.vectors.dtype == np.float32
    for state in states:
        assert len(state.tokens) == len(state.words) == state.vectors.shape[0]
        assert np.allclose(np.linalg.norm(state.vectors, axis=1), 1.0, atol=1e-5)
    long_word = states[2]
    assert any(token.startswith("##") for token in long_word.tokens)  # pieces of one word...
    assert len(set(long_word.words)) < len(long_word.words)  # ...share its word index


def test_token_vectors_are_contextual_and_align_across_paraphrases(
    minilm: MiniLMEmbedder,
) -> None:
    _, (a, b, _) = minilm.embed_tokens(TEXTS)
    sims = a.vectors @ b.vectors.T
    for word in ("capital", "france"):
        best = b.tokens[int(sims[a.tokens.index(word)].argmax())]
        assert best == word
    # the same word in two sentences: similar but not identical vectors (context changes them)
    same = float(sims[a.tokens.index("france"), b.tokens.index("france")])
    assert 0.5 < same < 0.999


def test_empty_inputs(minilm: MiniLMEmbedder) -> None:
    vectors, states = minilm.embed_tokens([])
    assert vectors.shape == (0, minilm.dim) and states == []
    vectors, (blank,) = minilm.embed_tokens([""])
    assert vectors.shape == (1, minilm.dim)
    assert blank.tokens == () and blank.vectors.shape == (0, minilm.dim)
