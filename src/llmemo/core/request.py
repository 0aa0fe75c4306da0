"""Canonical requests: normalise a provider request into the bytes its cache key is made of.

Pure functions only. Two requests that the provider would answer the same way should give the
same canonical bytes; any difference that could change the answer must give different bytes.
Parameters we do not know are kept: an unknown parameter might change the answer.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson

from llmemo.core.frozen import builder, built
from llmemo.errors import ConfigError, UnkeyableError
from llmemo.stores.keys import entry_pattern as entry_pattern  # stores/keys.py builds every key
from llmemo.stores.keys import exact_key as exact_key
from llmemo.stores.keys import lock_key as lock_key

Provider = Literal["openai", "anthropic", "langchain", "call"]

# Parameters that never change what the model answers: transport, billing and tracing fields.
_OUTPUT_NEUTRAL: dict[str, frozenset[str]] = {
    "openai": frozenset(
        {
            "stream",
            "stream_options",
            "user",
            "timeout",
            "request_timeout",
            "metadata",
            "store",
            "service_tier",
            "safety_identifier",
            "prompt_cache_key",
            "prompt_cache_retention",
            "extra_headers",
            "extra_query",
            "extra_body",
            "background",
        }
    ),
    "anthropic": frozenset(
        {
            "stream",
            "metadata",
            "service_tier",
            "timeout",
            "extra_headers",
            "extra_query",
            "extra_body",
        }
    ),
}
# Provider-side prompt-caching hints inside content blocks: they change the bill, not the answer.
_NEUTRAL_BLOCK_KEYS = frozenset({"cache_control"})
# Keys that only Anthropic's Messages API uses at the top level of a request body.
_ANTHROPIC_MARKERS = frozenset(
    {"system", "stop_sequences", "top_k", "thinking", "anthropic_version"}
)
# Keys that only OpenAI's Responses API uses (as opposed to /v1/embeddings, which also has `input`).
_RESPONSES_MARKERS = frozenset(
    {
        "instructions",
        "reasoning",
        "text",
        "previous_response_id",
        "tools",
        "include",
        "max_output_tokens",
    }
)

# Responses API parameters that point at state kept by the provider, which a cache cannot see: a
# request with any of them (when set) is never answered from the cache. `background` responses
# are fetched later by id; `prompt` without a version follows the template's latest edit.
_RESPONSES_STATEFUL = ("previous_response_id", "conversation", "background")
# Responses API parameters that are neutral for chat but not here: a response made with
# `store: false` cannot be retrieved nor continued (`previous_response_id`) later.
_RESPONSES_KEPT = frozenset({"store"})

_INNER_SPACE = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_RUNS = re.compile(r"\n{3,}")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_KEY_VERSION = b"llmemo-key/1\n"
MAX_DEPTH = 100
"""How deeply a request body may nest objects and lists (the body itself is level 1). Real requests
nest a few levels, tool schemas a few dozen; deeper ones are refused before anything is keyed."""


@dataclass(frozen=True)
class Normalisation:
    """How text is normalised before hashing.

    whitespace: trim the text and each line's end, collapse runs of spaces inside a line, unify line
    endings and squeeze runs of blank lines. Indentation and single line breaks are kept because they
    carry meaning in code, lists and poems. casefold is opt-in: it changes meaning for code and names.
    """

    whitespace: bool = True
    casefold: bool = False


DEFAULT_NORMALISATION = Normalisation()


@dataclass(frozen=True)
class Scope:
    """Who an entry belongs to. tenant and user are part of the key; tags only label the entry."""

    namespace: str = "default"
    tenant: str | None = None
    user: str | None = None
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_name("namespace", self.namespace)
        for tag in self.tags:
            check_name("tag", tag)


@dataclass(frozen=True)
class CacheRequest:
    """A request reduced to what decides its answer, ready to be keyed."""

    provider: Provider
    endpoint: str
    model: str | None
    canonical: bytes
    context: bytes
    semantic_text: str | None = None
    temperature: float | None = None
    stream: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def with_stream(self, stream: bool) -> CacheRequest:
        """The same request with another stream flag (the flag never changes the key)."""
        return replace(self, stream=stream)


_RequestBuilder = builder(CacheRequest)


def check_name(kind: str, value: str) -> str:
    """Namespaces and tags go into keys: letters, digits, '_', '.', '-' only."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(f"invalid {kind} {value!r}: use 1-64 letters, digits, '_', '.' or '-'")
    return value


