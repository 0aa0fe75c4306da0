"""The OpenAPI 3.1 document of the service's routes, served at `GET /openapi.json`.

Written by hand, as a plain dict: request and error shapes of every route, the per-request
headers and the credentials. A test checks that every route `create_app` mounts is described
here, and the fuzzing test (tests/service/test_fuzz.py) generates its requests from it.
The request and error schemas are in `shapes`.
"""

from __future__ import annotations

import copy
from typing import Any

from llmemo.service.shapes import (
    ANTHROPIC_ERROR,
    CHAT_REQUEST,
    COMPLETION_REQUEST,
    EMBEDDING_REQUEST,
    MESSAGES_REQUEST,
    OPENAI_ERROR,
    RESPONSES_REQUEST,
    WARM_REQUEST,
    Schema,
)

_REF = "#/components/"


def ref(kind: str, name: str) -> Schema:
    return {"$ref": f"{_REF}{kind}/{name}"}


# -- answers --------------------------------------------------------------------------------------

_ANSWER = {"type": "object", "description": "The provider's answer, as the provider shapes it."}
_WARM_ANSWER = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"enum": ["done", "accepted", "running", "interrupted", "failed"]},
        "summary": {"type": "object"},
        "results": {"type": "array", "items": {"type": "object"}},
        "job": {"type": "string"},
        "url": {"type": "string"},
    },
}

# -- parameters -----------------------------------------------------------------------------------


def _header(name: str, description: str, example: str, **schema: Any) -> Schema:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string", **schema},
        "example": example,
    }


PARAMETERS: dict[str, Schema] = {
    "CacheControl": _header(
        "Cache-Control",
        "`no-cache`: skip the lookup and replace the entry; `no-store`: do not store a fresh "
        "answer; both: bypass; `stale-while-revalidate=SECONDS`: the stale grace.",
        "no-cache",
    ),
    "TTL": _header("X-LLMemo-TTL", "Lifetime of the entry this request stores.", "1h"),
    "Namespace": _header(
        "X-LLMemo-Namespace", "Another namespace: 1-64 letters, digits, '_', '.', '-'.", "faq"
    ),
    "Tags": _header("X-LLMemo-Tags", "Comma-separated tags of the stored entry.", "static,faq"),
    "StaleGrace": _header(
        "X-LLMemo-Stale-Grace", "How long an expired entry may be served while refreshed.", "10m"
    ),
    "User": _header(
        "X-LLMemo-User",
        "The end user the entry is kept for (part of its key): `POST /admin/wipe` erases a user. "
        "Not empty.",
        "user-42",
        minLength=1,
        pattern=r"\S",
    ),
    "AnthropicVersion": _header(
        "anthropic-version",
        "Sent by the Anthropic SDKs; on shared routes, picks Anthropic.",
        "2023-06-01",
    ),
    "IdempotencyKey": _header(
        "Idempotency-Key", "Bearer callers of /v1/warm: a repeat gets the recorded answer.", "run-1"
    ),
}
_CONTROLS = [
    ref("parameters", n) for n in ("CacheControl", "TTL", "Namespace", "Tags", "StaleGrace", "User")
]
_CACHE_HEADER = {
    "X-LLMemo-Cache": {
        "description": "hit, semantic, stale, miss or bypass (errors too).",
        "schema": {"enum": ["hit", "semantic", "stale", "miss", "bypass"]},
    }
}


def _error(flavour: str) -> Schema:
    return ref("responses", "AnthropicError" if flavour == "anthropic" else "OpenAIError")


def _errors(flavour: str, *statuses: int) -> dict[str, Schema]:
    return {str(status): _error(flavour) for status in statuses}


def _json(schema: Schema, description: str, headers: Schema | None = None) -> Schema:
    answer: Schema = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        answer["headers"] = headers
    return answer


def _cached(path: str, summary: str, body: str, flavour: str, streams: bool) -> Schema:
    ok = _json(_ANSWER, "The answer (from the cache or the upstream).", _CACHE_HEADER)
    if streams:
        ok["content"]["text/event-stream"] = {"schema": {"type": "string"}}
    return {
        "post": {
            "operationId": path.strip("/").replace("/", "_"),
            "summary": summary,
            "security": [{"bearer": []}, {"apiKey": []}, {}],
            "parameters": _CONTROLS,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("schemas", body)}},
            },
            # llmemo's own errors; the upstream's (401, 429, ...) are relayed as they are, in the
            # same shape: `default`.
            "responses": {
                "200": ok,
                **_errors(flavour, 400, 404, 413, 502, 503, 504),
                "default": _error(flavour),
            },
        }
    }


def _get(operation: str, summary: str, answer: Schema, **extra: Any) -> Schema:
    return {
        "get": {"operationId": operation, "summary": summary, "responses": {"200": answer}, **extra}
    }


