"""GET /openapi.json: every mounted route is described, with its request and error shapes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
from starlette.routing import Route

from llmemo.service import create_app, load_settings
from llmemo.service.openapi import document
from llmemo.service.proxy import ENDPOINTS


def mounted() -> set[tuple[str, str]]:
    """(method, path) of every route the app mounts, paths in OpenAPI's `{name}` form."""
    app = create_app(load_settings(store="memory://", openai_base_url="http://127.0.0.1:9/v1"))
    found = set()
    for route in app.routes:
        assert isinstance(route, Route), f"{route!r}: describe this kind of route in the test"
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        found |= {(method.lower(), path) for method in route.methods or () if method != "HEAD"}
    return found


def described() -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, operations in document()["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    }


def refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if isinstance(value.get("$ref"), str):
            yield value["$ref"]
        for item in value.values():
            yield from refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from refs(item)


def test_every_mounted_route_is_described_and_nothing_else() -> None:
    assert mounted() == described()


def test_every_reference_resolves() -> None:
    doc = document()
    for pointer in refs(doc):
        node: Any = doc
        for part in pointer.removeprefix("#/").split("/"):
            assert isinstance(node, dict) and part in node, f"dangling $ref {pointer}"
            node = node[part]


def test_errors_of_cached_routes_are_in_their_providers_shape() -> None:
    paths = document()["paths"]
    for endpoint in ENDPOINTS:
        answers = paths[endpoint.path]["post"]["responses"]
        shape = "AnthropicError" if endpoint.flavour == "anthropic" else "OpenAIError"
        errors = {status: answer for status, answer in answers.items() if status >= "400"}
        assert errors and all(
            a == {"$ref": f"#/components/responses/{shape}"} for a in errors.values()
        )


def test_control_headers_and_credentials_are_described() -> None:
    doc = document()
    names = {p["name"].lower() for p in doc["components"]["parameters"].values()}
    assert {"cache-control", "x-llmemo-ttl", "x-llmemo-namespace", "x-llmemo-tags"} <= names
    assert {"x-llmemo-stale-grace"} <= names
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer" and schemes["apiKey"]["name"] == "x-api-key"


def test_the_service_serves_the_document(http: httpx.Client) -> None:
    answer = http.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == document()
    assert answer.json()["openapi"] == "3.1.0"