def _untidy(text: str) -> bool:
    """Could the whitespace pass change `text`? False for text that is already normal (the common
    case: the line-by-line pass is skipped). Substring tests: a regex of alternatives tries each
    one at every position (~5 us on a 100-character prompt), these cost a fraction of it."""
    return (
        "  " in text
        or " \n" in text
        or "\n\n\n" in text
        or "\t" in text
        or "\r" in text
        or "\u00a0" in text
        or "\f" in text
        or "\v" in text
        or text[:1].isspace()  # str.isspace is what the re module's \s matches
        or text[-1:].isspace()
    )


def normalise_text(text: str, norm: Normalisation = DEFAULT_NORMALISATION) -> str:
    """Normalise one piece of prompt text (see Normalisation)."""
    if norm.whitespace and _untidy(text):
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = []
        for line in text.split("\n"):
            body = line.lstrip(" \t")
            indent = line[: len(line) - len(body)]
            lines.append(indent + _INNER_SPACE.sub(" ", body).rstrip())
        text = _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()
    if norm.casefold:
        text = text.casefold()
    return text


def _too_deep(limit: int = MAX_DEPTH) -> UnkeyableError:
    return UnkeyableError(
        f"the request nests objects or lists more than {limit} levels deep: "
        "flatten it (llmemo.core.request.MAX_DEPTH)"
    )


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """UnkeyableError when a JSON value nests objects or lists more than `limit` levels deep
    (without recursing: any depth is measured safely). Normalising checks this as it goes; this
    is for documents that hold requests (a warm batch)."""
    level: list[tuple[Any, int]] = [(value, 1)]
    while level:
        item, depth = level.pop()
        if isinstance(item, Mapping | list | tuple):
            if depth > limit:
                raise _too_deep(limit)
            children = item.values() if isinstance(item, Mapping) else item
            level.extend((child, depth + 1) for child in children)


