"""Embedders: texts to unit vectors for the semantic cache (local MiniLM, OpenAI, Ollama, a function).

Needs the `semantic` extra. `from_spec("minilm")` is the offline default; `SYNC_EMBEDDERS` and
`ASYNC_EMBEDDERS` (here too, outside `__all__`) map a spec's name to its factory
(`register_embedder` adds one). Names are
imported on first use, so `import llmemo.embed` stays light and a missing extra fails with its
one-line hint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmemo._lazy import lazy_attributes
from llmemo.errors import require

require("numpy", "semantic")  # every member needs it (checked without importing it)

if TYPE_CHECKING:
    from llmemo.embed._async.cached import AsyncCachedEmbedder
    from llmemo.embed._async.http import AsyncHTTPEmbedder
    from llmemo.embed._async.ollama import AsyncOllamaEmbedder
    from llmemo.embed._async.openai import AsyncOpenAIEmbedder
    from llmemo.embed._sync.cached import CachedEmbedder
    from llmemo.embed._sync.http import HTTPEmbedder
    from llmemo.embed._sync.ollama import OllamaEmbedder
    from llmemo.embed._sync.openai import OpenAIEmbedder
    from llmemo.embed.base import (
        ASYNC_EMBEDDERS as ASYNC_EMBEDDERS,
    )
    from llmemo.embed.base import (
        SYNC_EMBEDDERS as SYNC_EMBEDDERS,
    )
    from llmemo.embed.base import (
        AsyncEmbedder,
        Embedder,
        EmbedderError,
        Matrix,
        Spec,
        ThreadedEmbedder,
        async_from_spec,
        from_spec,
        register_embedder,
    )
    from llmemo.embed.cached_base import Unsaved
    from llmemo.embed.callable import AsyncCallableEmbedder, CallableEmbedder
    from llmemo.embed.http_base import Wire
    from llmemo.embed.minilm import MiniLMEmbedder
    from llmemo.embed.onnx import OnnxMiniLMEmbedder

__all__ = [
    "AsyncCachedEmbedder",
    "AsyncCallableEmbedder",
    "AsyncEmbedder",
    "AsyncHTTPEmbedder",
    "AsyncOllamaEmbedder",
    "AsyncOpenAIEmbedder",
    "CachedEmbedder",
    "CallableEmbedder",
    "Embedder",
    "EmbedderError",
    "HTTPEmbedder",
    "Matrix",
    "MiniLMEmbedder",
    "OllamaEmbedder",
    "OnnxMiniLMEmbedder",
    "OpenAIEmbedder",
    "Spec",
    "ThreadedEmbedder",
    "Unsaved",
    "Wire",
    "async_from_spec",
    "from_spec",
    "register_embedder",
]

_LAZY = {
    "ASYNC_EMBEDDERS": "llmemo.embed.base",
    "SYNC_EMBEDDERS": "llmemo.embed.base",
    "AsyncCachedEmbedder": "llmemo.embed._async.cached",
    "AsyncCallableEmbedder": "llmemo.embed.callable",
    "AsyncEmbedder": "llmemo.embed.base",
    "AsyncHTTPEmbedder": "llmemo.embed._async.http",
    "AsyncOllamaEmbedder": "llmemo.embed._async.ollama",
    "AsyncOpenAIEmbedder": "llmemo.embed._async.openai",
    "CachedEmbedder": "llmemo.embed._sync.cached",
    "CallableEmbedder": "llmemo.embed.callable",
    "Embedder": "llmemo.embed.base",
    "EmbedderError": "llmemo.embed.base",
    "HTTPEmbedder": "llmemo.embed._sync.http",
    "Matrix": "llmemo.embed.base",
    "MiniLMEmbedder": "llmemo.embed.minilm",
    "OllamaEmbedder": "llmemo.embed._sync.ollama",
    "OnnxMiniLMEmbedder": "llmemo.embed.onnx",
    "OpenAIEmbedder": "llmemo.embed._sync.openai",
    "Spec": "llmemo.embed.base",
    "ThreadedEmbedder": "llmemo.embed.base",
    "Unsaved": "llmemo.embed.cached_base",
    "Wire": "llmemo.embed.http_base",
    "async_from_spec": "llmemo.embed.base",
    "from_spec": "llmemo.embed.base",
    "register_embedder": "llmemo.embed.base",
}

__getattr__ = lazy_attributes(__name__, _LAZY)
