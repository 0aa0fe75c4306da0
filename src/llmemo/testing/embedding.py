"""Deterministic embeddings: texts that share words get close unit vectors."""

from __future__ import annotations

import functools
import hashlib
import math
import random
import re
from collections.abc import Sequence

_WORD = re.compile(r"\w+")


def _gaussian(seed: str, dim: int) -> list[float]:
    rng = random.Random(hashlib.sha256(seed.encode()).digest())
    return [rng.gauss(0.0, 1.0) for _ in range(dim)]


_word_vector = functools.lru_cache(maxsize=4096)(_gaussian)


def _unit(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def embed(text: str, model: str, dim: int) -> list[float]:
    """A unit vector: hashed words plus a little of the whole text (shared words -> close)."""
    total = [0.0] * dim
    for word in _WORD.findall(text.lower()):
        total = [
            x + y for x, y in zip(total, _word_vector(f"{model}\0w\0{word}", dim), strict=True)
        ]
    whole = _unit(_gaussian(f"{model}\0t\0{text}", dim))
    return _unit([x + 0.2 * y for x, y in zip(_unit(total), whole, strict=True)])
