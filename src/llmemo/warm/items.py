"""Warm items and batches: parsing JSON into the requests to warm (and those that cannot be)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from llmemo.core.durations import seconds
from llmemo.core.options import CacheOptions
from llmemo.core.request import (
    DEFAULT_NORMALISATION,
    CacheRequest,
    Normalisation,
    check_depth,
    check_name,
    from_anthropic,
    from_openai,
    to_request,
)
from llmemo.errors import ConfigError, LLMemoError

Provider = Literal["openai", "anthropic"]

# Where each kind of request goes, relative to the provider's base URL (as `llmemo serve` forwards).
UPSTREAM_PATHS: Mapping[tuple[str, str], str] = {
    ("openai", "chat"): "/chat/completions",
    ("openai", "completions"): "/completions",
    ("openai", "embeddings"): "/embeddings",
    ("anthropic", "messages"): "/v1/messages",
}
# Keys of an item that steer warming and are never sent upstream.
_ITEM_OPTIONS = frozenset({"namespace", "shared", "ttl", "tags", "refresh", "id", "provider"})
_BATCH_DEFAULTS = frozenset({"namespace", "shared", "ttl", "tags", "refresh", "provider", "model"})
# A stream is answered as one JSON object when warming; the key never depends on these.
_STREAM_KEYS = ("stream", "stream_options")
ANTHROPIC_MAX_TOKENS = 1024  # the simple form's default: Anthropic requires max_tokens


@dataclass(frozen=True)
class WarmItem:
    """One request to warm: the body sent upstream, where it goes, and how it is stored."""

    body: Mapping[str, Any]
    provider: Provider
    kind: str
    namespace: str | None = None
    ttl: float | None = None
    tags: tuple[str, ...] = ()
    refresh: bool = False
    id: str | None = None
    shared: bool | None = None  # None: as its namespace is (`llmemo.warm.scope`)

    @property
    def path(self) -> str:
        """The upstream path, relative to the provider's base URL."""
        return UPSTREAM_PATHS[(self.provider, self.kind)]

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        return model if isinstance(model, str) else None

    def options(self, tenant: str | None = None) -> CacheOptions:
        """How the item uses the cache, for the scope `tenant` (None: shared)."""
        return CacheOptions(
            refresh=self.refresh,
            ttl=self.ttl,
            namespace=self.namespace,
            tags=self.tags,
            tenant=tenant,
        )

    def request(self, norm: Normalisation = DEFAULT_NORMALISATION) -> CacheRequest:
        """The canonical request, as the proxy computes it for the same body."""
        if self.provider == "anthropic":
            return from_anthropic(self.body, norm)
        return from_openai(self.body, self.kind, norm)


@dataclass(frozen=True)
class InvalidItem:
    """An item that could not be parsed; it is reported as failed and never sent upstream."""

    reason: str
    id: str | None = None


Parsed = WarmItem | InvalidItem


@dataclass(frozen=True)
class Batch:
    """Parsed items and the batch's own option (`refresh_before`)."""

    items: list[Parsed]
    refresh_before: float | None = None


