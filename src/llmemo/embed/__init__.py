"""Embedders: texts to unit vectors for the semantic cache (local MiniLM, OpenAI, Ollama, a function).

Needs the `semantic` extra. `from_spec("minilm")` is the offline default.
"""

from llmemo.embed.base import (
    AsyncEmbedder,
    Embedder,
    EmbedderError,
    Matrix,
    ThreadedEmbedder,
    async_from_spec,
    from_spec,
    register_embedder,
)
from llmemo.embed.cached import AsyncCachedEmbedder, CachedEmbedder
from llmemo.embed.callable import AsyncCallableEmbedder, CallableEmbedder
from llmemo.embed.minilm import MiniLMEmbedder
from llmemo.embed.ollama import AsyncOllamaEmbedder, OllamaEmbedder
from llmemo.embed.onnx import OnnxMiniLMEmbedder
from llmemo.embed.openai import AsyncOpenAIEmbedder, OpenAIEmbedder

__all__ = [
    "AsyncCachedEmbedder",
    "AsyncCallableEmbedder",
    "AsyncEmbedder",
    "AsyncOllamaEmbedder",
    "AsyncOpenAIEmbedder",
    "CachedEmbedder",
    "CallableEmbedder",
    "Embedder",
    "EmbedderError",
    "Matrix",
    "MiniLMEmbedder",
    "OllamaEmbedder",
    "OnnxMiniLMEmbedder",
    "OpenAIEmbedder",
    "ThreadedEmbedder",
    "async_from_spec",
    "from_spec",
    "register_embedder",
]