_WIPE_REQUEST: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "user": {"type": "string", "description": "The X-LLMemo-User the entries were kept for."},
        "tenant": {"type": "string", "description": "A tenant id, as stored."},
        "api_key": {"type": "string", "description": "The tenant of this API key."},
        "namespace": {"type": "string", "description": "One namespace (default: every one)."},
    },
}
_WIPE_REPORT: Schema = {
    "type": "object",
    "properties": {
        name: {"type": "integer"}
        for name in ("entries", "vectors", "embeddings", "warm", "namespaces", "deleted")
    },
}


PATHS: dict[str, Schema] = {
    "/v1/chat/completions": _cached(
        "/v1/chat/completions", "OpenAI chat completions, cached", "ChatRequest", "openai", True
    ),
    "/v1/completions": _cached(
        "/v1/completions", "OpenAI legacy completions, cached", "CompletionRequest", "openai", True
    ),
    "/v1/embeddings": _cached(
        "/v1/embeddings", "OpenAI embeddings, cached", "EmbeddingRequest", "openai", False
    ),
    "/v1/responses": _cached(
        "/v1/responses", "OpenAI Responses API, cached", "ResponsesRequest", "openai", True
    ),
    "/v1/messages": _cached(
        "/v1/messages", "Anthropic messages, cached", "MessagesRequest", "anthropic", True
    ),
    "/v1/models": _get(
        "models",
        "The provider's model list, passed through (Anthropic's with `anthropic-version`).",
        _json(_ANSWER, "The provider's answer."),
        parameters=[ref("parameters", "AnthropicVersion")],
        security=[{"bearer": []}, {"apiKey": []}, {}],
    ),
    "/v1/models/{model}": _get(
        "model",
        "One model of the provider, passed through.",
        _json(_ANSWER, "The provider's answer."),
        parameters=[
            {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}},
            ref("parameters", "AnthropicVersion"),
        ],
        security=[{"bearer": []}, {"apiKey": []}, {}],
    ),
    "/v1/warm": {
        "post": {
            "operationId": "warm",
            "summary": "Warm the cache (200 with results, or 202 with a job for large batches).",
            "security": [{"qstash": []}, {"warmToken": []}],
            "parameters": [
                ref("parameters", "IdempotencyKey"),
                {
                    "name": "background",
                    "in": "query",
                    "schema": {"enum": ["0", "1", "true", "false"]},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("schemas", "WarmRequest")}},
            },
            "responses": {
                "200": _json(_WARM_ANSWER, "The batch ran: its summary and results."),
                "202": _json(_WARM_ANSWER, "The batch runs as a job: poll its `url`."),
                **_errors("openai", 400, 401, 409, 413, 422, 429, 503),
            },
        }
    },
    "/v1/warm/{job}": _get(
        "warm_job",
        "A warm job's progress and results.",
        _json(_WARM_ANSWER, "The job's state."),
        parameters=[{"name": "job", "in": "path", "required": True, "schema": {"type": "string"}}],
        security=[{"qstash": []}, {"warmToken": []}],
        responses={
            "200": _json(_WARM_ANSWER, "The job's state."),
            **_errors("openai", 401, 404, 503),
        },
    ),
    "/admin/semantic-hits": _get(
        "admin_semantic_hits",
        "The newest served semantic hits, each with the key to report it by (docs/semantic.md, "
        '"Feedback").',
        _json({"type": "object"}, "`hits`, newest first."),
        parameters=[
            {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 1000}},
            {"name": "namespace", "in": "query", "schema": {"type": "string"}},
        ],
        security=[{"admin": []}],
        responses={
            "200": _json({"type": "object"}, "`hits`, newest first."),
            **_errors("openai", 400, 401, 503),
        },
    ),
    "/admin/feedback": {
        "post": {
            "operationId": "admin_feedback",
            "summary": "Report a semantic hit as wrong, by `key` or by `request` (docs/semantic.md, "
            '"Feedback").',
            "security": [{"admin": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": {
                "200": _json({"type": "object"}, "`deleted`, `recorded`, the matched entry."),
                **_errors("openai", 400, 401, 503),
            },
        }
    },
    "/healthz": _get(
        "healthz",
        "The process is up.",
        _json({"type": "object", "properties": {"status": {"const": "ok"}}}, "Up."),
    ),
    "/readyz": _get(
        "readyz",
        "Whether the store answers (`?strict=1`: 503 when degraded).",
        _json(
            {
                "type": "object",
                "required": ["status", "store", "circuit"],
                "properties": {
                    "status": {"enum": ["ok", "degraded"]},
                    "store": {"type": "string"},
                    "circuit": {"type": "string"},
                    "detail": {"type": "string"},
                },
            },
            "The store's state.",
        ),
        parameters=[
            {"name": "strict", "in": "query", "schema": {"enum": ["0", "1", "true", "false"]}}
        ],
    ),
    "/metrics": _get(
        "metrics",
        "Prometheus metrics.",
        {
            "description": "Prometheus text format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
    ),
    "/admin/stats": _get(
        "admin_stats",
        "The dashboard's figures over the last hour, day or week, from every instance sharing "
        'the store (docs/service.md, "Rollups and /admin/stats").',
        _json({"type": "object"}, "Totals, series, breakdowns, semantic and health figures."),
        parameters=[
            {"name": "window", "in": "query", "schema": {"enum": ["hour", "day", "week"]}},
            *(
                {"name": name, "in": "query", "schema": {"type": "string"}}
                for name in ("namespace", "model", "tenant")
            ),
        ],
        security=[{"admin": []}],
        responses={
            "200": _json({"type": "object"}, "The figures."),
            **_errors("openai", 400, 401, 404),
        },
    ),
    "/admin/entries": _get(
        "admin_entries",
        "Entries of a namespace matching a tag, model and tenant: key, size, age, TTL left "
        '(docs/service.md, "Dashboard").',
        _json({"type": "object"}, "The entries."),
        parameters=[
            {"name": name, "in": "query", "schema": {"type": "string"}}
            for name in ("namespace", "tag", "model", "tenant")
        ]
        + [{"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 1000}}],
        security=[{"admin": []}],
        responses={
            "200": _json({"type": "object"}, "`entries` and `more` (the limit cut the list)."),
            **_errors("openai", 400, 401, 503),
        },
    ),
    "/admin/invalidate": {
        "post": {
            "operationId": "admin_invalidate",
            "summary": "Delete the entries of a tag, model or tenant in a namespace, or one key.",
            "security": [{"admin": []}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                name: {"type": "string"}
                                for name in ("tag", "model", "tenant", "key", "namespace")
                            },
                            "additionalProperties": False,
                        }
                    }
                },
            },
            "responses": {
                "200": _json({"type": "object"}, "`deleted`: how many entries went."),
                **_errors("openai", 400, 401, 503),
            },
        }
    },
    "/dashboard": _get(
        "dashboard",
        "The operator's page (HTML); 401 with a sign-in form without the admin cookie.",
        {"description": "The page.", "content": {"text/html": {"schema": {"type": "string"}}}},
    ),
    "/dashboard/static/{name}": _get(
        "dashboard_static",
        "The page's script and style sheet.",
        {
            "description": "The file.",
            "content": {"text/javascript": {"schema": {"type": "string"}}},
        },
        parameters=[{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
    ),
    "/dashboard/login": {
        "post": {
            "operationId": "dashboard_login",
            "summary": "Sign in with the admin token (a form field `token`): sets the cookie.",
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {"type": "object", "properties": {"token": {"type": "string"}}}
                    }
                },
            },
            "responses": {
                "303": {"description": "Signed in: back to /dashboard, with the cookie."},
                "401": {"description": "The sign-in form again, saying what was wrong."},
            },
        }
    },
    "/dashboard/logout": {
        "post": {
            "operationId": "dashboard_logout",
            "summary": "Sign out: clears the cookie.",
            "responses": {"303": {"description": "Back to /dashboard, without the cookie."}},
        }
    },
    "/openapi.json": _get(
        "openapi", "This document.", _json({"type": "object"}, "The OpenAPI document.")
    ),
    "/admin/wipe": {
        "post": {
            "operationId": "admin_wipe",
            "summary": "Erase a user's or a tenant's entries, vectors and embedding rows.",
            "security": [{"admin": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _WIPE_REQUEST}},
            },
            "responses": {
                "200": _json(_WIPE_REPORT, "What was deleted, per kind."),
                **_errors("openai", 400, 401, 503),
            },
        }
    },
}


