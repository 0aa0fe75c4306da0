"""The operator's entry endpoints: `GET /admin/entries` (find) and `POST /admin/invalidate`.

Both run on the service's cache (its store, prefix and namespaces), behind the admin credential
(service/admin.py). Finding reads entry headers in batches (SCAN, never KEYS) and stops at `limit`
matches; invalidating deletes by tag, model or tenant (SCAN + UNLINK, as `llmemo invalidate`) or
one key, and forgets the deleted entries' vectors and near-cache copies.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llmemo.core import AsyncCache
from llmemo.core.entry import HEAD_BYTES, EntryHead, decode_head
from llmemo.core.request import check_name
from llmemo.errors import ConfigError, CorruptEntryError, StoreError
from llmemo.service.admin import AdminAuth, admin_only
from llmemo.service.errors import (
    BadRequestError,
    StoreUnavailableError,
    error_response,
    json_response,
)
from llmemo.stores.keys import entry_pattern

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "entry_routes"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
"""Entries one `GET /admin/entries` may list (`limit`)."""
_FILTERS = ("tag", "model", "tenant", "key")
_MAX_BODY = 16 * 1024
_MAX_VALUE = 256  # characters of a model, tenant or key given as a filter
_SIZE_BATCH = 50
_WHOLE = 1 << 30  # a `heads` size that reads a whole value


def entry_routes(auth: AdminAuth, cache: Callable[[], AsyncCache], namespace: str) -> list[Route]:
    """The two routes, behind `auth`; `cache()` is the running service's cache and `namespace`
    its default namespace."""

    async def entries(request: Request) -> Response:
        try:
            return json_response(await find(cache(), request.query_params, namespace))
        except (BadRequestError, ConfigError, StoreUnavailableError) as exc:
            return error_response(exc, "openai")

    async def invalidate(request: Request) -> Response:
        try:
            body = await _json_body(request)
            return json_response(await invalidate_by(cache(), body, namespace))
        except (BadRequestError, ConfigError, StoreUnavailableError) as exc:
            return error_response(exc, "openai")

    return [
        Route("/admin/entries", admin_only(auth, entries), methods=["GET"]),
        Route("/admin/invalidate", admin_only(auth, invalidate), methods=["POST"]),
    ]


async def find(cache: AsyncCache, query: Mapping[str, str], default: str) -> dict[str, Any]:
    """The entries of a namespace matching `tag`, `model` and `tenant` (all given ones), with
    their size in bytes, age and remaining TTL in seconds; `more` when `limit` cut the list."""
    namespace = check_name("namespace", query.get("namespace") or default)
    limit = _limit(query.get("limit"))
    wanted = {name: _value(query, name) for name in ("tag", "model", "tenant")}
    found: list[tuple[str, EntryHead]] = []
    more = False
    try:
        async for keys in cache.backend.scan(entry_pattern(cache.prefix, namespace)):
            heads = await cache.backend.heads(keys, HEAD_BYTES)
            for key, raw in zip(keys, heads, strict=True):
                head = _head(raw)
                if head is None or not _matches(head, **wanted):
                    continue
                if len(found) == limit:
                    more = True
                    break
                found.append((key, head))
            if more:
                break
        sizes = await _sizes(cache, [key for key, _ in found])
    except StoreError as exc:
        raise StoreUnavailableError(f"the store did not answer: {exc}") from None
    now = time.time()
    rows = [
        {
            "key": key,
            "model": head.model,
            "tenant": head.tenant,
            "tags": list(head.tags),
            "size": size,
            "created": head.created,
            "age": round(max(0.0, now - head.created), 3),
            "ttl_left": None
            if head.ttl is None
            else round(max(0.0, head.created + head.ttl - now), 3),
        }
        for (key, head), size in zip(found, sizes, strict=True)
        if size is not None  # deleted between the scan and the read
    ]
    return {"namespace": namespace, "entries": rows, "more": more}


async def invalidate_by(cache: AsyncCache, body: Mapping[str, Any], default: str) -> dict[str, Any]:
    """Delete the entries one filter names: {"tag"|"model"|"tenant": value} in a namespace
    (`namespace`, default the service's), or {"key": one entry key}."""
    given = [name for name in _FILTERS if body.get(name) is not None]
    unknown = sorted(set(body) - {*_FILTERS, "namespace"})
    if unknown:
        raise BadRequestError(f"unknown field(s) {', '.join(unknown)}: give one of {_named()}")
    if len(given) != 1:
        raise BadRequestError(f"give exactly one of {_named()} (got {len(given)})")
    name = given[0]
    value = body[name]
    if not isinstance(value, str) or not value or len(value) > _MAX_VALUE:
        raise BadRequestError(f"{name} must be a non-empty string of at most {_MAX_VALUE} chars")
    namespace = body.get("namespace") or default
    if not isinstance(namespace, str):
        raise BadRequestError("namespace must be a string")
    check_name("namespace", namespace)
    try:
        if name == "key":
            if not _is_entry_key(cache.prefix, value):
                raise BadRequestError(
                    f"not an entry key of this cache: {value!r} (see GET /admin/entries)"
                )
            deleted = int(await cache.delete_key(value))
        else:
            if name == "tag":
                check_name("tag", value)
            deleted = await cache.invalidate(
                namespace=namespace,
                tag=value if name == "tag" else None,
                model=value if name == "model" else None,
                tenant=value if name == "tenant" else None,
            )
    except StoreError as exc:
        raise StoreUnavailableError(f"the store did not answer: {exc}") from None
    return {"deleted": deleted, name: value, **({} if name == "key" else {"namespace": namespace})}


def _is_entry_key(prefix: str, key: str) -> bool:
    """`{prefix}:{namespace}:{version}:x:{sha}` (stores/keys.py `exact_key`), nothing else: the
    endpoint never deletes a key the cache did not write."""
    pattern = rf"{re.escape(prefix)}:[A-Za-z0-9_.\-]{{1,64}}:\d+:x:\{{[0-9a-f]{{16,128}}\}}"
    return re.fullmatch(pattern, key) is not None


async def _sizes(cache: AsyncCache, keys: list[str]) -> list[int | None]:
    """Each entry's stored size in bytes (None: gone): the values are read in batches of
    `_SIZE_BATCH`, so at most that many are in memory at once (the protocol has no STRLEN)."""
    sizes: list[int | None] = []
    for start in range(0, len(keys), _SIZE_BATCH):
        values = await cache.backend.heads(keys[start : start + _SIZE_BATCH], _WHOLE)
        sizes += [None if value is None else len(value) for value in values]
    return sizes


def _head(raw: bytes | None) -> EntryHead | None:
    if raw is None:
        return None
    try:
        return decode_head(raw)
    except CorruptEntryError:
        return None


def _matches(head: EntryHead, *, tag: str | None, model: str | None, tenant: str | None) -> bool:
    return (
        (tag is None or tag in head.tags)
        and (model is None or head.model == model)
        and (tenant is None or head.tenant == tenant)
    )


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequestError(f"limit must be a whole number from 1 to {MAX_LIMIT}, not {raw!r}")
    return limit


def _value(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name) or None
    if value is not None and len(value) > _MAX_VALUE:
        raise BadRequestError(f"{name} is longer than {_MAX_VALUE} characters")
    return value


def _named() -> str:
    return ", ".join(f'"{name}"' for name in _FILTERS)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise BadRequestError(f"the body is over {_MAX_BODY} bytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequestError("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    return body
