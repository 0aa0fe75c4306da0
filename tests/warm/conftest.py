"""Warming tests: the real service (uvicorn) on a real redis-server, the local upstream, and
QStash signatures made with PyJWT exactly as QStash documents them."""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest

from llmemo.service import load_settings
from llmemo.testing.server import UpstreamServer
from tests.service.conftest import ServiceServer

CURRENT = "sig_current_" + "c" * 32  # QStash keys are long random strings; >= 32 bytes for HS256
NEXT = "sig_next_" + "n" * 32
TOKEN = "warm-token-0123456789abcdef"
PUBLIC_URL = "https://cache.example.com/v1/warm"  # what QStash calls, through a proxy

Serve = Callable[..., ServiceServer]


def sign(
    body: bytes,
    key: str = CURRENT,
    url: str = PUBLIC_URL,
    *,
    exp_in: float = 300,
    nbf_in: float = 0,
    **claims: Any,
) -> str:
    """An `Upstash-Signature` as QStash makes it: HS256, iss/sub/exp/nbf/iat/jti/body."""
    now = int(time.time())
    payload = {
        "iss": "Upstash",
        "sub": url,
        "exp": int(now + exp_in),
        "nbf": int(now + nbf_in),
        "iat": now,
        "jti": f"jwt_{uuid.uuid4().hex}",
        "body": base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode(),
        **claims,
    }
    payload = {name: value for name, value in payload.items() if value is not None}  # jti=None
    return jwt.encode(payload, key, algorithm="HS256")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test alone, never from the developer's environment."""
    for name in list(os.environ):
        upper = name.upper()
        if upper.startswith(("LLMEMO_", "QSTASH_")) or upper in (
            "OPENAI_BASE_URL",
            "ANTHROPIC_BASE_URL",
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "REDIS_URL",
        ):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def serve(upstream: UpstreamServer, redis_url: str) -> Iterator[Serve]:
    """Start a service with warming on (QStash keys, a token) whose `default` namespace is
    shared, so warmed entries are served; keyword arguments override."""
    started: list[ServiceServer] = []

    def start(**overrides: Any) -> ServiceServer:
        options: dict[str, Any] = {
            "store": redis_url,
            "openai_base_url": upstream.openai_base_url,
            "anthropic_base_url": upstream.url,
            "qstash_current_signing_key": CURRENT,
            "qstash_next_signing_key": NEXT,
            "warm_token": TOKEN,
            "warm_url": PUBLIC_URL,
            "shared_namespaces": ["default"],
            **overrides,
        }
        server = ServiceServer(load_settings(**options)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def service(serve: Serve) -> ServiceServer:
    return serve()
