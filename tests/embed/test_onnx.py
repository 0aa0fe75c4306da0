"""The int8 ONNX MiniLM: parity with sentence-transformers' float32 model (tolerance stated),
its own embedding space, the checksum, and which runtime the "minilm" spec picks."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmemo.core.semantic import embedding_space
from llmemo.embed import ThreadedEmbedder, async_from_spec, from_spec
from llmemo.embed import onnx as onnx_module
from llmemo.embed.cached_base import embedding_key
from llmemo.embed.minilm import MiniLMEmbedder
from llmemo.embed.onnx import OnnxMiniLMEmbedder, read_model
from llmemo.embed.weights import find_model_dir
from llmemo.errors import ConfigError, MissingExtraError

from .test_minilm import LONG_EN, PARAPHRASES, SENTENCES

PARITY = 0.99
"""The least cosine between an int8 vector and sentence-transformers' float32 vector of the same
text. The int8 weights move a vector by a small angle (median cosine 0.9996 over 2,000 questions
of the dev set, docs/benchmarks.md "Embedding runtimes"); the float32 numpy runtime stays at 0.999."""


@pytest.fixture(scope="module")
def int8() -> OnnxMiniLMEmbedder:
    return OnnxMiniLMEmbedder()


def test_parity_with_sentence_transformers(int8: OnnxMiniLMEmbedder, reference: Any) -> None:
    expected = reference.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=True)
    got = int8.embed(SENTENCES)
    assert got.shape == expected.shape == (len(SENTENCES), 384)
    assert got.dtype == np.float32
    cosines = (got * expected).sum(axis=1)
    worst = int(np.argmin(cosines))
    assert cosines.min() >= PARITY, f"cosine {cosines[worst]:.6f} for {SENTENCES[worst][:60]!r}"
    assert float(np.median(cosines)) >= 0.999


def test_the_tokenizer_shipped_with_llmemo_is_the_models(int8: OnnxMiniLMEmbedder) -> None:
    """llmemo's copy of tokenizer.json gives the ids of the model folder's own."""
    from tokenizers import Tokenizer

    theirs = Tokenizer.from_file(str(find_model_dir() / "tokenizer.json"))
    theirs.no_padding()
    theirs.enable_truncation(max_length=256)
    for text in SENTENCES:
        assert int8._tokenizer.encode(text).ids == theirs.encode(text).ids


def test_rows_are_unit_and_independent_of_the_batch(int8: OnnxMiniLMEmbedder) -> None:
    together = int8.embed(SENTENCES)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    alone = np.stack([int8.embed([text])[0] for text in [*SENTENCES[:6], LONG_EN]])
    np.testing.assert_allclose(together[[0, 1, 2, 3, 4, 5, 25]], alone, atol=1e-5)
    small = OnnxMiniLMEmbedder(batch_size=3)
    np.testing.assert_allclose(small.embed(SENTENCES), together, atol=1e-5)


def test_two_threads_give_the_same_vectors(int8: OnnxMiniLMEmbedder) -> None:
    np.testing.assert_allclose(
        OnnxMiniLMEmbedder(threads=2).embed(SENTENCES), int8.embed(SENTENCES), atol=1e-5
    )


@pytest.mark.parametrize(("query", "paraphrase", "unrelated"), PARAPHRASES)
def test_paraphrases_are_closer_than_unrelated_texts(
    int8: OnnxMiniLMEmbedder, query: str, paraphrase: str, unrelated: str
) -> None:
    q, p, u = int8.embed([query, paraphrase, unrelated])
    assert float(q @ p) > 0.7
    assert float(q @ u) < 0.3


def test_its_own_embedding_space(int8: OnnxMiniLMEmbedder, minilm: MiniLMEmbedder) -> None:
    """The int8 and float32 vectors never share an index scope or an embedding-cache key."""
    assert (int8.name, int8.model, int8.dim) == ("minilm-int8", "all-MiniLM-L6-v2", 384)
    assert embedding_space(int8) == "minilm-int8:all-MiniLM-L6-v2"
    assert embedding_space(int8) != embedding_space(minilm)
    labelled = OnnxMiniLMEmbedder(model="mine")
    assert embedding_space(labelled) != embedding_space(MiniLMEmbedder(model="mine"))
    assert embedding_key("llmemo", int8.name, int8.model, 384, "hi") != embedding_key(
        "llmemo", minilm.name, minilm.model, 384, "hi"
    )
    assert int8.embed([]).shape == (0, 384)


def test_a_file_with_another_checksum_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match=r"is not the all-MiniLM-L6-v2 int8 model: sha256 "):
        OnnxMiniLMEmbedder(fake)
    with pytest.raises(ConfigError, match="onnxruntime cannot load"):
        OnnxMiniLMEmbedder(fake, sha256=None)  # unchecked, and still not a model
    with pytest.raises(ConfigError, match="cannot read the ONNX model"):
        OnnxMiniLMEmbedder(tmp_path / "missing.onnx")
    assert read_model(fake, None) == b"not a model"


def test_the_environment_variable_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(onnx_module.ENV, str(tmp_path / "missing.onnx"))
    assert onnx_module.available()  # so "minilm" does not fall back past a typo
    with pytest.raises(ConfigError, match=r"missing\.onnx"):
        from_spec("minilm")
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(onnx_module.find_model({}).read_bytes())
    monkeypatch.setenv(onnx_module.ENV, str(copy))
    assert OnnxMiniLMEmbedder().path == copy


def test_without_the_model_package_the_hint_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(onnx_module, "PACKAGE", "no_such_package_here")
    assert not onnx_module.available({})
    with pytest.raises(MissingExtraError, match=r"pip install 'llmemo\[semantic\]'$"):
        OnnxMiniLMEmbedder()


def test_bad_settings() -> None:
    for option in ({"threads": 0}, {"batch_size": 0}, {"threads": True}):
        with pytest.raises(ConfigError, match="must be an int >= 1"):
            OnnxMiniLMEmbedder(**option)
    with pytest.raises(ConfigError, match="max_tokens"):
        OnnxMiniLMEmbedder(max_tokens=1000)


def test_the_minilm_spec_picks_int8_unless_float_weights_are_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LLMEMO_MINILM_PATH", raising=False)
    monkeypatch.delenv(onnx_module.ENV, raising=False)
    assert isinstance(from_spec("minilm"), OnnxMiniLMEmbedder)
    assert isinstance(from_spec("minilm-int8", threads=2), OnnxMiniLMEmbedder)
    assert isinstance(from_spec("minilm-f32"), MiniLMEmbedder)
    assert isinstance(from_spec("minilm", path=find_model_dir()), MiniLMEmbedder)
    monkeypatch.setenv("LLMEMO_MINILM_PATH", str(find_model_dir()))
    assert isinstance(from_spec("minilm"), MiniLMEmbedder)
    monkeypatch.delenv("LLMEMO_MINILM_PATH")
    monkeypatch.setattr(onnx_module, "PACKAGE", "no_such_package_here")
    assert isinstance(from_spec("minilm"), MiniLMEmbedder)  # no onnx model: the float weights


def test_with_no_model_at_all_the_hint_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmemo.embed import weights

    for name in ("LLMEMO_MINILM_PATH", onnx_module.ENV, "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(onnx_module, "PACKAGE", "no_such_package_here")
    monkeypatch.setattr(weights, "PACKAGE", "no_such_package_here")
    with pytest.raises(MissingExtraError, match=r"pip install 'llmemo\[semantic\]'$"):
        from_spec("minilm")
    with pytest.raises(ConfigError, match="no '@URL'"):
        from_spec("minilm-int8@http://localhost:1")


def test_async_spec_runs_in_a_thread() -> None:
    embedder = async_from_spec("minilm")
    assert isinstance(embedder, ThreadedEmbedder)
    assert isinstance(embedder.sync, OnnxMiniLMEmbedder)
    assert isinstance(async_from_spec("minilm-f32").sync, MiniLMEmbedder)  # type: ignore[attr-defined]


def test_loads_and_embeds_without_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: socket.socket, address: object) -> None:
        raise AssertionError(f"network access to {address!r}")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert OnnxMiniLMEmbedder().embed(["offline"]).shape == (1, 384)


def test_loads_beside_the_local_index() -> None:
    """usearch is imported first (the local index), then onnxruntime: with the usearch releases
    the semantic extra excludes (2.26.2 to 2.26.6) this process died with SIGSEGV."""
    code = (
        "import usearch.index\n"
        "from llmemo.embed.onnx import OnnxMiniLMEmbedder\n"
        "print(OnnxMiniLMEmbedder().embed(['loaded']).shape)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "(1, 384)"), done.stderr[-2000:]


def test_both_runtimes_take_the_shipped_threshold(int8: OnnxMiniLMEmbedder) -> None:
    """Measured: the int8 vectors keep precision/recall at 0.93 + guard (docs/benchmarks.md)."""
    from llmemo.core.semantic import SemanticLayer, default_threshold

    assert default_threshold("minilm-int8") == default_threshold("minilm-f32") == 0.93
    assert default_threshold("minilm") == 0.93
    assert SemanticLayer(int8).threshold == 0.93
