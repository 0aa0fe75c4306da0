"""An embedder made of the caller's own function (texts -> vectors), sync or async."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import numpy as np
import numpy.typing as npt

from llmemo.embed.base import Matrix, empty, normalise
from llmemo.errors import ConfigError


def _model_of(fn: Callable[..., object]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


class CallableEmbedder:
    """Wraps `fn(texts) -> (n, dim) array-like`; rows are L2-normalised on the way out.

    Without `dim`, `fn` is called once here on a probe text to learn it. `model` names the
    embedding space in the embedding cache's keys (default: the function's qualified name), so
    change it when the function's vectors change.
    """

    def __init__(
        self,
        fn: Callable[[Sequence[str]], npt.ArrayLike],
        *,
        dim: int | None = None,
        name: str = "callable",
        model: str | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.model = model or _model_of(fn)
        if dim is None:
            dim = _probe_dim(fn)
        if dim < 1:
            raise ConfigError(f"dim must be >= 1, not {dim}")
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return empty(self.dim)
        return normalise(self.fn(list(texts)), self.dim)


class AsyncCallableEmbedder:
    """Wraps `async fn(texts) -> (n, dim) array-like`; `dim` is required (no probe in __init__)."""

    def __init__(
        self,
        fn: Callable[[Sequence[str]], Awaitable[npt.ArrayLike]],
        *,
        dim: int | None = None,
        name: str = "callable",
        model: str | None = None,
    ) -> None:
        if dim is None or dim < 1:
            raise ConfigError("an async embedding function needs its dimension: pass dim=N")
        self.fn = fn
        self.name = name
        self.model = model or _model_of(fn)
        self.dim = dim

    async def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return empty(self.dim)
        return normalise(await self.fn(list(texts)), self.dim)


def _probe_dim(fn: Callable[[Sequence[str]], npt.ArrayLike]) -> int:
    shape = np.shape(fn(["dimension probe"]))
    if len(shape) != 2 or shape[0] != 1 or shape[1] < 1:
        raise ConfigError(
            f"the embedding function must return an (n, dim) array, not shape {shape}"
        )
    return int(shape[1])
