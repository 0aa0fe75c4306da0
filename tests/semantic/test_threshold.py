"""One threshold scale: cosine similarity in [0, 1] in the library, from_url, settings and CLI;
0 hits anything in scope, 1.0 is exact only, anything else is a ConfigError; sync == async."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import pytest

from llmemo import AsyncCache, Cache, ConfigError
from llmemo.core.semantic import (
    DEFAULT_THRESHOLDS,
    AsyncSemanticLayer,
    SemanticLayer,
    check_threshold,
    default_threshold,
)
from llmemo.embed.callable import CallableEmbedder
from llmemo.service import load_settings
from llmemo.stores.memory import AsyncMemoryStore, MemoryStore
from tests.core.helpers import Upstream, answer, chat
from tests.semantic.conftest import CountingEmbedder, Make, cosine

BAD = [-0.01, 1.01, 2, -1, math.nan, math.inf, "0.9", True, None]


@pytest.mark.parametrize("value", BAD[:-1])
def test_out_of_range_is_a_config_error_everywhere(value: Any, embedder: CountingEmbedder) -> None:
    with pytest.raises(ConfigError, match=r"threshold must be a cosine similarity in \[0, 1\]"):
        check_threshold(value)
    with pytest.raises(ConfigError, match="threshold"):
        SemanticLayer(embedder, threshold=value)
    with pytest.raises(ConfigError, match="threshold"):
        AsyncSemanticLayer(embedder, threshold=value)
    with pytest.raises(ConfigError, match="threshold"):
        Cache.from_url("memory://", semantic=True, embedder=embedder, threshold=value)


@pytest.mark.parametrize("value", ["-0.1", "1.5", "high"])
def test_settings_and_cli_reject_it_too(value: str) -> None:
    with pytest.raises(ConfigError, match="semantic_threshold"):
        load_settings(semantic=True, semantic_threshold=value)
    done = subprocess.run(
        [sys.executable, "-m", "llmemo", "serve", "--upstream", "demo", "--store", "memory://",
         "--semantic", "--semantic-threshold", value],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "llmemo: error:" in done.stderr


def test_in_range_values_are_kept_as_floats() -> None:
    assert check_threshold(0) == 0.0 and isinstance(check_threshold(0), float)
    assert check_threshold(1) == 1.0
    assert check_threshold(0.93) == 0.93
    assert load_settings(semantic=True, semantic_threshold="0.9").semantic_threshold == 0.9


def test_the_default_comes_from_the_embedder(embedder: CountingEmbedder) -> None:
    assert SemanticLayer(embedder).threshold == DEFAULT_THRESHOLDS["minilm"]
    assert default_threshold("minilm") == default_threshold("MiniLM:all-MiniLM-L6-v2")
    homemade = CallableEmbedder(lambda texts: [[1.0, 0.0] for _ in texts], dim=2)
    with pytest.raises(ConfigError, match=r"no default semantic threshold.*llmemo calibrate"):
        SemanticLayer(homemade)
    assert SemanticLayer(homemade, threshold=0.8).threshold == 0.8
    with pytest.raises(ConfigError, match="no default"):
        default_threshold("openai:text-embedding-3-small@http://x")


@pytest.mark.asyncio
async def test_zero_matches_anything_in_scope(make: Make) -> None:
    twin = make(threshold=0.0, guard=None)
    await twin.compute(chat("What is the capital of France?"), "Paris.")
    result = await twin.compute(chat("Write a haiku about autumn leaves."), "haiku")
    assert result.status == "semantic" and result.response == answer("Paris.")
    assert result.hit is not None and result.hit.similarity is not None
    assert 0.0 <= result.hit.similarity < 0.5


@pytest.mark.asyncio
async def test_one_is_exact_only_and_embeds_nothing(make: Make, embedder: CountingEmbedder) -> None:
    twin = make(threshold=1.0, guard=None)
    await twin.compute(chat("What is the capital of France?"))
    # the same words in another case embed to the same vector (the model is uncased): still a miss
    result = await twin.compute(chat("WHAT IS THE CAPITAL OF FRANCE?"), "x")
    assert result.status == "miss"
    assert (await twin.compute(chat("What is the capital of France?"))).status == "hit"
    assert embedder.texts == []


@pytest.mark.asyncio
async def test_the_threshold_is_inclusive_and_on_the_cosine_scale(
    make: Make, embedder: CountingEmbedder
) -> None:
    a, b = "What is the capital of France?", "Which city is the capital of France?"
    similarity = cosine(embedder, a, b)
    above = make(threshold=round(similarity - 0.01, 4), namespace="below")
    await above.compute(chat(a))
    assert (await above.compute(chat(b), "x")).status == "semantic"
    below = make(threshold=min(1.0, round(similarity + 0.01, 4)), namespace="above")
    await below.compute(chat(a))
    assert (await below.compute(chat(b), "x")).status == "miss"


SCENARIO = [
    ("What is the capital of France?", "Paris."),
    ("Which city is the capital of France?", "x"),
    ("Is 7 a prime number?", "yes"),
    ("Is 9 a prime number?", "no"),
    ("What's the capital city of France?", "y"),
    ("How tall is Mount Everest?", "8849 m"),
    ("What is the height of Mount Everest?", "z"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("threshold", [0.0, 0.8, 0.93, 1.0])
async def test_sync_and_async_agree(threshold: float, embedder: CountingEmbedder) -> None:
    sync = Cache(MemoryStore(), semantic=SemanticLayer(embedder, "local", threshold=threshold))
    asyn = AsyncCache(
        AsyncMemoryStore(), semantic=AsyncSemanticLayer(embedder, "local", threshold=threshold)
    )
    for text, reply in SCENARIO:
        s = sync.compute(chat(text), Upstream(answer(reply)))
        a = await asyn.compute(chat(text), Upstream(answer(reply)).acall)
        assert (s.status, s.response) == (a.status, a.response), text
        similarity = (s.hit and s.hit.similarity, a.hit and a.hit.similarity)
        if similarity[0] is None:
            assert similarity[1] is None
        else:
            assert similarity[0] == pytest.approx(similarity[1], abs=1e-3)
    sync.close()
    await asyn.close()
