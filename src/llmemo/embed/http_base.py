"""What both HTTP embedders share without I/O: the `Wire` protocol, batching, and turning an answer
(or a failure) into vectors or one EmbedderError (the embedders themselves: `embed/_async/http.py`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from llmemo.embed.base import EmbedderError, Matrix, normalise
from llmemo.errors import ConfigError, require
from llmemo.stores.urls import redact

require("httpx", "semantic")

import httpx  # noqa: E402
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


class HTTPBase:
    """The wire, batching and timeout both HTTP embedders share."""

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
