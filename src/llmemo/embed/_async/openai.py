"""Embeddings from any OpenAI-compatible `POST {base_url}/embeddings` (OpenAI, Azure-style proxies,
vLLM, LiteLLM, llmemo's own test upstream)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from llmemo.embed._async.http import AsyncHTTPEmbedder
from llmemo.embed.openai_wire import Encoding, OpenAIWire

if TYPE_CHECKING:
    import httpx


class AsyncOpenAIEmbedder(AsyncHTTPEmbedder):
    """Embeddings from `{base_url}/embeddings` (default: OPENAI_BASE_URL, else api.openai.com).

    `api_key` defaults to OPENAI_API_KEY (sent as a Bearer token; none is sent if neither is set).
    `dimensions` asks a text-embedding-3 model for shorter vectors; `dim` states the width of a model
    this module does not know. Batches of `batch_size` texts (the API takes up to 2048).
    """

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        dimensions: int | None = None,
        dim: int | None = None,
        encoding_format: Encoding = "base64",
        headers: Mapping[str, str] | None = None,
        batch_size: int = 256,
        timeout: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        wire = OpenAIWire(
            model,
            base_url=base_url,
            api_key=api_key,
            dimensions=dimensions,
            dim=dim,
            encoding_format=encoding_format,
            headers=headers,
        )
        super().__init__(wire, batch_size=batch_size, timeout=timeout, client=client)
