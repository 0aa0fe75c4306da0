"""Per-call cache options of the wrapped clients: defaults from `wrap()`, then keywords and headers.

Pure functions only. A call can carry its options as keywords popped before the SDK sees them
(`cache_ttl=`, `cache_namespace=`, `cache_tags=`, `cache_tenant=`, `cache_user=`,
`cache_refresh=`, `cache_no_store=`, `cacheable=`) or as the headers the caching service reads
(`Cache-Control: no-cache` / `no-store`, `X-LLMemo-TTL`, `X-LLMemo-Namespace`, `X-LLMemo-Tags`),
which are left in `extra_headers` so a service behind the client sees the same intent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from llmemo.core.policy import TtlArg, TtlPolicy
from llmemo.core.request import check_name
from llmemo.errors import ConfigError

# keyword -> CallOptions field
KEYWORDS: Mapping[str, str] = {
    "cache_ttl": "ttl",
    "cache_namespace": "namespace",
    "cache_tags": "tags",
    "cache_tenant": "tenant",
    "cache_user": "user",
    "cache_refresh": "refresh",
    "cache_no_store": "no_store",
    "cacheable": "cacheable",
}


@dataclass(frozen=True)
class CallOptions:
    """How one call uses the cache (see `Cache.compute` for refresh, no_store and cacheable)."""

    ttl: TtlArg = None
    namespace: str | None = None
    tags: tuple[str, ...] = ()
    tenant: str | None = None
    user: str | None = None
    cacheable: bool = True
    refresh: bool = False
    no_store: bool = False

    def __post_init__(self) -> None:
        if self.ttl is not None:
            TtlPolicy.build(self.ttl)  # a bad TTL fails before the provider is paid, not after
        if self.namespace is not None:
            check_name("namespace", self.namespace)
        for tag in self.tags:
            check_name("tag", tag)

    @classmethod
    def build(cls, **options: Any) -> CallOptions:
        """Options given to `wrap()`: the CallOptions field names, or the per-call keywords."""
        fields = {KEYWORDS.get(name, name): value for name, value in options.items()}
        unknown = fields.keys() - cls.__dataclass_fields__.keys()
        if unknown:
            raise ConfigError(
                f"unknown cache option(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(cls.__dataclass_fields__))}"
            )
        if "tags" in fields:
            fields["tags"] = _tags(fields["tags"])
        return cls(**fields)

    def split(self, kwargs: Mapping[str, Any]) -> tuple[CallOptions, dict[str, Any]]:
        """These defaults overridden by a call's headers and keywords; the kwargs for the SDK."""
        sdk = {k: v for k, v in kwargs.items() if k not in KEYWORDS}
        changes: dict[str, Any] = _from_headers(sdk.get("extra_headers"))
        for name, field_name in KEYWORDS.items():
            if name in kwargs:
                changes[field_name] = kwargs[name]
        if "tags" in changes:
            changes["tags"] = (*self.tags, *_tags(changes["tags"]))
        return (replace(self, **changes) if changes else self), sdk

    def scope(self) -> dict[str, Any]:
        """The keywords `Cache.lookup` takes."""
        return {
            "namespace": self.namespace,
            "tenant": self.tenant,
            "user": self.user,
            "tags": self.tags,
        }

    def compute(self) -> dict[str, Any]:
        """The keywords `Cache.compute` takes."""
        return {
            **self.scope(),
            "ttl": self.ttl,
            "cacheable": self.cacheable,
            "refresh": self.refresh,
            "no_store": self.no_store,
        }


def _tags(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(",") if t.strip())
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(str(t) for t in value)
    raise ConfigError(f"tags must be a string or a list of strings, got {type(value).__name__}")


def _from_headers(headers: Any) -> dict[str, Any]:
    """Options named by the service's request headers (case-insensitive names)."""
    if not isinstance(headers, Mapping):
        return {}
    found: dict[str, Any] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            continue  # the SDKs accept Omit/NotGiven markers here to drop a default header
        lower = name.lower()
        if lower == "cache-control":
            directives = {d.strip().lower() for d in value.split(",")}
            if "no-cache" in directives:
                found["refresh"] = True
            if "no-store" in directives:
                found["no_store"] = True
        elif lower == "x-llmemo-ttl":
            found["ttl"] = value.strip()
        elif lower == "x-llmemo-namespace":
            found["namespace"] = value.strip()
        elif lower == "x-llmemo-tags":
            found["tags"] = value
    return found
