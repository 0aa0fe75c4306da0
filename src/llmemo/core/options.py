"""How one call uses the cache: one type, read from the service's headers or from keywords.

The same intent has two spellings. Headers, as `llmemo serve` reads them and as a wrapped client
may send them in `extra_headers`: `Cache-Control: no-cache` (refresh), `no-store`,
`stale-while-revalidate=SECONDS`, `X-LLMemo-TTL`, `X-LLMemo-Namespace`, `X-LLMemo-Tags`,
`X-LLMemo-Stale-Grace`, `X-LLMemo-User` (the end user an entry is kept for: `Cache.wipe`). Keywords, as `wrap()` and its calls take them: `cache_ttl=`,
`cache_namespace=`, `cache_tags=`, `cache_tenant=`, `cache_user=`, `cache_refresh=`,
`cache_no_store=`, `cache_stale_grace=`, `cacheable=`. Both give a `CacheOptions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from llmemo.core.durations import Duration, seconds
from llmemo.core.policy import TTL_CEILING, TtlArg, TtlPolicy
from llmemo.core.request import check_name
from llmemo.errors import ConfigError

# The request headers that carry options (lower case).
CONTROL_HEADERS = frozenset(
    {
        "cache-control",
        "x-llmemo-ttl",
        "x-llmemo-namespace",
        "x-llmemo-tags",
        "x-llmemo-stale-grace",
        "x-llmemo-user",
    }
)
_ANY_TTL = TtlPolicy.build()  # no max_ttl: only the ten-year ceiling (the cache checks its own)
# keyword -> CacheOptions field
KEYWORDS: Mapping[str, str] = {
    "cache_ttl": "ttl",
    "cache_namespace": "namespace",
    "cache_tags": "tags",
    "cache_tenant": "tenant",
    "cache_user": "user",
    "cache_refresh": "refresh",
    "cache_no_store": "no_store",
    "cache_stale_grace": "stale_grace",
    "cacheable": "cacheable",
}


@dataclass(frozen=True)
class CacheOptions:
    """How one call uses the cache (see `Cache.compute`).

    refresh (Cache-Control: no-cache): skip the lookup, call upstream and replace the entry.
    no_store (Cache-Control: no-store): a hit is fine, a fresh answer is not stored.
    Both at once: the cache is bypassed (`cacheable` is False).
    stale_grace (X-LLMemo-Stale-Grace, Cache-Control: stale-while-revalidate): serve an entry
    this long past its TTL while one background call refreshes it.
    """

    refresh: bool = False
    no_store: bool = False
    ttl: TtlArg = None
    namespace: str | None = None
    tags: tuple[str, ...] = ()
    tenant: str | None = None
    stale_grace: Duration | None = None
    user: str | None = None
    cacheable: bool = True

    def __post_init__(self) -> None:
        if self.refresh and self.no_store and self.cacheable:
            object.__setattr__(self, "cacheable", False)
        ttl = self.ttl
        if ttl is not None and not (type(ttl) is float and 0 < ttl <= TTL_CEILING):
            _ANY_TTL.check(ttl)  # a bad TTL fails before the provider is paid, not after
        if self.stale_grace is not None and seconds(self.stale_grace) < 0:
            raise ConfigError(
                f"the stale-while-revalidate grace must not be negative, got {self.stale_grace!r}"
            )
        if self.namespace is not None:
            check_name("namespace", self.namespace)
        for tag in self.tags:
            check_name("tag", tag)

    @classmethod
    def from_kwargs(cls, **options: Any) -> CacheOptions:
        """Options from field names or the per-call keywords (`cache_ttl=`, ...)."""
        fields = _fields(options)
        unknown = fields.keys() - cls.__dataclass_fields__.keys()
        if unknown:
            raise ConfigError(
                f"unknown cache option(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(cls.__dataclass_fields__))}"
            )
        return cls(**fields)

    @classmethod
    def from_headers(cls, headers: Mapping[Any, Any], tenant: str | None = None) -> CacheOptions:
        """Options from request headers (names in any case; values that are not strings, such
        as the SDKs' Omit markers, are ignored); ConfigError when one is invalid."""
        return cls(tenant=tenant, **_header_fields(headers))

    def split(self, kwargs: Mapping[str, Any]) -> tuple[CacheOptions, dict[str, Any]]:
        """These defaults overridden by a call's headers (`extra_headers`) and keywords; the
        keywords left for the SDK. Tags add up: the defaults', then the call's."""
        sdk = {k: v for k, v in kwargs.items() if k not in KEYWORDS}
        headers = sdk.get("extra_headers")
        changes = _header_fields(headers) if isinstance(headers, Mapping) else {}
        changes.update(_fields({k: v for k, v in kwargs.items() if k in KEYWORDS}))
        if "tags" in changes:
            changes["tags"] = (*self.tags, *changes["tags"])
        return (replace(self, **changes) if changes else self), sdk

    def scope(self) -> dict[str, Any]:
        """The keywords `Cache.lookup` takes."""
        return {
            "namespace": self.namespace,
            "tenant": self.tenant,
            "user": self.user,
            "tags": self.tags,
        }

    def options(self) -> dict[str, Any]:
        """The keywords `Cache.compute` takes."""
        return {
            **self.scope(),
            "ttl": self.ttl,
            "cacheable": self.cacheable,
            "refresh": self.refresh,
            "no_store": self.no_store,
            "stale_grace": self.stale_grace,
        }

    def storing(self) -> dict[str, Any]:
        """The keywords `Cache.store` takes."""
        return {**self.scope(), "ttl": self.ttl, "stale_grace": self.stale_grace}


def _fields(options: Mapping[str, Any]) -> dict[str, Any]:
    fields = {KEYWORDS.get(name, name): value for name, value in options.items()}
    if "tags" in fields:
        fields["tags"] = _tags(fields["tags"])
    return fields


def _tags(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(",") if t.strip())
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(str(t) for t in value)
    raise ConfigError(f"tags must be a string or a list of strings, got {type(value).__name__}")


def _header_fields(headers: Mapping[Any, Any]) -> dict[str, Any]:
    """The fields the option headers name (only those present)."""
    found: dict[str, str] = {}
    for name, value in headers.items():
        if isinstance(name, str) and isinstance(value, str):
            lower = name if name.islower() else name.lower()
            if lower in CONTROL_HEADERS:
                found[lower] = value
    fields: dict[str, Any] = {}
    directives = {
        part.strip().lower() for part in found.get("cache-control", "").split(",") if part.strip()
    }
    if "no-cache" in directives:
        fields["refresh"] = True
    if "no-store" in directives:
        fields["no_store"] = True
    ttl = _ttl(found.get("x-llmemo-ttl"))
    if ttl is not None:
        fields["ttl"] = ttl
    grace = _grace(found.get("x-llmemo-stale-grace"), directives)
    if grace is not None:
        fields["stale_grace"] = grace
    namespace = found.get("x-llmemo-namespace")
    if namespace is not None:
        fields["namespace"] = namespace.strip()
    if "x-llmemo-tags" in found:
        fields["tags"] = _tags(found["x-llmemo-tags"])
    user = found.get("x-llmemo-user")
    if user is not None:
        if not user.strip():
            raise ConfigError("X-LLMemo-User must not be empty")
        fields["user"] = user.strip()
    return fields


def _ttl(value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    ttl = seconds(value)
    if ttl <= 0:
        raise ConfigError(f"X-LLMemo-TTL must be positive, got {value!r}")
    return ttl


def _grace(value: str | None, directives: set[str]) -> float | None:
    """`X-LLMemo-Stale-Grace: 10m`, else HTTP's `Cache-Control: stale-while-revalidate=600`."""
    if value is None:
        for directive in directives:
            name, _, number = directive.partition("=")
            if name.strip() == "stale-while-revalidate":
                value = number.strip() or "0"
    if value is None or not value.strip():
        return None
    grace = seconds(value)
    if grace < 0:
        raise ConfigError(f"the stale-while-revalidate grace must not be negative, got {value!r}")
    return grace