def _value(value: Any, depth: int = 1) -> Any:
    """Canonical JSON value: integral floats become ints so 1.0 and 1 key alike.

    `depth` is the value's nesting level in the body (the body is 1): a container deeper than
    MAX_DEPTH raises UnkeyableError, never RecursionError.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:  # the common cases first
        return value
    if isinstance(value, str | int):  # subclasses (bool is an int)
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if depth > MAX_DEPTH:
        raise _too_deep()
    if isinstance(value, Mapping):
        return {str(k): _value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_value(v, depth + 1) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _value(dump(exclude_none=True), depth)
    raise UnkeyableError(f"cannot key a value of type {type(value).__name__}: {value!r:.80}")


def _block(block: Any, norm: Normalisation, depth: int) -> Any:
    """A content block with its text normalised and caching hints dropped (recursively)."""
    if isinstance(block, str):
        return normalise_text(block, norm)
    if isinstance(block, Mapping):
        if depth > MAX_DEPTH:
            raise _too_deep()
        out: dict[str, Any] = {}
        for key, val in block.items():
            if key in _NEUTRAL_BLOCK_KEYS or val is None:
                continue
            if key == "text" and isinstance(val, str):
                out[key] = normalise_text(val, norm)
            elif key == "content":
                out[key] = _content(val, norm, depth + 1)
            else:
                out[key] = _value(val, depth + 1)
        return out
    return _value(block, depth)


def _content(content: Any, norm: Normalisation, depth: int) -> Any:
    """Message content: a string, or a list of parts; one bare text part equals the string."""
    if isinstance(content, list | tuple):
        if depth > MAX_DEPTH:
            raise _too_deep()
        parts = [_block(p, norm, depth + 1) for p in content]
        if (
            len(parts) == 1
            and isinstance(parts[0], dict)
            and parts[0].keys() == {"type", "text"}
            and parts[0]["type"] == "text"
        ):
            return parts[0]["text"]
        return parts
    return _block(content, norm, depth)


def _message(message: Any, norm: Normalisation) -> dict[str, Any]:
    """One message of `messages` (nesting level 3 of the body)."""
    if type(message) is not dict and not isinstance(message, Mapping):
        dump = getattr(message, "model_dump", None)
        if not callable(dump):
            raise UnkeyableError(f"a message must be an object, got {type(message).__name__}")
        message = dump(exclude_none=True)
    out = {}
    for key, val in message.items():
        if val is None or key in _NEUTRAL_BLOCK_KEYS:
            continue
        if type(val) is str:  # role, name, and most content: no container to walk
            out[str(key)] = normalise_text(val, norm) if key == "content" else val
        else:
            out[str(key)] = _content(val, norm, 4) if key == "content" else _value(val, 4)
    return out


def _text_of(content: Any) -> str | None:
    """The plain text of normalised content, or None when it holds no text."""
    if isinstance(content, str):
        return content or None
    if isinstance(content, list):
        texts = [p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "\n".join(texts) or None
    return None


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


_NEUTRAL_FOR: dict[tuple[str, frozenset[str]], frozenset[str]] = {}  # (provider, kept) -> set


def _neutral(provider: str, kept: frozenset[str]) -> frozenset[str]:
    neutral = _NEUTRAL_FOR.get((provider, kept))
    if neutral is None:
        neutral = _NEUTRAL_FOR[provider, kept] = _OUTPUT_NEUTRAL.get(provider, frozenset()) - kept
    return neutral


def _params(
    body: Mapping[str, Any], provider: str, skip: set[str], kept: frozenset[str] = frozenset()
) -> dict[str, Any]:
    neutral = _neutral(provider, kept)
    for k in neutral.intersection(body):
        # Not keyed, but forwarded (and some, like `metadata`, echoed in the answer): held to
        # the same depth, so the body is refused before the upstream is paid.
        if isinstance(body[k], Mapping | list):
            check_depth(body[k], MAX_DEPTH - 1)
    return {
        str(k): _value(v, 2)
        for k, v in body.items()
        if k not in skip and k not in neutral and v is not None
    }


def _temperature(body: Mapping[str, Any]) -> float | None:
    value = body.get("temperature")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _stream_flag(body: Mapping[str, Any]) -> bool:
    """`stream` (true, false or null) and `stream_options` (an object): the fields that decide how
    an answer is delivered must have the provider's types, or a hit and a miss would differ."""
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise UnkeyableError(f"'stream' must be true or false, got {stream!r:.40}")
    options = body.get("stream_options")
    if options is not None:
        usage = options.get("include_usage") if isinstance(options, Mapping) else None
        if not isinstance(options, Mapping) or not isinstance(usage, bool | None):
            raise UnkeyableError(
                "'stream_options' must be an object whose 'include_usage' is true or false"
            )
    return bool(stream)


def _require_model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise UnkeyableError("the request has no 'model' (a non-empty string is required)")
    return model


def _chat(
    provider: Provider, endpoint: str, body: Mapping[str, Any], norm: Normalisation
) -> CacheRequest:
    model = _require_model(body)
    raw = body.get("messages")
    if not isinstance(raw, list | tuple) or not raw:
        raise UnkeyableError("the request has no 'messages' (a non-empty list is required)")
    messages = [_message(m, norm) for m in raw]
    params = _params(body, provider, {"model", "messages"})
    if "system" in params:
        params["system"] = _content(body["system"], norm, 2)
    semantic = None
    context_messages = messages
    last = messages[-1]
    if last.get("role") == "user":
        semantic = _text_of(last.get("content"))
        if semantic is not None:
            context_messages = [*messages[:-1], {**last, "content": None}]
    doc: dict[str, Any] = {"provider": provider, "endpoint": endpoint, "model": model}
    doc["params"], doc["messages"] = params, messages
    canonical = _dumps(doc)
    if context_messages is not messages:
        doc["messages"] = context_messages
    return CacheRequest(
        provider=provider,
        endpoint=endpoint,
        model=model,
        canonical=canonical,
        context=_dumps(doc) if context_messages is not messages else canonical,
        semantic_text=semantic,
        temperature=_temperature(body),
        stream=_stream_flag(body),
    )


