"""The Embedder protocol: texts in, unit vectors out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeAlias, runtime_checkable

from llmemo.errors import require

require("numpy", "semantic")

import numpy as np  # noqa: E402  (after the one-line hint for a missing extra)
import numpy.typing as npt  # noqa: E402

Matrix: TypeAlias = npt.NDArray[np.float32]
"""An (n, dim) float32 matrix, one L2-normalised row per text."""


@runtime_checkable
class AsyncEmbedder(Protocol):
    """Texts in, an (n, dim) float32 matrix of L2-normalised rows out, in the same order.

    `name` says which backend (minilm, openai, ollama), `model` which weights; together with `dim`
    they say which vectors are comparable (and key the embedding cache).
    """

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def dim(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> Matrix: ...
