"""Embedders behind an HTTP API, over httpx: the transport, batching and error translation.

What differs between APIs (URL, headers, request body, where the vectors are in the answer) is a
`Wire`; `HTTPEmbedder` and `AsyncHTTPEmbedder` only do the I/O around it. Every failure (refused,
timed out, HTTP error, an answer without the vectors) becomes one EmbedderError that names the
endpoint and says what happened, never the credentials.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol

from llmemo.embed.base import EmbedderError, Matrix, empty, normalise
from llmemo.errors import ConfigError, require
from llmemo.stores.base import redact

require("httpx", "semantic")

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402


class Wire(Protocol):
    """One HTTP embeddings API: where to send a batch, how, and how to read the answer."""

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def url(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def body(self, texts: Sequence[str]) -> dict[str, Any]: ...

    def vectors(self, payload: Any) -> npt.ArrayLike:
        """The (n, dim) vectors in a successful answer; EmbedderError if they are not there."""
        ...


def _chunks(texts: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(texts), size):
        yield list(texts[start : start + size])


def _error_message(payload: Any) -> str | None:
    """The message of an OpenAI-style (`{"error": {"message"}}`) or Ollama-style error body."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return str(error) if error else None


def parse(wire: Wire, response: httpx.Response, count: int) -> Matrix:
    """The unit vectors in `response` to a batch of `count` texts, or an EmbedderError."""
    where = f"{wire.name} embeddings at {redact(wire.url)}"
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code >= 400:
        detail = _error_message(payload) or response.text[:200] or response.reason_phrase
        raise EmbedderError(f"{where} answered HTTP {response.status_code}: {detail}")
    if payload is None:
        raise EmbedderError(f"{where} answered with a body that is not JSON")
    try:
        matrix = normalise(wire.vectors(payload), wire.dim)
    except (TypeError, ValueError) as exc:
        raise EmbedderError(f"{where} answered without usable vectors: {exc}") from exc
    except EmbedderError as exc:
        raise EmbedderError(f"{where}: {exc}") from exc
    if matrix.shape[0] != count:
        raise EmbedderError(f"{where} answered {matrix.shape[0]} vectors for {count} texts")
    return matrix


def failed(wire: Wire, exc: httpx.HTTPError, timeout: float) -> EmbedderError:
    """The EmbedderError for a request that got no answer."""
    where = f"{wire.name} embeddings at {redact(wire.url)}"
    if isinstance(exc, httpx.TimeoutException):
        return EmbedderError(f"{where} timed out ({timeout:g}s): {type(exc).__name__}")
    return EmbedderError(f"{where} failed: {type(exc).__name__}: {exc}")


class _Base:
    def __init__(self, wire: Wire, batch_size: int, timeout: float) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, not {batch_size}")
        if timeout <= 0:
            raise ConfigError(f"timeout must be positive seconds, not {timeout}")
        self.wire = wire
        self.batch_size = batch_size
        self.timeout = timeout

    @property
    def name(self) -> str:
        return self.wire.name

    @property
    def model(self) -> str:
        return self.wire.model

    @property
    def dim(self) -> int:
        return self.wire.dim


class HTTPEmbedder(_Base):
    """An Embedder that posts batches of `batch_size` texts to `wire.url` in turn.

    Pass `client` to share an httpx.Client (it is then not closed here).
    """

    def __init__(
        self,
        wire: Wire,
        *,
        batch_size: int,
        timeout: float = 30.0,
        client: httpx.Client | None = None,
    ) -> None:
        super().__init__(wire, batch_size, timeout)
        self._owns_client = client is None
        self.client = client or httpx.Client(timeout=timeout)

    def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return empty(self.dim)
        parts = []
        for chunk in _chunks(texts, self.batch_size):
            try:
                response = self.client.post(
                    self.wire.url,
                    json=self.wire.body(chunk),
                    headers=dict(self.wire.headers),
                    timeout=self.timeout,
                )
            except httpx.HTTPError as exc:
                raise failed(self.wire, exc, self.timeout) from exc
            parts.append(parse(self.wire, response, len(chunk)))
        return np.concatenate(parts)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> HTTPEmbedder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncHTTPEmbedder(_Base):
    """The asyncio twin of HTTPEmbedder, over an httpx.AsyncClient."""

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