def _plain_chat(body: dict[str, Any], norm: Normalisation) -> CacheRequest | None:
    """The common OpenAI chat body (text messages, scalar parameters) keyed in one pass, with the
    bytes `_chat` gives it; None for anything else (nested values, content parts, an Anthropic
    marker, types other than the exact JSON ones): the general path keys those.

    This is every distinct request's cost on the hit path, hence the inlined loops."""
    model = body.get("model")
    messages = body.get("messages")
    if type(model) is not str or not model or model.startswith("claude"):
        return None
    if type(messages) is not list or not messages:
        return None
    neutral = _OUTPUT_NEUTRAL["openai"]
    params: dict[str, Any] = {}
    for key, value in body.items():
        kind = type(value)
        if type(key) is not str or key in _ANTHROPIC_MARKERS:
            return None
        if key == "model" or key == "messages" or value is None:
            continue
        if key in neutral:
            if kind is dict or kind is list:  # held to the depth limit: the general path
                return None
            continue
        if kind is str or kind is int or kind is bool:
            params[key] = value
        elif kind is float:
            params[key] = int(value) if value.is_integer() and abs(value) < 2**53 else value
        else:
            return None
    out: list[dict[str, Any]] = []
    for message in messages:
        if type(message) is not dict:
            return None
        kept: dict[str, Any] = {}
        for key, value in message.items():
            if type(value) is not str:
                if value is None:
                    continue
                return None
            if type(key) is not str or key in _NEUTRAL_BLOCK_KEYS:
                return None
            kept[key] = normalise_text(value, norm) if key == "content" else value
        out.append(kept)
    doc: dict[str, Any] = {"provider": "openai", "endpoint": "chat", "model": model}
    doc["params"], doc["messages"] = params, out
    canonical = _dumps(doc)
    semantic = None
    last = out[-1]
    if last.get("role") == "user":
        semantic = last.get("content") or None
    if semantic is not None:
        doc["messages"] = [*out[:-1], {**last, "content": None}]
    made = _RequestBuilder(  # not through the frozen __init__: this is every lookup's path
        "openai",
        "chat",
        model,
        canonical,
        _dumps(doc) if semantic is not None else canonical,
        semantic,
        _temperature(body),
        _stream_flag(body),
    )
    return built(CacheRequest, made)


def _single_input(
    provider: Provider,
    endpoint: str,
    field_name: str,
    body: Mapping[str, Any],
    norm: Normalisation,
    params: dict[str, Any] | None = None,
    optional: bool = False,
) -> CacheRequest:
    """Requests whose input is one field: legacy completions, embeddings, responses."""
    model = _require_model(body)
    if body.get(field_name) is None and not optional:
        raise UnkeyableError(f"the request has no {field_name!r}")
    value = _content(body.get(field_name), norm, 2)
    if params is None:
        params = _params(body, provider, {"model", field_name})
    semantic = value if isinstance(value, str) and value and endpoint != "embeddings" else None
    doc = {"provider": provider, "endpoint": endpoint, "model": model, "params": params}
    return CacheRequest(
        provider=provider,
        endpoint=endpoint,
        model=model,
        canonical=_dumps({**doc, field_name: value}),
        context=_dumps({**doc, field_name: None if semantic is not None else value}),
        semantic_text=semantic,
        temperature=_temperature(body),
        stream=_stream_flag(body),
    )


def _responses(body: Mapping[str, Any], norm: Normalisation) -> CacheRequest:
    """A Responses API request: `input` (text or items) and `instructions` are prompt text; a
    stored prompt template (`prompt`) may stand in for `input`."""
    params = _params(body, "openai", {"model", "input"}, _RESPONSES_KEPT)
    if params.get("store") is True:  # the API's default
        del params["store"]
    if "instructions" in params:
        params["instructions"] = _content(body["instructions"], norm, 2)
    optional = isinstance(body.get("prompt"), Mapping)
    return _single_input("openai", "responses", "input", body, norm, params, optional)


ANSWER_HEADERS = ("anthropic-beta", "anthropic-version", "openai-beta")
"""Request headers that change what the provider answers (betas, API version): part of the key."""
# A header at the provider's default value keys as its absence (the SDKs always send these), so
# the usual requests keep the keys the library gives the same bodies.
_DEFAULT_HEADERS = {"anthropic-version": "2023-06-01"}


