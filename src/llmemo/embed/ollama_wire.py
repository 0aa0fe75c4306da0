"""The Ollama embed wire: request body, headers and where the vectors are in the answer (the
embedders: `embed/_async/ollama.py`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy.typing as npt

from llmemo.embed.base import EmbedderError
from llmemo.errors import ConfigError

DEFAULT_URL = "http://localhost:11434"
MAX_CHARS = 65_536
"""Characters of a text sent to Ollama, which truncates to the model's context anyway (the
embedding models here read at most 8,192 tokens; 8 characters a token is more than any text but
whitespace padding averages): the rest would cost bandwidth and tokenizing for nothing."""
# Native widths of common embedding models (tag stripped), for when `dim` is not given.
KNOWN_DIMS = {
    "nomic-embed-text": 768,
    "mxbai-embed-large": 1024,
    "all-minilm": 384,
    "snowflake-arctic-embed": 1024,
    "bge-m3": 1024,
    "bge-large": 1024,
}


def _host_url(url: str | None) -> str:
    """The server's base URL: `url`, else OLLAMA_HOST (which may omit the scheme), else localhost."""
    value = url or os.environ.get("OLLAMA_HOST") or DEFAULT_URL
    if "://" not in value:
        value = f"http://{value}"
    return value.rstrip("/")


class OllamaWire:
    """Ollama's embed API: `{"model", "input": [...], "truncate": true}` in, `{"embeddings"}` out."""

    name = "ollama"

    def __init__(
        self,
        model: str,
        *,
        url: str | None = None,
        dim: int | None = None,
        keep_alive: str | None = None,
        headers: Mapping[str, str] | None = None,
        max_chars: int = MAX_CHARS,
    ) -> None:
        if max_chars < 1:
            raise ConfigError(f"max_chars must be >= 1, not {max_chars}")
        self.max_chars = max_chars
        if not model:
            raise ConfigError("the ollama embedder needs a model, e.g. ollama:nomic-embed-text")
        width = dim or KNOWN_DIMS.get(model.split(":", 1)[0])
        if width is None:
            raise ConfigError(f"the width of {model!r} vectors is not known here: pass dim=N")
        self.model = model
        self.dim = width
        self.keep_alive = keep_alive
        self.url = _host_url(url) + "/api/embed"
        self.headers: dict[str, str] = dict(headers or {})

    def body(self, texts: Sequence[str]) -> dict[str, Any]:
        # truncate: a text past the model's context is cut, as the local model does, not refused.
        # Only a prefix is sent (MAX_CHARS): the server would cut the rest anyway.
        inputs = [text[: self.max_chars] for text in texts]
        body: dict[str, Any] = {"model": self.model, "input": inputs, "truncate": True}
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        return body

    def vectors(self, payload: Any) -> npt.ArrayLike:
        embeddings = payload.get("embeddings") if isinstance(payload, dict) else None
        if not isinstance(embeddings, list):
            raise EmbedderError("no 'embeddings' list in the answer")
        return embeddings
