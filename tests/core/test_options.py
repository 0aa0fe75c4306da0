"""CacheOptions: one options type, the same from the service's headers and from keywords."""

from __future__ import annotations

import pytest

from llmemo.core.options import CacheOptions
from llmemo.errors import ConfigError


def test_headers_and_keywords_give_the_same_options() -> None:
    by_headers = CacheOptions.from_headers(
        {
            "Cache-Control": "no-cache, stale-while-revalidate=600",
            "X-LLMemo-TTL": "90m",
            "X-LLMemo-Namespace": " faq ",
            "X-LLMemo-Tags": "static, daily ,",
            "X-Other": "ignored",
        },
        tenant="t1",
    )
    by_keywords = CacheOptions.from_kwargs(
        cache_refresh=True,
        cache_stale_grace=600.0,
        cache_ttl=5400.0,
        cache_namespace="faq",
        cache_tags="static,daily",
        cache_tenant="t1",
    )
    assert by_headers == by_keywords
    assert by_headers.options()["stale_grace"] == 600.0


def test_the_grace_header_wins_over_the_directive() -> None:
    options = CacheOptions.from_headers(
        {"cache-control": "stale-while-revalidate=5", "x-llmemo-stale-grace": "10m"}
    )
    assert options.stale_grace == 600.0


def test_refresh_and_no_store_together_bypass_the_cache() -> None:
    assert not CacheOptions.from_headers({"cache-control": "no-cache, no-store"}).cacheable
    assert not CacheOptions(refresh=True, no_store=True).options()["cacheable"]
    assert CacheOptions(no_store=True).cacheable


def test_call_overrides_add_tags_and_keep_sdk_keywords() -> None:
    defaults = CacheOptions.from_kwargs(tags=["base"], ttl="1h")
    options, sdk = defaults.split(
        {"model": "m", "cache_tags": ["call"], "extra_headers": {"x-llmemo-ttl": "2h", "n": None}}
    )
    assert options.tags == ("base", "call") and options.ttl == 7200.0
    assert sdk == {"model": "m", "extra_headers": {"x-llmemo-ttl": "2h", "n": None}}


@pytest.mark.parametrize(
    "headers",
    [
        {"x-llmemo-ttl": "0"},
        {"x-llmemo-stale-grace": "-1"},
        {"x-llmemo-namespace": "a:b"},
        {"x-llmemo-tags": "a b"},
        {"x-llmemo-namespace": ""},
    ],
)
def test_bad_headers(headers: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        CacheOptions.from_headers(headers)


def test_unknown_keyword() -> None:
    with pytest.raises(ConfigError, match="unknown cache option"):
        CacheOptions.from_kwargs(cache_color="red")