def document() -> dict[str, Any]:
    """The service's OpenAPI 3.1 document (a fresh dict each call)."""
    from llmemo import __version__

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "llmemo serve",
            "version": __version__,
            "description": "A caching proxy for the OpenAI and Anthropic APIs (docs/service.md).",
        },
        "paths": copy.deepcopy(PATHS),
        "components": {
            "schemas": {
                "ChatRequest": CHAT_REQUEST,
                "CompletionRequest": COMPLETION_REQUEST,
                "EmbeddingRequest": EMBEDDING_REQUEST,
                "ResponsesRequest": RESPONSES_REQUEST,
                "MessagesRequest": MESSAGES_REQUEST,
                "WarmRequest": WARM_REQUEST,
                "OpenAIError": OPENAI_ERROR,
                "AnthropicError": ANTHROPIC_ERROR,
            },
            "responses": {
                "OpenAIError": _json(ref("schemas", "OpenAIError"), "An error, OpenAI's shape."),
                "AnthropicError": _json(
                    ref("schemas", "AnthropicError"), "An error, Anthropic's shape."
                ),
            },
            "parameters": PARAMETERS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "The provider API key, forwarded upstream: it names the tenant "
                        "(isolated mode), or must be an accepted key (shared mode)."
                    ),
                },
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "warmToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "LLMEMO_WARM_TOKEN",
                },
                "qstash": {"type": "apiKey", "in": "header", "name": "Upstash-Signature"},
                "admin": {"type": "http", "scheme": "bearer", "description": "LLMEMO_ADMIN_TOKEN"},
            },
        },
    }