def with_answer_headers(request: CacheRequest, headers: Mapping[str, str]) -> CacheRequest:
    """`request` keyed also on its ANSWER_HEADERS (`headers`: lower-case names): two requests
    that differ only in them never share an entry, nor a semantic match (the context too).

    A value is a comma-separated list (`anthropic-beta: a,b`): its items are trimmed and sorted.
    """
    found: dict[str, str] | None = None
    for name in ANSWER_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        items = ",".join(sorted(item.strip() for item in value.split(",") if item.strip()))
        if items and items != _DEFAULT_HEADERS.get(name):
            found = found or {}
            found[name] = items
    if found is None:
        return request
    extra = b"\n" + _dumps({"headers": found})  # after the JSON document (it has no raw newline)
    return replace(request, canonical=request.canonical + extra, context=request.context + extra)


def responses_bypass(body: Mapping[str, Any]) -> str | None:
    """Why a Responses API request must not be answered from the cache, or None.

    It refers to state kept by the provider, which the key cannot see: an earlier response
    (`previous_response_id`), a conversation, a stored item (`item_reference`), a prompt template
    without a pinned version, or it asks for a `background` response (fetched later by id).
    """
    for name in _RESPONSES_STATEFUL:
        if body.get(name) not in (None, False):
            return name
    prompt = body.get("prompt")
    if isinstance(prompt, Mapping) and prompt.get("version") is None:
        return "prompt without a version"
    items = body.get("input")
    if isinstance(items, list | tuple) and any(
        isinstance(item, Mapping) and item.get("type") == "item_reference" for item in items
    ):
        return "item_reference"
    return None


_OPENAI_INPUT = {"completions": "prompt", "embeddings": "input"}


def from_openai(
    body: Mapping[str, Any],
    endpoint: str | None = None,
    norm: Normalisation = DEFAULT_NORMALISATION,
) -> CacheRequest:
    """An OpenAI request body: endpoint is chat, completions, embeddings or responses."""
    if type(body) is not dict and not isinstance(body, Mapping):
        raise UnkeyableError(f"a request body must be a JSON object, got {type(body).__name__}")
    if endpoint in (None, "chat") and type(body) is dict:
        plain = _plain_chat(body, norm)
        if plain is not None:
            return plain
    endpoint = endpoint or _openai_endpoint(body)
    if endpoint == "chat":
        return _chat("openai", "chat", body, norm)
    if endpoint == "responses":
        return _responses(body, norm)
    if endpoint in _OPENAI_INPUT:
        return _single_input("openai", endpoint, _OPENAI_INPUT[endpoint], body, norm)
    raise UnkeyableError(f"unknown OpenAI endpoint {endpoint!r}")


def _openai_endpoint(body: Mapping[str, Any]) -> str:
    if "messages" in body:
        return "chat"
    if "prompt" in body:
        return "completions"
    if "input" in body:
        is_items = isinstance(body["input"], list) and any(
            isinstance(i, Mapping) for i in body["input"]
        )
        return "responses" if is_items or _RESPONSES_MARKERS & body.keys() else "embeddings"
    raise UnkeyableError(
        "cannot tell the endpoint: the body has no 'messages', 'prompt' or 'input'"
    )


def from_anthropic(
    body: Mapping[str, Any], norm: Normalisation = DEFAULT_NORMALISATION
) -> CacheRequest:
    """An Anthropic Messages API request body."""
    if type(body) is not dict and not isinstance(body, Mapping):
        raise UnkeyableError(f"a request body must be a JSON object, got {type(body).__name__}")
    return _chat("anthropic", "messages", body, norm)


def from_prompt(
    prompt: str, llm_string: str, norm: Normalisation = DEFAULT_NORMALISATION
) -> CacheRequest:
    """A (prompt, llm_string) pair, as LangChain hands a cache: llm_string is the whole context."""
    if not isinstance(prompt, str) or not isinstance(llm_string, str):
        raise UnkeyableError("prompt and llm_string must both be strings")
    text = normalise_text(prompt, norm)
    model = re.search(r'"model(?:_name)?"\s*:\s*"([^"]+)"', llm_string)
    temperature = re.search(r'"temperature"\s*:\s*([0-9.]+)', llm_string)
    doc = {"provider": "langchain", "endpoint": "prompt", "llm": llm_string}
    return CacheRequest(
        provider="langchain",
        endpoint="prompt",
        model=model.group(1) if model else None,
        canonical=_dumps({**doc, "prompt": text}),
        context=_dumps(doc),
        semantic_text=text or None,
        temperature=float(temperature.group(1)) if temperature else None,
    )


