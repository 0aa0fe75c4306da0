"""The OpenAI and Ollama embedders against llmemo's fake upstream, on a real loopback socket."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest

from llmemo.embed import (
    AsyncOllamaEmbedder,
    AsyncOpenAIEmbedder,
    EmbedderError,
    HTTPEmbedder,
    OllamaEmbedder,
    OpenAIEmbedder,
    async_from_spec,
    from_spec,
)
from llmemo.embed.http_base import parse
from llmemo.embed.ollama_wire import MAX_CHARS as OLLAMA_MAX_CHARS
from llmemo.embed.openai_wire import OpenAIWire
from llmemo.testing import upstream as fake
from llmemo.testing.server import UpstreamServer

TEXTS = ["What is the capital of France?", "Which city is France's capital?", "", "héllo 🙂"]
E = TypeVar("E")


def expected(model: str, dim: int, texts: list[str] = TEXTS) -> np.ndarray:
    return np.array([fake.embed(text, model, dim) for text in texts], dtype=np.float32)


@pytest.fixture(autouse=True)
def no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OLLAMA_HOST"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(upstream: UpstreamServer) -> UpstreamServer:
    upstream.reset()
    return upstream


@pytest.fixture(scope="module")
def guarded() -> Iterator[UpstreamServer]:
    with UpstreamServer(require_auth=True) as server:
        yield server


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def keep() -> Iterator[Callable[[Any], Any]]:
    """Closes every sync embedder handed to it at the end of the test (no leaked sockets)."""
    opened: list[HTTPEmbedder] = []

    def keep(embedder: E) -> E:
        assert isinstance(embedder, HTTPEmbedder)
        opened.append(embedder)
        return embedder

    yield keep
    for embedder in opened:
        embedder.close()


@pytest.mark.parametrize("encoding", ["base64", "float"])
def test_openai_vectors(server: UpstreamServer, keep: Any, encoding: str) -> None:
    embedder = keep(
        OpenAIEmbedder(
            "text-embedding-3-small",
            base_url=server.openai_base_url,
            dimensions=256,
            encoding_format=encoding,
        )
    )
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (4, 256)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, expected("text-embedding-3-small", 256), atol=1e-6)


def test_openai_batches_and_sends_the_key(server: UpstreamServer) -> None:
    with OpenAIEmbedder(
        "text-embedding-3-small",
        base_url=server.openai_base_url,
        api_key="sk-test-123",
        dimensions=384,
        batch_size=3,
    ) as embedder:
        texts = [f"text number {i}" for i in range(7)]
        vectors = embedder.embed(texts)
    np.testing.assert_allclose(vectors, expected("text-embedding-3-small", 384, texts), atol=1e-6)
    stats = server.stats()
    assert stats.count("/v1/embeddings") == 3
    assert stats.saw("sk-test-123", "authorization")
    assert embedder.embed([]).shape == (0, 384)  # no call, even on a closed client


def test_openai_from_spec_and_env(
    server: UpstreamServer, keep: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
    embedder = keep(from_spec("openai:text-embedding-3-small", dimensions=384))
    want = expected("text-embedding-3-small", 384)
    np.testing.assert_allclose(embedder.embed(TEXTS), want, atol=1e-6)
    assert server.stats().saw("sk-env")
    by_spec = keep(from_spec(f"openai:my-model@{server.openai_base_url}", dim=384))
    np.testing.assert_allclose(by_spec.embed(TEXTS), expected("my-model", 384), atol=1e-6)


def test_openai_auth_error(guarded: UpstreamServer, keep: Any) -> None:
    anonymous = keep(OpenAIEmbedder(base_url=guarded.openai_base_url, dimensions=384))
    with pytest.raises(EmbedderError, match=r"openai embeddings at .* answered HTTP 401: No API"):
        anonymous.embed(["x"])
    ok = keep(OpenAIEmbedder(base_url=guarded.openai_base_url, dimensions=384, api_key="sk-ok"))
    assert ok.embed(["x"]).shape == (1, 384)


def test_openai_provider_errors_keep_their_message(server: UpstreamServer, keep: Any) -> None:
    limited = keep(
        OpenAIEmbedder("fail-429", base_url=server.openai_base_url, dim=384, api_key="sk-secret")
    )
    with pytest.raises(EmbedderError, match=r"HTTP 429: Simulated 429") as caught:
        limited.embed(["x"])
    assert "sk-secret" not in str(caught.value)
    broken = keep(OpenAIEmbedder("fail-500", base_url=server.openai_base_url, dim=384))
    with pytest.raises(EmbedderError, match="HTTP 500"):
        broken.embed(["x"])


def test_openai_wrong_width_is_an_error(server: UpstreamServer, keep: Any) -> None:
    """text-embedding-3-small is 1536 wide; this upstream answers 384 unless asked otherwise."""
    embedder = keep(OpenAIEmbedder("text-embedding-3-small", base_url=server.openai_base_url))
    with pytest.raises(EmbedderError, match="expected vectors of dimension 1536"):
        embedder.embed(["x"])


def test_timeout(server: UpstreamServer, keep: Any) -> None:
    slow = keep(OpenAIEmbedder("slow-500", base_url=server.openai_base_url, dim=384, timeout=0.05))
    with pytest.raises(EmbedderError, match=r"timed out \(0.05s\)"):
        slow.embed(["x"])


def test_unreachable(closed_port: int, keep: Any) -> None:
    embedder = keep(OllamaEmbedder("all-minilm", url=f"http://127.0.0.1:{closed_port}"))
    with pytest.raises(
        EmbedderError, match=r"ollama embeddings at http://127.0.0.1:\d+/api/embed failed: Connect"
    ):
        embedder.embed(["x"])


def test_not_an_embeddings_endpoint(server: UpstreamServer, keep: Any) -> None:
    """A URL that reaches some other API is an error that says so, not garbage vectors."""
    chat = keep(OpenAIEmbedder(base_url=f"{server.url}/v1/chat/completions?", dim=384))
    with pytest.raises(EmbedderError, match=r"HTTP 400: messages"):
        chat.embed(["x"])
    openai_route = keep(OllamaEmbedder("all-minilm", url=f"{server.url}/v1/embeddings?"))
    with pytest.raises(EmbedderError, match="no 'embeddings' list in the answer"):
        openai_route.embed(["x"])


def test_ollama_vectors(server: UpstreamServer) -> None:
    with OllamaEmbedder("all-minilm", url=server.url, batch_size=2) as embedder:
        vectors = embedder.embed(TEXTS)
    np.testing.assert_allclose(vectors, expected("all-minilm", 384), atol=1e-6)
    assert server.stats().count("/api/embed", "all-minilm") == 2


def test_ollama_is_sent_a_bounded_prefix(server: UpstreamServer) -> None:
    """Ollama cuts a text past the model's context anyway: only MAX_CHARS characters are sent."""
    prefix = ("word " * OLLAMA_MAX_CHARS)[:OLLAMA_MAX_CHARS]
    with OllamaEmbedder("all-minilm", url=server.url) as embedder:
        long, short = embedder.embed([prefix + "and a tail of 3 MB" * 1000, prefix])
    np.testing.assert_array_equal(long, short)
    with OllamaEmbedder("all-minilm", url=server.url, max_chars=5) as embedder:
        np.testing.assert_array_equal(*embedder.embed(["word and more", "word "]))


