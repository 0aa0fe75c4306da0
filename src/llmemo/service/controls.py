"""Per-request controls read from the headers, and the tenant a credential stands for."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from llmemo.core.options import CONTROL_HEADERS, CacheOptions
from llmemo.errors import ConfigError
from llmemo.service.errors import BadRequestError

# A constant salt: the same key gives the same tenant on every instance, and the stored tenant id
# cannot be looked up in a table of hashes of known keys.
_TENANT_SALT = b"llmemo-tenant/1\x00"
ANONYMOUS = "anonymous"
Controls = CacheOptions  # what one request asks of the cache
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


def plain_request(headers: Mapping[str, str]) -> bool:
    """The request has no control header: its Controls are its tenant's defaults."""
    return CONTROL_HEADERS.isdisjoint(headers)


def plain_controls(tenant: str | None) -> Controls:
    """The Controls of a request with no control header (one shared object per tenant)."""
    plain = _PLAIN.get(tenant)
    if plain is None:
        if len(_PLAIN) >= 4096:
            _PLAIN.clear()
        plain = _PLAIN[tenant] = Controls(tenant=tenant)
    return plain


def read_controls(headers: Mapping[str, str], shared: bool) -> Controls:
    """Controls from `Cache-Control` and `X-LLMemo-TTL/Namespace/Tags/Stale-Grace`;
    BadRequestError if invalid."""
    if plain_request(headers):  # the common case: only the tenant
        return plain_controls(tenant_of(headers, shared))
    try:
        return CacheOptions.from_headers(headers, tenant_of(headers, shared))
    except ConfigError as exc:
        raise BadRequestError(f"bad llmemo header: {exc}") from None
