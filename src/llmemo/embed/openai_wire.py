"""The OpenAI embeddings wire: request body, headers and where the vectors are in the answer
(the embedders: `embed/_async/openai.py`)."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from llmemo.embed.base import EmbedderError
from llmemo.errors import ConfigError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Native widths, for when `dimensions` (a shortened vector) and `dim` are not given.
KNOWN_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
Encoding = Literal["base64", "float"]


class OpenAIWire:
    """The OpenAI embeddings API: `{"model", "input": [...], "encoding_format", "dimensions"?}` in,
    `{"data": [{"index", "embedding"}]}` out, with each embedding a list of floats or base64 of
    little-endian float32 (what the official SDK asks for: a quarter of the bytes of JSON floats)."""

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        dimensions: int | None = None,
        dim: int | None = None,
        encoding_format: Encoding = "base64",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not model:
            raise ConfigError(
                "the openai embedder needs a model, e.g. openai:text-embedding-3-small"
            )
        if encoding_format not in ("base64", "float"):
            raise ConfigError(
                f"encoding_format must be 'base64' or 'float', not {encoding_format!r}"
            )
        if dimensions is not None and dimensions < 1:
            raise ConfigError(f"dimensions must be >= 1, not {dimensions}")
        width = dimensions or dim or KNOWN_DIMS.get(model)
        if width is None:
            raise ConfigError(f"the width of {model!r} vectors is not known here: pass dim=N")
        if dimensions is not None and dim is not None and dim != dimensions:
            raise ConfigError(f"dim={dim} contradicts dimensions={dimensions}")
        self.model = model
        self.dim = width
        self.dimensions = dimensions
        self.encoding_format: Encoding = encoding_format
        base = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.url = base.rstrip("/") + "/embeddings"
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.headers: dict[str, str] = {"Authorization": f"Bearer {key}"} if key else {}
        self.headers.update(headers or {})

    def body(self, texts: Sequence[str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "input": list(texts),
            "encoding_format": self.encoding_format,
        }
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        return body

    def vectors(self, payload: Any) -> npt.ArrayLike:
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise EmbedderError("no 'data' list in the answer")
        rows = sorted(data, key=lambda item: int(item.get("index", 0)))
        return [_vector(item.get("embedding")) for item in rows]


def _vector(embedding: Any) -> npt.NDArray[np.float32]:
    if isinstance(embedding, str):
        try:
            raw = base64.b64decode(embedding, validate=True)
        except ValueError as exc:
            raise EmbedderError(f"an embedding is not valid base64: {exc}") from exc
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if isinstance(embedding, list):
        return np.asarray(embedding, dtype=np.float32)
    raise EmbedderError(
        f"an embedding is neither a list of floats nor base64: {type(embedding).__name__}"
    )
