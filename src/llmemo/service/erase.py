"""`POST /admin/wipe`: erase one end user's or one tenant's data (`AsyncCache.wipe`), and the
service's own in-process copies of past requests (hot answers, parsed bodies) on every erasure.

Body: `{"user": "U"}`, `{"tenant": "T"}` (a tenant id as the service stores it) or
`{"api_key": "K"}` (the tenant of that API key, hashed here; the key is never kept), and either
may be combined with `user`; `"namespace"`: one namespace (default: every one). The answer is
the report as JSON; a bad body is a 400 and a store failure a 503, in OpenAI's error shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from llmemo.core.erase import ALL_NAMESPACES
from llmemo.errors import ConfigError, StoreError
from llmemo.service.controls import tenant_id
from llmemo.service.errors import (
    BadRequestError,
    StoreUnavailableError,
    error_response,
    json_response,
)

if TYPE_CHECKING:
    from llmemo.service.app import Service
    from llmemo.service.proxy import Proxy

FIELDS = frozenset({"user", "tenant", "api_key", "namespace"})


def wipe_route(service: Service) -> Callable[[Request], Any]:
    """The handler of `POST /admin/wipe` (wrap it in `admin_only`)."""

    async def wipe(request: Request) -> Response:
        try:
            user, tenant, namespace = _target(await request.body())
            report = await service.proxy.cache.wipe(user=user, tenant=tenant, namespace=namespace)
        except (BadRequestError, ConfigError) as exc:
            return error_response(exc, "openai")
        except StoreError as exc:
            return error_response(StoreUnavailableError(f"the wipe failed: {exc}"), "openai")
        return json_response(report.to_dict())

    return wipe


def _target(raw: bytes) -> tuple[str | None, str | None, str]:
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"the wipe body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequestError('send a JSON object: {"user": ...} or {"tenant": ...}')
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise BadRequestError(f"unknown field(s) {', '.join(unknown)}; known: {sorted(FIELDS)}")
    for name in FIELDS:
        if name in body and not isinstance(body[name], str):
            raise BadRequestError(f"{name} must be a string")
    if "tenant" in body and "api_key" in body:
        raise BadRequestError("give tenant or api_key, not both")
    tenant = tenant_id(body["api_key"]) if body.get("api_key") else body.get("tenant")
    return body.get("user"), tenant, body.get("namespace") or ALL_NAMESPACES


def drop_copies(proxy: Proxy) -> None:
    """On every erasure (here or in another instance, see `BaseCache.drop_local`), drop the
    proxy's hot answers and memoised request bodies."""
    from llmemo.service.proxy import _read_request_memo

    def drop() -> None:
        proxy.hot.clear()
        _read_request_memo.cache_clear()

    proxy.cache.on_erase.append(drop)
