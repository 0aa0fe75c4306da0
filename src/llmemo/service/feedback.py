"""The operator's feedback endpoints (admin token): recent semantic hits, and wrong-hit reports.

- `GET /admin/semantic-hits?limit=50[&namespace=NS]` -> `{"hits": [...]}`, newest first; the
  query and matched prompt texts only when the service runs with `--dashboard-show-prompts`.
- `POST /admin/feedback` `{"key": KEY, "note": "..."}` (the key of a semantic hit: its
  `x-llmemo-key` header, or a hit's `key` above), or `{"request": BODY, "path": "/v1/chat/
  completions", "namespace": NS, "tenant": ID}` (the request that got the wrong answer) ->
  `{"deleted": n, "recorded": bool, "key": ..., "matched_key": ..., "similarity": x, "floor": x}`.

Bad input is a 400 in OpenAI's error shape before any store call; a store failure is a 503.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llmemo.errors import StoreError
from llmemo.service.admin import admin_only
from llmemo.service.errors import BadRequestError, StoreUnavailableError, json_response

if TYPE_CHECKING:
    from llmemo.service.app import Service

MAX_LIMIT = 1000
"""The most hits one `GET /admin/semantic-hits` returns."""
MAX_NOTE = 2000
"""The longest note a report may carry (characters)."""


def feedback_routes(service: Service) -> list[Route]:
    """The two routes, each behind the admin credential; reports are counted in /metrics."""
    reports = Counter(
        "llmemo_feedback_wrong_hit",
        "Semantic hits reported wrong through POST /admin/feedback.",
        registry=service.metrics.registry,
    )

    async def semantic_hits(request: Request) -> Response:
        limit = _limit(request.query_params.get("limit"))
        namespace = request.query_params.get("namespace") or None
        texts = bool(getattr(service.settings, "dashboard_show_prompts", False))
        try:
            hits = await service.proxy.cache.semantic_hits(limit, namespace)
        except StoreError as exc:
            raise StoreUnavailableError(f"The store failed: {exc}") from exc
        return json_response({"hits": [hit.as_dict(texts) for hit in hits]})

    async def feedback(request: Request) -> Response:
        body = _body(await request.body())
        note = body.get("note")
        if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
            raise BadRequestError(f"'note' must be a string of at most {MAX_NOTE} characters.")
        cache = service.proxy.cache
        try:
            if "key" in body:
                key = body["key"]
                if not isinstance(key, str) or not key:
                    raise BadRequestError("'key' must be the key of a served semantic hit.")
                reported = await cache.report_wrong_hit(key, note=note)
            else:
                canonical, scope = _request_of(body, service)
                reported = await cache.report_wrong_hit(canonical, note=note, **scope)
        except StoreError as exc:
            raise StoreUnavailableError(f"The store failed: {exc}") from exc
        reports.inc()
        return json_response(reported.as_dict())

    return [
        Route("/admin/semantic-hits", admin_only(service.admin, semantic_hits), methods=["GET"]),
        Route("/admin/feedback", admin_only(service.admin, feedback), methods=["POST"]),
    ]


def _limit(value: str | None) -> int:
    if value is None:
        return 50
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequestError(f"'limit' must be an integer from 1 to {MAX_LIMIT}, got {value!r}.")
    return limit


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict) or ("key" in body) == ("request" in body):
        raise BadRequestError(
            'Send a JSON object with "key" (the x-llmemo-key of a semantic hit) or "request" '
            '(the request body that got the wrong answer), and optionally "note".'
        )
    return body


def _request_of(body: dict[str, Any], service: Service) -> tuple[Any, dict[str, Any]]:
    """The canonical request and scope of a report by request (400 for anything malformed)."""
    from llmemo.service.proxy import ENDPOINTS, parse

    path = body.get("path", "/v1/chat/completions")
    endpoint = next((e for e in ENDPOINTS if e.path == path), None)
    if endpoint is None:
        known = ", ".join(e.path for e in ENDPOINTS)
        raise BadRequestError(f"'path' must be one of {known}, got {path!r}.")
    if not isinstance(body["request"], dict):
        raise BadRequestError("'request' must be the JSON body of the request.")
    _, canonical = parse(endpoint, orjson.dumps(body["request"]))
    scope: dict[str, Any] = {"namespace": body.get("namespace") or service.settings.namespace}
    for name in ("namespace", "tenant"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise BadRequestError(f"'{name}' must be a string.")
        if name == "tenant" and value is not None:
            scope["tenant"] = value
    return canonical, scope
