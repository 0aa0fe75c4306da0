"""Per-request controls read from the headers, and the tenant a credential stands for."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmemo.core.durations import seconds
from llmemo.core.request import check_name
from llmemo.errors import ConfigError
from llmemo.service.errors import BadRequestError

# A constant salt: the same key gives the same tenant on every instance, and the stored tenant id
# cannot be looked up in a table of hashes of known keys.
_TENANT_SALT = b"llmemo-tenant/1\x00"
ANONYMOUS = "anonymous"
_CONTROL_HEADERS = (
    "cache-control",
    "x-llmemo-ttl",
    "x-llmemo-namespace",
    "x-llmemo-tags",
    "x-llmemo-stale-grace",
)


_CONTROLS = frozenset(_CONTROL_HEADERS)
_PLAIN: dict[str | None, Controls] = {}  # tenant -> its Controls without any control header


def tenant_id(credential: str) -> str:
    """The tenant of an API key (salted SHA-256, 128 bits in hex). The key itself is never kept."""
    return hashlib.sha256(_TENANT_SALT + credential.encode()).hexdigest()[:32]


def credential_of(headers: Mapping[str, str]) -> str | None:
    """The caller's API key: `x-api-key`, else the `Authorization` token (without `Bearer`)."""
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    auth = headers.get("authorization")
    if not auth:
        return None
    scheme, _, token = auth.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else auth.strip()


def namespace_of(headers: Mapping[str, str]) -> str | None:
    """The namespace a request names (`X-LLMemo-Namespace`); None: the service's own."""
    value = headers.get("x-llmemo-namespace")
    return value.strip() or None if value is not None else None


def tenant_of(headers: Mapping[str, str], shared: bool) -> str | None:
    """The cache scope's tenant: None when the request's namespace is shared, else one per
    credential."""
    if shared:
        return None
    credential = credential_of(headers)
    return ANONYMOUS if credential is None else tenant_id(credential)


@dataclass(frozen=True)
class Controls:
    """What one request asks of the cache.

    refresh (Cache-Control: no-cache): skip the lookup, call upstream and replace the entry.
    no_store (Cache-Control: no-store): a hit is fine, a fresh answer is not stored.
    Both at once: the cache is bypassed.
    """

    refresh: bool = False
    no_store: bool = False
    ttl: float | None = None
    namespace: str | None = None
    tags: tuple[str, ...] = ()
    tenant: str | None = None
    stale_grace: float | None = None

    @property
    def cacheable(self) -> bool:
        return not (self.refresh and self.no_store)

    def options(self) -> dict[str, Any]:
        """Keyword arguments for `AsyncCache.compute`."""
        return {
            "refresh": self.refresh,
            "no_store": self.no_store,
            "cacheable": self.cacheable,
            "ttl": self.ttl,
            "namespace": self.namespace,
            "tenant": self.tenant,
            "tags": self.tags,
            "stale_grace": self.stale_grace,
        }


def plain_request(headers: Mapping[str, str]) -> bool:
    """The request has no control header: its Controls are its tenant's defaults."""
    return _CONTROLS.isdisjoint(headers)


def plain_controls(tenant: str | None) -> Controls:
    """The Controls of a request with no control header (one shared object per tenant)."""
    plain = _PLAIN.get(tenant)
    if plain is None:
        if len(_PLAIN) >= 4096:
            _PLAIN.clear()
        plain = _PLAIN[tenant] = Controls(tenant=tenant)
    return plain


def read_controls(headers: Mapping[str, str], shared: bool) -> Controls:
    """Controls from `Cache-Control` and `X-LLMemo-TTL/Namespace/Tags`; BadRequestError if invalid."""
    if plain_request(headers):  # the common case: only the tenant
        return plain_controls(tenant_of(headers, shared))
    directives = {
        part.strip().lower() for part in headers.get("cache-control", "").split(",") if part.strip()
    }
    try:
        ttl = _ttl(headers.get("x-llmemo-ttl"))
        grace = _grace(headers.get("x-llmemo-stale-grace"), directives)
        namespace = headers.get("x-llmemo-namespace")
        if namespace is not None:
            check_name("namespace", namespace.strip())
        tags = tuple(
            check_name("tag", tag.strip())
            for tag in headers.get("x-llmemo-tags", "").split(",")
            if tag.strip()
        )
    except ConfigError as exc:
        raise BadRequestError(f"bad llmemo header: {exc}") from None
    return Controls(
        refresh="no-cache" in directives,
        no_store="no-store" in directives,
        ttl=ttl,
        namespace=namespace.strip() if namespace else None,
        tags=tags,
        tenant=tenant_of(headers, shared),
        stale_grace=grace,
    )


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
