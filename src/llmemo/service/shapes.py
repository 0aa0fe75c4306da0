"""JSON schemas of the service's request bodies and error answers (for its OpenAPI document).

They say what llmemo itself checks and what a provider requires; bodies may carry any other
field the provider accepts (`additionalProperties` is left open).
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

# -- request bodies -----------------------------------------------------------------------------

_TEXT_PART = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
}
_CONTENT = {"anyOf": [{"type": "string"}, {"type": "array", "items": _TEXT_PART}]}
_STOP = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
_STREAM_OPTIONS = {"type": "object", "properties": {"include_usage": {"type": "boolean"}}}
_SAMPLING: Schema = {
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1},
    "seed": {"type": "integer"},
    "user": {"type": "string"},
}
_TEXTS = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "minItems": 1, "items": {"type": "string"}},
        {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}},
    ]
}

CHAT_REQUEST: Schema = {
    "type": "object",
    "description": "OpenAI chat completion request (llmemo checks `model` and `messages`).",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {
                    "role": {"enum": ["system", "developer", "user", "assistant"]},
                    "content": _CONTENT,
                    "name": {"type": "string"},
                },
            },
        },
        "stream": {"type": "boolean"},
        "stream_options": _STREAM_OPTIONS,
        "max_tokens": {"type": "integer", "minimum": 1},
        "max_completion_tokens": {"type": "integer", "minimum": 1},
        "stop": _STOP,
        "n": {"type": "integer", "minimum": 1, "maximum": 4},
        **_SAMPLING,
    },
}
COMPLETION_REQUEST: Schema = {
    "type": "object",
    "description": "OpenAI legacy completion request.",
    "required": ["model", "prompt"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "prompt": _TEXTS,
        "stream": {"type": "boolean"},
        "stream_options": _STREAM_OPTIONS,
        "max_tokens": {"type": "integer", "minimum": 1},
        "stop": _STOP,
        **_SAMPLING,
    },
}
EMBEDDING_REQUEST: Schema = {
    "type": "object",
    "description": "OpenAI embeddings request.",
    "required": ["model", "input"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "input": _TEXTS,
        "dimensions": {"type": "integer", "minimum": 1, "maximum": 64},
        "encoding_format": {"enum": ["float"]},
        "user": {"type": "string"},
    },
}
RESPONSES_REQUEST: Schema = {
    "type": "object",
    "description": (
        "OpenAI Responses API request. Requests that depend on state kept by OpenAI "
        "(`previous_response_id`, `conversation`, `background: true`, ...) bypass the cache."
    ),
    "required": ["model", "input"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "input": {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["role", "content"],
                        "properties": {
                            "role": {"enum": ["user", "assistant", "system", "developer"]},
                            "content": {"type": "string"},
                        },
                    },
                },
            ]
        },
        "instructions": {"type": "string"},
        "stream": {"type": "boolean"},
        "max_output_tokens": {"type": "integer", "minimum": 16},
        "store": {"type": "boolean"},
        **_SAMPLING,
    },
}
MESSAGES_REQUEST: Schema = {
    "type": "object",
    "description": "Anthropic messages request (`max_tokens` is required by Anthropic).",
    "required": ["model", "max_tokens", "messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "max_tokens": {"type": "integer", "minimum": 1},
        "system": _CONTENT,
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {"role": {"enum": ["user", "assistant"]}, "content": _CONTENT},
            },
        },
        "stream": {"type": "boolean"},
        "stop_sequences": {"type": "array", "items": {"type": "string"}},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
        "top_k": {"type": "integer", "minimum": 1},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
    },
}
_WARM_ITEM: Schema = {
    "type": "object",
    "description": (
        "A request body to warm (chat, completion, embeddings or Anthropic messages), or the "
        "simple form `{query, model, system?}`; plus the item options below."
    ),
    "properties": {
        "query": {"type": "string", "minLength": 1},
        "system": {"type": "string"},
        "model": {"type": "string", "minLength": 1},
        "messages": CHAT_REQUEST["properties"]["messages"],
        "provider": {"enum": ["openai", "anthropic"]},
        "namespace": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
        "shared": {
            "type": ["boolean", "null"],
            "description": (
                "Store for everyone (true) or for the warm key's tenant (false); unset: as the "
                "service reads the namespace. A combination the service would never serve "
                "(an isolated namespace without false, a shared one with false) is a 400."
            ),
        },
        "ttl": {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string"}]},
        "tags": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}},
        "refresh": {"type": "boolean"},
        "id": {"type": "string"},
    },
}
WARM_REQUEST: Schema = {
    "description": "One item, a list of items, or a batch with defaults for its items.",
    "anyOf": [
        _WARM_ITEM,
        {"type": "array", "minItems": 1, "items": _WARM_ITEM},
        {
            "type": "object",
            "required": ["requests"],
            "additionalProperties": False,
            "properties": {
                "requests": {"type": "array", "minItems": 1, "items": _WARM_ITEM},
                "refresh_before": {"type": "number", "minimum": 0, "maximum": 1},
                **{
                    name: _WARM_ITEM["properties"][name]
                    for name in (
                        "namespace",
                        "shared",
                        "ttl",
                        "tags",
                        "refresh",
                        "provider",
                        "model",
                    )
                },
            },
        },
    ],
}

# -- answers --------------------------------------------------------------------------------------

OPENAI_ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
ANTHROPIC_ERROR: Schema = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}
