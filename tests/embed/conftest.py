"""Session fixtures for the embedders: the local model, its sentence-transformers reference, the
fake OpenAI/Ollama upstream (the session's, from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from llmemo.embed.minilm import MiniLMEmbedder
from llmemo.embed.weights import find_model_dir
from llmemo.testing.server import UpstreamServer


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="session")
def reference() -> Iterator[Any]:
    """all-MiniLM-L6-v2 as sentence-transformers runs it (torch, CPU), from the same files."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")  # a reference that reached for the hub would fail
        patch.setenv("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer

        yield SentenceTransformer(str(find_model_dir()), device="cpu")


@pytest.fixture(scope="session")
def upstream(upstream_server: UpstreamServer) -> UpstreamServer:
    """The session's local upstream (tests/conftest.py), not reset: `server` in test_http does."""
    return upstream_server
