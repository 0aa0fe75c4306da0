"""The `/v1/models` pass-through only ever reaches the models path under the configured base."""

from __future__ import annotations

import socket

import orjson
import pytest

from llmemo.service import load_settings
from llmemo.service.errors import BadRequestError
from llmemo.service.upstream import Upstreams, models_path
from llmemo.testing.server import UpstreamServer
from tests.service.conftest import ALICE, ServiceServer

# What an outside probe sent (`curl --path-as-is`): each tries to leave /v1/models upstream.
ESCAPES = [
    "/v1/models/../../_stats",
    "/v1/models/../_stats",
    "/v1/models/%2e%2e/%2e%2e/_stats",
    "/v1/models/%2E%2E/%2E%2E/_stats",
    "/v1/models/..%2f..%2f_stats",
    "/v1/models/..%2F..%2F_stats",
    "/v1/models/x%2F..%2F..%2F..%2F_stats",
    "/v1/models/..\\..\\_stats",
    "/v1/models/%5c..%5c..%5c_stats",
    "/v1/models/%252e%252e/%252e%252e/_stats",
    "/v1/models/.%2e/.%2e/_stats",
    "/v1/models//_stats",
    "/v1/models/./../../_stats",
]


def raw_get(service: ServiceServer, target: str, **headers: str) -> tuple[int, bytes]:
    """GET `target` exactly as written (no client normalises it), on a fresh connection."""
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize("target", ESCAPES)
def test_a_path_leaving_the_models_path_is_refused_before_the_upstream(
    service: ServiceServer, upstream: UpstreamServer, target: str
) -> None:
    status, body = raw_get(service, target, Authorization=f"Bearer {ALICE}")
    assert status == 400, body
    error = orjson.loads(body)["error"]
    assert error["type"] == "invalid_request_error" and "model id" in error["message"]
    assert b"credentials" not in body  # the upstream's /_stats was not reached


@pytest.mark.asyncio
async def test_the_upstream_client_never_leaves_the_base_path(upstream: UpstreamServer) -> None:
    upstreams = Upstreams(load_settings(openai_base_url=upstream.openai_base_url))
    try:
        with pytest.raises(BadRequestError, match="outside the upstream's base path"):
            await upstreams.get("openai", "/models/../../_stats", "", {})
    finally:
        await upstreams.aclose()


def test_the_anthropic_shape_for_the_anthropic_sdk(service: ServiceServer) -> None:
    status, body = raw_get(service, ESCAPES[0], **{"anthropic-version": "2023-06-01"})
    assert status == 400
    assert orjson.loads(body)["type"] == "error"


@pytest.mark.parametrize("target", ["/v1/models", "/v1/models?limit=2"])
def test_the_list_of_models_is_still_passed_through(service: ServiceServer, target: str) -> None:
    status, body = raw_get(service, target, Authorization=f"Bearer {ALICE}")
    assert status == 200
    assert "gpt-4o-mini" in [m["id"] for m in orjson.loads(body)["data"]]


@pytest.mark.parametrize(
    ("suffix", "path"),
    [
        ("", "/models"),
        ("/gpt-4o-mini", "/models/gpt-4o-mini"),
        ("/ft:gpt-4o-mini:org::abc123", "/models/ft:gpt-4o-mini:org::abc123"),
        ("/claude-3-5-sonnet-20241022", "/models/claude-3-5-sonnet-20241022"),
        ("/meta-llama/Llama-3.1-8B", "/models/meta-llama/Llama-3.1-8B"),
    ],
)
def test_model_ids_map_under_the_models_path(suffix: str, path: str) -> None:
    assert models_path(suffix) == path


@pytest.mark.parametrize(
    "suffix", ["/..", "/.", "/", "//x", "/a/../b", "/a\\b", "/%2e%2e", "/a b", "/a?b", "/a#b", "x"]
)
def test_anything_else_is_a_bad_request(suffix: str) -> None:
    with pytest.raises(BadRequestError, match="model id"):
        models_path(suffix)
