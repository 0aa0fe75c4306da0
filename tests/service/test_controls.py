"""Per-request controls and tenants: pure functions of the headers."""

from __future__ import annotations

import pytest

from llmemo.service.controls import (
    ANONYMOUS,
    Controls,
    credential_of,
    read_controls,
    tenant_id,
    tenant_of,
)
from llmemo.service.errors import BadRequestError


def test_credential_from_either_header() -> None:
    assert credential_of({"authorization": "Bearer sk-1"}) == "sk-1"
    assert credential_of({"authorization": "bearer  sk-1 "}) == "sk-1"
    assert credential_of({"x-api-key": "sk-1"}) == "sk-1"
    assert credential_of({"x-api-key": "sk-2", "authorization": "Bearer sk-1"}) == "sk-2"
    assert credential_of({"authorization": "Basic abc"}) == "Basic abc"
    assert credential_of({}) is None


def test_tenants_are_salted_hashes_that_never_collide_across_keys() -> None:
    alice, bob = tenant_id("sk-alice"), tenant_id("sk-bob")
    assert alice != bob and len(alice) == 32
    assert "sk-alice" not in alice
    assert alice == tenant_of({"authorization": "Bearer sk-alice"}, shared=False)
    assert tenant_of({}, shared=False) == ANONYMOUS
    assert tenant_of({"authorization": "Bearer sk-alice"}, shared=True) is None


def test_controls_from_headers() -> None:
    assert read_controls({}, shared=False) == Controls(tenant=ANONYMOUS)
    controls = read_controls(
        {
            "cache-control": "No-Cache",
            "x-llmemo-ttl": "90m",
            "x-llmemo-namespace": "faq",
            "x-llmemo-tags": "static, daily ,",
        },
        shared=True,
    )
    assert controls == Controls(refresh=True, ttl=5400.0, namespace="faq", tags=("static", "daily"))
    assert controls.cacheable
    both = read_controls({"cache-control": "no-cache, no-store"}, shared=True)
    assert (both.refresh, both.no_store, both.cacheable) == (True, True, False)
    assert both.options()["cacheable"] is False


@pytest.mark.parametrize(
    "headers",
    [
        {"x-llmemo-ttl": "-1"},
        {"x-llmemo-ttl": "0"},
        {"x-llmemo-namespace": "a:b"},
        {"x-llmemo-tags": "a b"},
    ],
)
def test_bad_controls(headers: dict[str, str]) -> None:
    with pytest.raises(BadRequestError, match="bad llmemo header"):
        read_controls(headers, shared=False)
