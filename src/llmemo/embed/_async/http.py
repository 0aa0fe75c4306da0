"""Embedders behind an HTTP API, over httpx: the transport, batching and error translation.

What differs between APIs (URL, headers, request body, where the vectors are in the answer) is a
`Wire`; `HTTPEmbedder` and `AsyncHTTPEmbedder` only do the I/O around it. Every failure (refused,
timed out, HTTP error, an answer without the vectors) becomes one EmbedderError that names the
endpoint and says what happened, never the credentials.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

from llmemo.embed.base import Matrix, empty
from llmemo.embed.http_base import HTTPBase, Wire, _chunks, failed, parse
from llmemo.errors import require

require("httpx", "semantic")

import httpx  # noqa: E402
import numpy as np  # noqa: E402


class AsyncHTTPEmbedder(HTTPBase):
    """An Embedder that posts batches of `batch_size` texts to `wire.url` in turn.

    Pass `client` to share an httpx client (it is then not closed here).
    """

    def __init__(
        self,
        wire: Wire,
        *,
        batch_size: int,
        timeout: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(wire, batch_size, timeout)
        self._owns_client = client is None
        self.client = client or httpx.AsyncClient(timeout=timeout)

    async def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return empty(self.dim)
        parts = []
        for chunk in _chunks(texts, self.batch_size):
            try:
                response = await self.client.post(
                    self.wire.url,
                    json=self.wire.body(chunk),
                    headers=dict(self.wire.headers),
                    timeout=self.timeout,
                )
            except httpx.HTTPError as exc:
                raise failed(self.wire, exc, self.timeout) from exc
            parts.append(parse(self.wire, response, len(chunk)))
        return np.concatenate(parts)

    async def close(self) -> None:
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> AsyncHTTPEmbedder:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
