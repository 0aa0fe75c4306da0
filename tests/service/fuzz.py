"""Hypothesis strategies for requests to the service, drawn from its OpenAPI document.

`schema_values` turns the JSON-schema subset the document uses into values that match it;
`hostile` bends such a value (a field dropped, a field of the wrong type, deep nesting, not an
object, not JSON); `operation_requests` puts path, query, headers and body together for one
operation. The checks of the answers live in test_fuzz.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import orjson
from hypothesis import strategies as st

Schema = dict[str, Any]
MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo-instruct", "text-embedding-3-small",
          "claude-sonnet-4-5", "claude-haiku-4-5")  # fmt: skip
# Printable ASCII: what any HTTP client can put in a header value.
# (h11 refuses leading or trailing spaces).
_HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(
    str.strip
)
# The test upstream fails on purpose for these model names (`llmemo.testing.failures`): a model
# drawn here is never one of them, so any 5xx is one the service made.
_DELIBERATE = ("fail-", "slow-")
_TEXT = st.text(max_size=30)


def _model() -> st.SearchStrategy[str]:
    made_up = st.text(min_size=1, max_size=30).filter(lambda m: not m.startswith(_DELIBERATE))
    return st.one_of(st.sampled_from(MODELS), made_up)


def _resolve(schema: Schema, doc: Schema) -> Schema:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def json_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """Any JSON value, extreme leaves included (big numbers, NUL and non-ASCII text)."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**64 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([0, -1, 1e308, -1e308, 2**63, "", "\x00", "1e308", "inf", "NaN"]),
        _TEXT,
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(_TEXT, inner, max_size=3)
        ),
        max_leaves=max_leaves,
    )


