"""The Embedder protocol and its twin (written once in `embed/_async/protocol.py`), the vector
helpers every embedder uses, and `from_spec` (a `{name: factory}` table)."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from llmemo.errors import ConfigError, LLMemoError, MissingExtraError, require

require("numpy", "semantic")

import numpy as np  # noqa: E402  (after the one-line hint for a missing extra)
import numpy.typing as npt  # noqa: E402

from llmemo.embed._async.protocol import AsyncEmbedder as AsyncEmbedder  # noqa: E402
from llmemo.embed._sync.protocol import Embedder as Embedder  # noqa: E402
from llmemo.embed._sync.protocol import Matrix as Matrix  # noqa: E402


class EmbedderError(LLMemoError):
    """An embedder failed (model server unreachable, refused, or answered nonsense)."""


def normalise(vectors: npt.ArrayLike, dim: int) -> Matrix:
    """`vectors` as an (n, dim) float32 matrix with unit rows; EmbedderError if the shape is wrong.

    A zero row stays zero (it has no direction); the index then never matches it.
    """
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise EmbedderError(f"expected vectors of dimension {dim}, got shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: Matrix = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return unit


def empty(dim: int) -> Matrix:
    """The (0, dim) matrix: what every embedder returns for no texts, without a call."""
    return np.zeros((0, dim), dtype=np.float32)


class ThreadedEmbedder:
    """An AsyncEmbedder over a sync one, run in a worker thread so a CPU-bound model never blocks
    the event loop (numpy and tokenizers release the GIL while they compute)."""

    def __init__(self, embedder: Embedder) -> None:
        self.sync = embedder

    @property
    def name(self) -> str:
        return self.sync.name

    @property
    def model(self) -> str:
        return self.sync.model

    @property
    def dim(self) -> int:
        return self.sync.dim

    async def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return empty(self.dim)
        return await asyncio.to_thread(self.sync.embed, list(texts))


EmbedFunction = Callable[[Sequence[str]], npt.ArrayLike]
AsyncEmbedFunction = Callable[[Sequence[str]], Awaitable[npt.ArrayLike]]
Spec = str | EmbedFunction | AsyncEmbedFunction


def _parse(spec: str) -> tuple[str, str, str | None]:
    """ "ollama:nomic-embed-text@http://host:11434" -> ("ollama", "nomic-embed-text", "http://host:11434")."""
    head, at, url = spec.partition("@")
    kind, _, model = head.partition(":")
    if at and not url:
        raise ConfigError(f"embedder spec {spec!r} has an '@' but no URL after it")
    return kind.strip().lower(), model.strip(), url.strip() or None


def _minilm(model: str, url: str | None, options: Mapping[str, Any]) -> Embedder:
    """all-MiniLM-L6-v2 on the best local runtime: the float32 numpy one when its weights are
    named (`path`, $LLMEMO_MINILM_PATH), else int8 on onnxruntime when installed, else float32
    from the weights found (llmemo.embed.weights)."""
    from llmemo.embed import weights

    if "path" in options or os.environ.get(weights.ENV):
        return _minilm_f32(model, url, options)
    try:
        from llmemo.embed import onnx
    except MissingExtraError:  # no onnxruntime: the float32 weights, if any are installed
        installed = False
    else:
        installed = onnx.available()
    if installed or not any(weights.holds_model(f) for _, f in weights.candidates(os.environ)):
        return _minilm_int8(model, url, options)  # or the one-line hint naming the extra
    return _minilm_f32(model, url, options)


def _minilm_f32(model: str, url: str | None, options: Mapping[str, Any]) -> Embedder:
    from llmemo.embed.minilm import MiniLMEmbedder

    if url is not None:
        raise ConfigError("the minilm embedder runs in-process: its spec takes no '@URL'")
    return MiniLMEmbedder(model=model or None, **options)


def _minilm_int8(model: str, url: str | None, options: Mapping[str, Any]) -> Embedder:
    from llmemo.embed.onnx import OnnxMiniLMEmbedder

    if url is not None:
        raise ConfigError("the minilm embedder runs in-process: its spec takes no '@URL'")
    return OnnxMiniLMEmbedder(model=model or None, **options)


def _openai(model: str, url: str | None, options: Mapping[str, Any]) -> Embedder:
    from llmemo.embed._sync.openai import OpenAIEmbedder

    return OpenAIEmbedder(model or "text-embedding-3-small", base_url=url, **options)


def _ollama(model: str, url: str | None, options: Mapping[str, Any]) -> Embedder:
    from llmemo.embed._sync.ollama import OllamaEmbedder

    return OllamaEmbedder(model or "nomic-embed-text", url=url, **options)


def _async_minilm(model: str, url: str | None, options: Mapping[str, Any]) -> AsyncEmbedder:
    return ThreadedEmbedder(_minilm(model, url, options))


def _async_minilm_f32(model: str, url: str | None, options: Mapping[str, Any]) -> AsyncEmbedder:
    return ThreadedEmbedder(_minilm_f32(model, url, options))


def _async_minilm_int8(model: str, url: str | None, options: Mapping[str, Any]) -> AsyncEmbedder:
    return ThreadedEmbedder(_minilm_int8(model, url, options))


def _async_openai(model: str, url: str | None, options: Mapping[str, Any]) -> AsyncEmbedder:
    from llmemo.embed._async.openai import AsyncOpenAIEmbedder

    return AsyncOpenAIEmbedder(model or "text-embedding-3-small", base_url=url, **options)


def _async_ollama(model: str, url: str | None, options: Mapping[str, Any]) -> AsyncEmbedder:
    from llmemo.embed._async.ollama import AsyncOllamaEmbedder

    return AsyncOllamaEmbedder(model or "nomic-embed-text", url=url, **options)


SyncFactory = Callable[[str, str | None, Mapping[str, Any]], Embedder]
AsyncFactory = Callable[[str, str | None, Mapping[str, Any]], AsyncEmbedder]

# name -> factory(model, url, options). `register_embedder` adds more.
SYNC_EMBEDDERS: dict[str, SyncFactory] = {
    "minilm": _minilm,
    "minilm-f32": _minilm_f32,
    "minilm-int8": _minilm_int8,
    "openai": _openai,
    "ollama": _ollama,
}
ASYNC_EMBEDDERS: dict[str, AsyncFactory] = {
    "minilm": _async_minilm,
    "minilm-f32": _async_minilm_f32,
    "minilm-int8": _async_minilm_int8,
    "openai": _async_openai,
    "ollama": _async_ollama,
}


def register_embedder(name: str, sync: SyncFactory, async_: AsyncFactory) -> None:
    """Teach `from_spec` a new embedder name."""
    SYNC_EMBEDDERS[name] = sync
    ASYNC_EMBEDDERS[name] = async_


def _factory(spec: str, table: Mapping[str, Any]) -> tuple[Any, str, str | None]:
    if not isinstance(spec, str):
        raise ConfigError(f"not an embedder spec: {spec!r}")
    kind, model, url = _parse(spec)
    if kind not in table:
        known = ", ".join(sorted(table))
        raise ConfigError(f"unknown embedder {kind!r} in spec {spec!r}; known: {known}")
    return table[kind], model, url


def from_spec(spec: Spec, **options: Any) -> Embedder:
    """An Embedder from "minilm" (all-MiniLM-L6-v2 on the best local runtime; "minilm-int8" and
    "minilm-f32" name one), "openai:MODEL[@BASE_URL]", "ollama:MODEL[@URL]" or a function of a
    list of texts returning vectors; `options` go to the embedder's constructor."""
    if callable(spec):
        from llmemo.embed.callable import CallableEmbedder

        if inspect.iscoroutinefunction(spec):
            raise ConfigError("an async embedding function needs async_from_spec")
        return CallableEmbedder(spec, **options)  # type: ignore[arg-type]
    factory, model, url = _factory(spec, SYNC_EMBEDDERS)
    embedder: Embedder = factory(model, url, options)
    return embedder


def async_from_spec(spec: Spec, **options: Any) -> AsyncEmbedder:
    """The AsyncEmbedder for `spec`; local models and sync functions run in a worker thread."""
    if callable(spec):
        from llmemo.embed.callable import AsyncCallableEmbedder, CallableEmbedder

        if inspect.iscoroutinefunction(spec):
            return AsyncCallableEmbedder(spec, **options)
        return ThreadedEmbedder(CallableEmbedder(spec, **options))  # type: ignore[arg-type]
    factory, model, url = _factory(spec, ASYNC_EMBEDDERS)
    embedder: AsyncEmbedder = factory(model, url, options)
    return embedder


def length_batches(lengths: Sequence[int], size: int, tokens: int) -> list[list[int]]:
    """Indices grouped by similar length (shortest first): at most `size` texts and about `tokens`
    padded tokens a group, so short texts are not padded to a long one's length."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups: list[list[int]] = []
    group: list[int] = []
    for i in order:
        if group and (len(group) == size or (len(group) + 1) * lengths[i] > tokens):
            groups.append(group)
            group = []
        group.append(i)
    if group:
        groups.append(group)
    return groups
