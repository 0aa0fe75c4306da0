"""Fixtures for the test servers' own tests: an SDK client on the session's local upstream."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from llmemo.testing.server import UpstreamServer

API_KEY = "sk-test-upstream"


@pytest.fixture
def oai(upstream: UpstreamServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=upstream.openai_base_url, api_key=API_KEY, max_retries=0) as client:
        yield client