def test_ollama_from_spec_and_env(
    server: UpstreamServer, keep: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_spec = keep(from_spec(f"ollama:nomic-embed-text@{server.url}", dim=384))
    want = expected("nomic-embed-text", 384)
    np.testing.assert_allclose(by_spec.embed(TEXTS), want, atol=1e-6)
    monkeypatch.setenv("OLLAMA_HOST", server.url.removeprefix("http://"))
    assert keep(from_spec("ollama:all-minilm")).embed(["x"]).shape == (1, 384)


def test_ollama_errors(server: UpstreamServer, keep: Any) -> None:
    missing = keep(OllamaEmbedder("fail-404", url=server.url, dim=384))
    with pytest.raises(EmbedderError, match=r"HTTP 404: Simulated 404"):
        missing.embed(["x"])


@pytest.mark.asyncio
async def test_async_openai(server: UpstreamServer) -> None:
    async with AsyncOpenAIEmbedder(
        base_url=server.openai_base_url, dimensions=128, api_key="sk-async", batch_size=2
    ) as embedder:
        vectors = await embedder.embed(TEXTS)
        assert (await embedder.embed([])).shape == (0, 128)
    np.testing.assert_allclose(vectors, expected("text-embedding-3-small", 128), atol=1e-6)
    assert server.stats().count("/v1/embeddings") == 2
    assert server.stats().saw("sk-async")


@pytest.mark.asyncio
async def test_async_ollama_with_a_shared_client(server: UpstreamServer) -> None:
    async with httpx.AsyncClient() as client:
        embedder = async_from_spec(f"ollama:all-minilm@{server.url}", client=client)
        assert isinstance(embedder, AsyncOllamaEmbedder)
        vectors = await embedder.embed(TEXTS)
        await embedder.close()
        assert not client.is_closed  # the caller's client is the caller's to close
        failing = AsyncOllamaEmbedder("fail-503", url=server.url, dim=384, client=client)
        with pytest.raises(EmbedderError, match="HTTP 503"):
            await failing.embed(["x"])
    np.testing.assert_allclose(vectors, expected("all-minilm", 384), atol=1e-6)


@pytest.mark.asyncio
async def test_async_errors(closed_port: int, server: UpstreamServer) -> None:
    down_url = f"http://127.0.0.1:{closed_port}/v1"
    async with AsyncOpenAIEmbedder(base_url=down_url, dim=384) as down:
        with pytest.raises(EmbedderError, match="failed: ConnectError"):
            await down.embed(["x"])
    async with AsyncOpenAIEmbedder(
        "slow-500", base_url=server.openai_base_url, dim=384, timeout=0.05
    ) as slow:
        with pytest.raises(EmbedderError, match="timed out"):
            await slow.embed(["x"])


def _answer(status: int, **content: Any) -> httpx.Response:
    return httpx.Response(
        status, request=httpx.Request("POST", "http://h/v1/embeddings"), **content
    )


def test_parse_answers_that_are_not_vectors() -> None:
    """Answer shapes the upstream never sends, fed by hand to the pure parser."""
    wire = OpenAIWire("text-embedding-3-small", base_url="http://h/v1", dimensions=2)
    two = [{"index": 1, "embedding": [0, 2]}, {"index": 0, "embedding": [3, 0]}]
    cases = {
        "not JSON": _answer(200, text="<html>proxy</html>"),
        "no 'data' list": _answer(200, json={"object": "list"}),
        "not valid base64": _answer(200, json={"data": [{"index": 0, "embedding": "@@"}]}),
        "neither a list of floats nor base64": _answer(200, json={"data": [{"embedding": 3}]}),
        "answered 2 vectors for 1 texts": _answer(200, json={"data": two}),
        "HTTP 502: Bad Gateway": _answer(502),
    }
    for message, response in cases.items():
        with pytest.raises(EmbedderError, match=message):
            parse(wire, response, 1)
    np.testing.assert_array_equal(
        parse(wire, _answer(200, json={"data": two}), 2), [[1, 0], [0, 1]]
    )