def parse_item(data: Any, defaults: Mapping[str, Any] | None = None) -> WarmItem:
    """A warm item from JSON; raises ConfigError/UnkeyableError with a readable reason."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"an item must be a JSON object, got {type(data).__name__}")
    merged = {**(defaults or {}), **data}
    body = {k: v for k, v in merged.items() if k not in _ITEM_OPTIONS and k not in _STREAM_KEYS}
    provider = _provider(merged, body)
    if _is_simple(data):
        body = _from_query(body, provider)
    # Normalising validates the body (the same check the proxy makes).
    request = from_anthropic(body) if provider == "anthropic" else from_openai(body, None)
    if (provider, request.endpoint) not in UPSTREAM_PATHS:
        raise ConfigError(
            f"{request.endpoint!r} requests cannot be warmed (chat, completions, embeddings "
            "and Anthropic messages can)"
        )
    return WarmItem(
        body=body,
        provider=provider,
        kind=request.endpoint,
        namespace=_namespace(merged.get("namespace")),
        ttl=_ttl(merged.get("ttl")),
        tags=_tags(merged.get("tags")),
        refresh=_flag("refresh", merged.get("refresh", False)),
        id=_id(data.get("id")),
        shared=None if merged.get("shared") is None else _flag("shared", merged["shared"]),
    )


def parse_batch(data: Any) -> Batch:
    """A batch: one item, a list of items, or `{"requests": [...], <defaults>, "refresh_before": f}`.

    Items that cannot be parsed become InvalidItem (reported, not run); a batch of the wrong
    shape raises ConfigError, one that nests deeper than a request may (`MAX_DEPTH`, counted from
    each item) UnkeyableError.
    """
    defaults: dict[str, Any] = {}
    refresh_before = None
    if isinstance(data, Mapping) and "requests" in data:
        raw = data["requests"]
        if not isinstance(raw, list):
            raise ConfigError("'requests' must be a list of items")
        unknown = data.keys() - _BATCH_DEFAULTS - {"requests", "refresh_before"}
        if unknown:
            raise ConfigError(f"unknown batch option(s): {', '.join(sorted(unknown))}")
        defaults = {k: v for k, v in data.items() if k in _BATCH_DEFAULTS}
        refresh_before = check_refresh_before(data.get("refresh_before"))
    elif isinstance(data, list):
        raw = data
    elif isinstance(data, Mapping):
        raw = [data]
    else:
        raise ConfigError(f"the body must be an item, a list or a batch, not {type(data).__name__}")
    if not raw:
        raise ConfigError("the batch is empty")
    for item in (defaults, *raw):
        check_depth(item)
    return Batch([_parse_or_invalid(item, defaults) for item in raw], refresh_before)


def _parse_or_invalid(data: Any, defaults: Mapping[str, Any]) -> Parsed:
    try:
        return parse_item(data, defaults)
    except LLMemoError as exc:
        ident = data.get("id") if isinstance(data, Mapping) else None
        return InvalidItem(f"invalid item: {exc}", ident if isinstance(ident, str) else None)


def check_refresh_before(value: Any) -> float | None:
    """A fraction of the TTL in [0, 1), or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ConfigError(f"refresh_before must be a fraction of the TTL in [0, 1), got {value!r}")
    return float(value)


def _is_simple(data: Mapping[str, Any]) -> bool:
    return "query" in data


def _provider(merged: Mapping[str, Any], body: Mapping[str, Any]) -> Provider:
    named = merged.get("provider")
    if named is not None:
        if named not in ("openai", "anthropic"):
            raise ConfigError(f"provider must be 'openai' or 'anthropic', got {named!r}")
        return "anthropic" if named == "anthropic" else "openai"
    model = body.get("model")
    if isinstance(model, str) and model.startswith("claude"):
        return "anthropic"
    if "query" not in body and "messages" in body and to_request(body).provider == "anthropic":
        return "anthropic"
    return "openai"


def _from_query(body: dict[str, Any], provider: Provider) -> dict[str, Any]:
    """The simple form `{"query", "model", ["system"], params...}` as a chat request body."""
    query, system = body.pop("query"), body.pop("system", None)
    if not isinstance(query, str) or not query.strip():
        raise ConfigError("'query' must be a non-empty string")
    if not isinstance(body.get("model"), str):
        raise ConfigError("the simple form needs a 'model' (in the item or the batch)")
    if system is not None and not isinstance(system, str):
        raise ConfigError("'system' must be a string")
    user = {"role": "user", "content": query}
    if provider == "anthropic":
        body.setdefault("max_tokens", ANTHROPIC_MAX_TOKENS)
        return {**body, **({"system": system} if system else {}), "messages": [user]}
    messages = [{"role": "system", "content": system}] if system else []
    return {**body, "messages": [*messages, user]}


def _namespace(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError("namespace must be a string")
    return check_name("namespace", value)


def _ttl(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"ttl must be seconds or a duration like '24h', got {value!r}")
    ttl = seconds(value)
    if ttl <= 0:
        raise ConfigError(f"ttl must be positive, got {value!r}")
    return ttl


def _tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ConfigError("tags must be a list of strings")
    return tuple(check_name("tag", t) for t in value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false")
    return value


def _id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ConfigError("id must be a string")
    return str(value)