def from_call(qualname: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> CacheRequest:
    """A call of a user's function (the memoize decorator): keyed on its name and arguments."""
    try:
        doc = {
            "provider": "call",
            "fn": qualname,
            "args": _value(list(args)),
            "kwargs": _value(dict(kwargs)),
        }
    except UnkeyableError as exc:
        raise UnkeyableError(
            f"cannot memoize {qualname}(): {exc}; pass key=... to build the key yourself"
        ) from None
    canonical = _dumps(doc)
    return CacheRequest("call", "function", None, canonical, canonical)


def to_request(
    request: CacheRequest | Mapping[str, Any], norm: Normalisation = DEFAULT_NORMALISATION
) -> CacheRequest:
    """Accept a CacheRequest, or an OpenAI or Anthropic request body (told apart by its keys and
    model name; call `from_anthropic`/`from_openai` directly when the provider is known)."""
    if type(request) is dict:  # the common OpenAI chat body is keyed in one pass
        plain = _plain_chat(request, norm)
        if plain is not None:
            return plain
    elif isinstance(request, CacheRequest):
        return request
    elif not isinstance(request, Mapping):
        raise UnkeyableError(
            f"expected a request body (dict) or CacheRequest, got {type(request).__name__}"
        )
    model = request.get("model")
    claude = isinstance(model, str) and model.startswith("claude")
    if "messages" in request and (
        claude or not _ANTHROPIC_MARKERS.isdisjoint(request) or _has_anthropic_blocks(request)
    ):
        return from_anthropic(request, norm)
    return from_openai(request, None, norm)


MEMO_MAX_BYTES = 8192
"""Bodies up to this size are memoised (bounded memory: a memo holds at most ~1024 of them); a
bigger one is normalised each time, which costs little next to its size."""


@functools.lru_cache(maxsize=1024)
def from_json(raw: bytes, norm: Normalisation = DEFAULT_NORMALISATION) -> CacheRequest:
    """`to_request` of a body given as its JSON bytes, memoised (for bodies up to MEMO_MAX_BYTES)."""
    return to_request(orjson.loads(raw), norm)


def to_request_cached(
    request: CacheRequest | Mapping[str, Any], norm: Normalisation = DEFAULT_NORMALISATION
) -> CacheRequest:
    """`to_request`, memoised on the body's JSON bytes: a repeated request is normalised once."""
    if isinstance(request, dict):
        try:
            raw = orjson.dumps(request)
        except TypeError:  # not plain JSON (SDK objects inside): take the long way
            return to_request(request, norm)
        return from_json(raw, norm) if len(raw) <= MEMO_MAX_BYTES else to_request(request, norm)
    return to_request(request, norm)


def _has_anthropic_blocks(body: Mapping[str, Any]) -> bool:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return False
    kinds = {"tool_use", "tool_result", "thinking", "redacted_thinking", "document"}
    for message in messages:
        content = message.get("content") if isinstance(message, dict | Mapping) else None
        if type(content) is str:  # plain text: no blocks to look at
            continue
        if isinstance(content, list) and any(
            isinstance(b, Mapping)
            and (b.get("type") in kinds or isinstance(b.get("source"), Mapping))
            for b in content
        ):
            return True
    return False


_SCOPE_BYTES: dict[tuple[str | None, str | None], bytes] = {}  # bounded: emptied when full


def _scope_bytes(scope: Scope) -> bytes:
    owner = (scope.tenant, scope.user)
    known = _SCOPE_BYTES.get(owner)
    if known is None:
        if len(_SCOPE_BYTES) >= 4096:
            _SCOPE_BYTES.clear()
        known = _SCOPE_BYTES[owner] = _dumps({"tenant": scope.tenant, "user": scope.user})
    return known


def digest(request: CacheRequest, scope: Scope) -> str:
    """SHA-256 hex of the canonical request and the parts of the scope that own the answer."""
    h = hashlib.sha256(_KEY_VERSION)
    h.update(_scope_bytes(scope))
    h.update(b"\n")
    h.update(request.canonical)
    return h.hexdigest()


def context_fingerprint(request: CacheRequest, scope: Scope) -> str:
    """Hash of everything but the last user message: semantic matches stay inside one context."""
    h = hashlib.sha256(b"llmemo-context/1\n")
    h.update(_scope_bytes(scope))
    h.update(b"\n")
    h.update(request.context)
    return h.hexdigest()
