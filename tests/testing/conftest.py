"""Fixtures for the test servers' own tests: one local upstream per module, an SDK client on it."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from llmemo.testing.server import UpstreamServer

API_KEY = "sk-test-upstream"


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[UpstreamServer]:
    with UpstreamServer() as server:
        yield server


@pytest.fixture
def upstream(upstream_server: UpstreamServer) -> UpstreamServer:
    upstream_server.reset()
    return upstream_server


@pytest.fixture
def oai(upstream: UpstreamServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=upstream.openai_base_url, api_key=API_KEY, max_retries=0) as client:
        yield client
