"""Embeddings from an Ollama server's `POST /api/embed`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from llmemo.embed._async.http import AsyncHTTPEmbedder
from llmemo.embed.ollama_wire import MAX_CHARS, OllamaWire

if TYPE_CHECKING:
    import httpx


class AsyncOllamaEmbedder(AsyncHTTPEmbedder):
    """Embeddings from Ollama at `url` (default: OLLAMA_HOST, else http://localhost:11434).

    `dim` states the width of a model this module does not know; `keep_alive` (e.g. "30m") how
    long Ollama keeps the model loaded after a call.
    """

    def __init__(
        self,
        model: str = "nomic-embed-text",
        *,
        url: str | None = None,
        dim: int | None = None,
        keep_alive: str | None = None,
        headers: Mapping[str, str] | None = None,
        batch_size: int = 64,
        timeout: float = 60.0,
        client: httpx.AsyncClient | None = None,
        max_chars: int = MAX_CHARS,
    ) -> None:
        wire = OllamaWire(
            model, url=url, dim=dim, keep_alive=keep_alive, headers=headers, max_chars=max_chars
        )
        super().__init__(wire, batch_size=batch_size, timeout=timeout, client=client)