def schema_values(schema: Schema, doc: Schema, name: str = "") -> st.SearchStrategy[Any]:
    """Values that match `schema` (the subset of JSON Schema the service's document uses)."""
    schema = _resolve(schema, doc)
    if name == "model":
        return _model()
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([schema_values(s, doc, name) for s in schema[key]])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([schema_values({**schema, "type": k}, doc, name) for k in kind])
    if kind == "object" or (kind is None and "properties" in schema):
        props: dict[str, Schema] = schema.get("properties", {})
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {k: schema_values(v, doc, k) for k, v in props.items() if k in required},
            optional={k: schema_values(v, doc, k) for k, v in props.items() if k not in required},
        )
    if kind == "array":
        low = schema.get("minItems", 0)
        high = min(schema.get("maxItems", low + 3), low + 3)
        return st.lists(schema_values(schema.get("items", {}), doc), min_size=low, max_size=high)
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        return st.text(min_size=schema.get("minLength", 0), max_size=40)
    if kind == "integer":
        return st.integers(schema.get("minimum", -(2**31)), schema.get("maximum", 2**31))
    if kind == "number":
        low, high = schema.get("minimum"), schema.get("maximum")
        return st.floats(low, high, allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return json_values()


def depth(value: Any) -> int:
    """How deeply lists and objects nest in a JSON value (without recursing: it may be deep)."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level + 1)
            todo.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _nested(levels: int) -> Any:
    value: Any = "deep"
    for _ in range(levels):
        value = [value]
    return value


# The fuzzer's structural choices (which bend, which field, which header) are made with even odds
# by a PRNG that Hypothesis seeds: its own draws lean to the first and simplest choices, and
# then rarely reach the deep ones. Values are still drawn by Hypothesis.
PICKS = st.integers(0, 2**64).map(random.Random)
# Values of the wrong type that a lenient reader may take for the right one.
ODD = st.sampled_from([1, 0, "yes", "true", "", None, [], {}, 1.5, -1, 2**63, 1e308, "\x00", [1]])
BENDS = (
    "drop",
    "retype",
    "retype",
    "retype",
    "retype",
    "extra",
    "nest",
    "big",
    "not-object",
    "not-json",
)
# Fields the service itself reads: retyped more often than the others.
_READ = ("model", "messages", "stream", "stream_options", "input", "prompt", "max_tokens",
         "temperature", "system", "tools", "requests", "query", "ttl", "namespace")  # fmt: skip
# (at most 600: `json.dumps`, which encodes what orjson refuses, stops at 1,000 levels)
_DEPTHS = st.one_of(st.sampled_from([2, 64, 200, 252, 253, 254, 300, 600]), st.integers(1, 400))


@st.composite
def hostile(draw: st.DrawFn, valid: Any, fields: tuple[str, ...] = ()) -> Any:
    """A valid body bent one way; may be any JSON value, or raw bytes that are not JSON.

    `fields`: the body's documented fields; those the service reads itself are bent most.
    """
    pick = draw(PICKS)
    how = pick.choice(BENDS)
    if how == "not-json":
        return draw(st.sampled_from([b"", b" ", b"{", b"nul\x00", b"[1,", b'{"model":', b"\xff"]))
    if how == "not-object":
        return draw(json_values(4))
    body = dict(valid) if isinstance(valid, dict) else {"value": valid}
    if how == "nest":
        body[pick.choice(["x", "metadata", "messages"])] = _nested(draw(_DEPTHS))
    elif how == "big":  # under and over the service's 4 MiB body limit
        body["x"] = "x" * pick.choice([2**20, 3 * 2**20, 5 * 2**20])
    elif how == "extra":
        body[draw(_TEXT)] = draw(json_values())
    elif body:
        read = [name for name in _READ if name in fields] or sorted(body)
        key = pick.choice(read if pick.randrange(3) else sorted(body))
        if how == "drop" and key in body:
            del body[key]
        elif how == "retype":
            body[key] = draw(st.one_of(ODD, json_values()))
    return body


CONTROL_VALUES = {
    "cache-control": ["no-cache", "no-store", "no-cache, no-store", "max-age=0",
                      "stale-while-revalidate=60", "stale-while-revalidate=inf",
                      "stale-while-revalidate=-1", "stale-while-revalidate=abc"],
    "x-llmemo-ttl": ["1h", "30", "30s", "0", "-5", "1e308", "inf", "Infinity", "nan", "1y", "x"],
    "x-llmemo-namespace": ["faq", "a.b-c_d", "", "bad name", "x" * 65, "~warm"],
    "x-llmemo-tags": ["faq", "static,faq", "volatile", ",,", "bad tag", "a" * 70],
    "x-llmemo-stale-grace": ["10m", "0", "-1", "inf", "1e308", "nan", "soon"],
    "x-llmemo-user": ["user-42", "", "u" * 3000],
}  # fmt: skip
ALICE = "sk-fuzz-alice-0123456789"
_CREDENTIALS = st.sampled_from(
    [{}, {"authorization": f"Bearer {ALICE}"}, {"x-api-key": ALICE}, {"authorization": "Bearer"},
     {"authorization": "Basic Zm9vOmJhcg=="}, {"x-api-key": ""}]
)  # fmt: skip


@st.composite
def control_headers(draw: st.DrawFn, bent: bool) -> dict[str, str]:
    """Some of the X-LLMemo-* and Cache-Control headers; `bent`: one of them from its odd values."""
    pick = draw(PICKS)
    headers: dict[str, str] = {}
    for name, values in CONTROL_VALUES.items():
        if pick.randrange(5) == 0:  # (randrange: Hypothesis's random() leans to 0)
            headers[name] = values[0]
    if bent:
        name = pick.choice(sorted(CONTROL_VALUES))
        if pick.randrange(2):  # a refresh always stores: bent lifetimes reach the store
            headers["cache-control"] = "no-cache"
        odd = CONTROL_VALUES[name]
        headers[name] = pick.choice(odd) if pick.randrange(3) else draw(_HEADER_TEXT)
    return headers


@dataclass
class Call:
    """One request to send: method, path (query included), headers, body (None: no body)."""

    operation: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    sent: Any = None  # the JSON value of the body, when it is one
    bent: bool = True  # False: every part of it matches the document (it must succeed)

    def model(self) -> str | None:
        return self.sent.get("model") if isinstance(self.sent, dict) else None


def encode(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:  # a Python int past 64 bits, or deeper than orjson goes
        import json

        return json.dumps(value).encode()


_SEGMENT = st.one_of(
    st.sampled_from(["gpt-4o-mini", "claude-haiku-4-5", "..", "%2e%2e", "a/b", "", "\x00"]),
    st.text(max_size=20),
)


@st.composite
def operation_requests(
    draw: st.DrawFn, doc: Schema, path: str, method: str, warm_token: str
) -> Call:
    """A request for one operation of the document: valid for the most part, bent often."""
    operation = doc["paths"][path][method]
    params = [_resolve(p, doc) for p in operation.get("parameters", ())]
    url = path
    query: list[str] = []
    headers: dict[str, str] = {}
    for param in params:
        if param["in"] == "path":
            value = draw(_SEGMENT)
            from urllib.parse import quote

            url = url.replace("{" + param["name"] + "}", quote(value, safe=""))
        elif param["in"] == "query" and draw(st.booleans()):
            query.append(f"{param['name']}={draw(schema_values(param['schema'], doc))}")
        elif param["in"] == "header" and param["name"].lower() not in CONTROL_VALUES:
            # Absent, its documented example, or any text (control headers are drawn below).
            value = draw(st.one_of(st.none(), st.just(param["example"]), _HEADER_TEXT))
            if value is not None:
                headers[param["name"].lower()] = value
    # One thing at a time is bent, so that the rest of the request lets it reach deep code.
    focus = draw(PICKS).choice(["valid", "body", "body", "headers"])
    if path.startswith("/v1/warm"):
        valid_token = {"authorization": f"Bearer {warm_token}"}
        others = [{}, {"authorization": "Bearer wrong"}, {"upstash-signature": "a.b.c"}]
        headers.update(valid_token if focus != "headers" else draw(st.sampled_from(others)))
    else:
        headers.update(draw(_CREDENTIALS))
    if any(p.get("name") == "Cache-Control" for p in params):
        headers.update(draw(control_headers(bent=focus == "headers")))
    call = Call(
        operation["operationId"],
        method.upper(),
        url + ("?" + "&".join(query) if query else ""),
        headers,
        # A reused Idempotency-Key with another body is refused (422): valid alone, not in a row.
        bent=focus != "valid" or "idempotency-key" in headers,
    )
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    if "schema" in schema:
        valid = draw(schema_values(schema["schema"], doc))
        fields = tuple(_resolve(schema["schema"], doc).get("properties", ()))
        if focus == "headers" and isinstance(valid, dict) and "max_tokens" in fields:
            # A fresh request, so that bent headers meet a miss and the store, not a hit.
            valid = {**valid, "max_tokens": draw(st.integers(1000, 2**20))}
        sent = draw(hostile(valid, fields)) if focus == "body" else valid
        call.sent = None if isinstance(sent, bytes) else sent
        call.body = encode(sent)
        call.headers["content-type"] = "application/json"
    return call
