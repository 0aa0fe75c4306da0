"""from_spec's table, the callable embedders, and the protocols' shape."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

import llmemo.embed
from llmemo.embed import (
    AsyncCallableEmbedder,
    AsyncEmbedder,
    AsyncOllamaEmbedder,
    AsyncOpenAIEmbedder,
    CallableEmbedder,
    Embedder,
    EmbedderError,
    OllamaEmbedder,
    OpenAIEmbedder,
    ThreadedEmbedder,
    async_from_spec,
    from_spec,
    register_embedder,
)
from llmemo.embed.base import ASYNC_EMBEDDERS, SYNC_EMBEDDERS
from llmemo.embed.minilm import MiniLMEmbedder
from llmemo.errors import ConfigError, LLMemoError


def three(texts: Sequence[str]) -> list[list[float]]:
    return [[float(len(t)), 1.0, 0.0] for t in texts]


async def athree(texts: Sequence[str]) -> list[list[float]]:
    return three(texts)


def test_public_surface() -> None:
    assert sorted(llmemo.embed.__all__) == llmemo.embed.__all__
    for name in llmemo.embed.__all__:
        assert getattr(llmemo.embed, name) is not None
    assert issubclass(EmbedderError, LLMemoError)


def test_unknown_names_and_bad_specs() -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown embedder 'bert'.*known: minilm, minilm-f32, minilm-int8, ollama, openai",
    ):
        from_spec("bert:base")
    with pytest.raises(ConfigError, match="no URL after it"):
        from_spec("ollama:nomic-embed-text@")
    with pytest.raises(ConfigError, match="not an embedder spec"):
        from_spec(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown embedder"):
        async_from_spec("nope")


def test_openai_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    embedder = from_spec("openai:text-embedding-3-small")
    assert isinstance(embedder, OpenAIEmbedder)
    assert (embedder.name, embedder.model, embedder.dim) == (
        "openai",
        "text-embedding-3-small",
        1536,
    )
    assert embedder.wire.url == "https://api.openai.com/v1/embeddings"
    assert embedder.wire.headers == {"Authorization": "Bearer sk-from-env"}
    short = from_spec("openai:text-embedding-3-large@http://proxy:4000/v1/", dimensions=256)
    assert (short.model, short.dim) == ("text-embedding-3-large", 256)
    assert isinstance(short, OpenAIEmbedder)
    assert short.wire.url == "http://proxy:4000/v1/embeddings"
    assert from_spec("openai").model == "text-embedding-3-small"
    assert isinstance(async_from_spec("openai:text-embedding-3-small"), AsyncOpenAIEmbedder)


def test_ollama_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    embedder = from_spec("ollama:nomic-embed-text@http://host:11434")
    assert isinstance(embedder, OllamaEmbedder)
    assert (embedder.name, embedder.model, embedder.dim) == ("ollama", "nomic-embed-text", 768)
    assert embedder.wire.url == "http://host:11434/api/embed"
    tagged = from_spec("ollama:mxbai-embed-large:335m")
    assert (tagged.model, tagged.dim) == ("mxbai-embed-large:335m", 1024)
    assert isinstance(tagged, OllamaEmbedder)
    assert tagged.wire.url == "http://localhost:11434/api/embed"
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box:11434")
    assert from_spec("ollama:bge-m3").wire.url == "http://gpu-box:11434/api/embed"  # type: ignore[attr-defined]
    assert from_spec("ollama").model == "nomic-embed-text"
    assert isinstance(async_from_spec("ollama:all-minilm"), AsyncOllamaEmbedder)


def test_http_embedders_check_their_settings() -> None:
    with pytest.raises(ConfigError, match="pass dim=N"):
        OpenAIEmbedder("my-finetune")
    assert OpenAIEmbedder("my-finetune", dim=64).dim == 64
    with pytest.raises(ConfigError, match="contradicts"):
        OpenAIEmbedder("text-embedding-3-small", dimensions=256, dim=512)
    with pytest.raises(ConfigError, match="dimensions must be"):
        OpenAIEmbedder("text-embedding-3-small", dimensions=0)
    with pytest.raises(ConfigError, match="encoding_format"):
        OpenAIEmbedder(encoding_format="int8")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs a model"):
        OpenAIEmbedder("")
    with pytest.raises(ConfigError, match="pass dim=N"):
        OllamaEmbedder("my-embedder")
    with pytest.raises(ConfigError, match="needs a model"):
        OllamaEmbedder("")
    with pytest.raises(ConfigError, match="batch_size"):
        OllamaEmbedder(batch_size=0)
    with pytest.raises(ConfigError, match="timeout"):
        OpenAIEmbedder(timeout=0)


def test_callable_probes_its_dimension() -> None:
    embedder = from_spec(three)
    assert isinstance(embedder, CallableEmbedder)
    assert embedder.dim == 3
    assert embedder.name == "callable"
    assert embedder.model == f"{__name__}.three"
    vectors = embedder.embed(["abcd", ""])
    np.testing.assert_allclose(vectors[0], np.array([4, 1, 0]) / np.sqrt(17), rtol=1e-6)
    np.testing.assert_allclose(vectors[1], [0, 1, 0])
    assert embedder.embed([]).shape == (0, 3)


def test_callable_with_a_stated_dimension_is_not_called_until_used() -> None:
    calls: list[Sequence[str]] = []

    def record(texts: Sequence[str]) -> list[list[float]]:
        calls.append(texts)
        return three(texts)

    embedder = CallableEmbedder(record, dim=3, name="mine", model="v2")
    assert calls == []
    assert (embedder.name, embedder.model) == ("mine", "v2")
    with pytest.raises(EmbedderError, match="dimension 4"):
        CallableEmbedder(three, dim=4).embed(["x"])
    with pytest.raises(ConfigError, match=r"\(n, dim\) array"):
        CallableEmbedder(lambda texts: [1.0, 2.0])
    with pytest.raises(ConfigError, match="dim must be"):
        CallableEmbedder(three, dim=0)


@pytest.mark.asyncio
async def test_async_callables() -> None:
    embedder = async_from_spec(athree, dim=3)
    assert isinstance(embedder, AsyncCallableEmbedder)
    assert (await embedder.embed(["ab"])).shape == (1, 3)
    assert (await embedder.embed([])).shape == (0, 3)
    with pytest.raises(ConfigError, match="pass dim=N"):
        async_from_spec(athree)
    with pytest.raises(ConfigError, match="needs async_from_spec"):
        from_spec(athree)
    threaded = async_from_spec(three)
    assert isinstance(threaded, ThreadedEmbedder)
    np.testing.assert_array_equal(await threaded.embed(["ab"]), from_spec(three).embed(["ab"]))


def test_register_embedder() -> None:
    register_embedder(
        "three",
        lambda model, url, options: CallableEmbedder(three, model=model or "default"),
        lambda model, url, options: ThreadedEmbedder(CallableEmbedder(three, model=model)),
    )
    try:
        assert from_spec("three:v1").model == "v1"
        assert from_spec("three").model == "default"
        assert isinstance(async_from_spec("three:v1"), ThreadedEmbedder)
    finally:
        del SYNC_EMBEDDERS["three"], ASYNC_EMBEDDERS["three"]


def test_the_protocols_fit_the_implementations(minilm: MiniLMEmbedder) -> None:
    assert isinstance(minilm, Embedder)
    assert isinstance(from_spec(three), Embedder)
    assert isinstance(OpenAIEmbedder(), Embedder)
    assert isinstance(ThreadedEmbedder(minilm), AsyncEmbedder)
    assert isinstance(AsyncOllamaEmbedder(), AsyncEmbedder)
