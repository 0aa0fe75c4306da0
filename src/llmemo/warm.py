"""Pre-warming: ask the upstream once per request and store the answer before anyone asks.

A warm item is an OpenAI or Anthropic request body, or the simple form `{"query": ..., "model": ...}`,
with optional `namespace`, `ttl`, `tags` and `refresh`. `Warmer` runs items against an AsyncCache
and an upstream caller: an entry that exists is left alone (`fresh`) unless it is within
`refresh_before` (a fraction of its TTL) of expiring or `refresh` is set; otherwise the upstream is
called once (single-flight) and the answer stored (`stored`). Anything else is `failed`, with a reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from llmemo.core._async.cache import AsyncCache
from llmemo.core.durations import seconds
from llmemo.core.entry import Usage, usage_of
from llmemo.core.facade import Hit
from llmemo.core.pricing import cost
from llmemo.core.request import (
    DEFAULT_NORMALISATION,
    CacheRequest,
    Normalisation,
    check_name,
    from_anthropic,
    from_openai,
    to_request,
)
from llmemo.errors import ConfigError, CorruptEntryError, LLMemoError, StoreError, require

Status = Literal["stored", "fresh", "failed"]
Provider = Literal["openai", "anthropic"]
log = logging.getLogger("llmemo.warm")

# Where each kind of request goes, relative to the provider's base URL (as `llmemo serve` forwards).
UPSTREAM_PATHS: Mapping[tuple[str, str], str] = {
    ("openai", "chat"): "/chat/completions",
    ("openai", "completions"): "/completions",
    ("openai", "embeddings"): "/embeddings",
    ("anthropic", "messages"): "/v1/messages",
}
# Keys of an item that steer warming and are never sent upstream.
_ITEM_OPTIONS = frozenset({"namespace", "ttl", "tags", "refresh", "id", "provider"})
_BATCH_DEFAULTS = frozenset({"namespace", "ttl", "tags", "refresh", "provider", "model"})
# A stream is answered as one JSON object when warming; the key never depends on these.
_STREAM_KEYS = ("stream", "stream_options")
ANTHROPIC_MAX_TOKENS = 1024  # the simple form's default: Anthropic requires max_tokens
ANTHROPIC_VERSION = "2023-06-01"


class WarmError(LLMemoError):
    """A warm item that cannot be run, or an upstream that failed it."""


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

    @property
    def path(self) -> str:
        """The upstream path, relative to the provider's base URL."""
        return UPSTREAM_PATHS[(self.provider, self.kind)]

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        return model if isinstance(model, str) else None

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
    )


def parse_batch(data: Any) -> Batch:
    """A batch: one item, a list of items, or `{"requests": [...], <defaults>, "refresh_before": f}`.

    Items that cannot be parsed become InvalidItem (reported, not run); a batch of the wrong
    shape raises ConfigError.
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


# -- running --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemResult:
    """What warming one item did. `usage`/`cost` are what the upstream call spent (0 if none)."""

    index: int
    status: Status
    key: str | None = None
    model: str | None = None
    reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.id is not None:
            data["id"] = self.id
        if self.key is not None:
            data["key"] = self.key
        if self.model is not None:
            data["model"] = self.model
        if self.reason is not None:
            data["reason"] = self.reason
        if self.usage.total:
            data["usage"] = {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
            }
            data["cost_usd"] = round(self.cost, 8)
        return data


@dataclass
class Summary:
    """Totals of a warm run: stored, skipped (fresh), failed, and what the upstream calls spent."""

    total: int = 0
    stored: int = 0
    fresh: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0

    def add(self, result: ItemResult) -> None:
        self.total += 1
        if result.status == "stored":
            self.stored += 1
        elif result.status == "fresh":
            self.fresh += 1
        else:
            self.failed += 1
        self.input_tokens += result.usage.input_tokens
        self.output_tokens += result.usage.output_tokens
        self.cost += result.cost

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "stored": self.stored,
            "skipped": self.fresh,
            "failed": self.failed,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tokens": self.input_tokens + self.output_tokens,
            "cost_usd": round(self.cost, 6),
        }


@dataclass
class Report:
    """A finished (or stopped) run: the summary and each item's result, in input order."""

    summary: Summary
    results: list[ItemResult]


Caller = Callable[[WarmItem], Awaitable[Mapping[str, Any]]]
TenantOf = Callable[[WarmItem], "str | None"]


def refresh_due(hit: Hit, refresh_before: float | None) -> bool:
    """Should warming replace this entry: stale, or within `refresh_before` x TTL of expiring?"""
    if hit.stale:
        return True
    remaining = hit.remaining
    if refresh_before is None or hit.ttl is None or remaining is None:
        return False
    return remaining <= refresh_before * hit.ttl


class Warmer:
    """Runs warm items against one AsyncCache and an upstream caller, `concurrency` at a time.

    tenant: the scope an item's entry belongs to (the proxy keys entries by tenant; None: shared).
    skip_keys: store keys known to be warm already (a resume journal): reported fresh, not read.
    """

    def __init__(
        self,
        cache: AsyncCache,
        call: Caller,
        *,
        concurrency: int = 8,
        refresh_before: float | None = None,
        tenant: TenantOf | None = None,
        skip_keys: Iterable[str] = (),
    ) -> None:
        if concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
        self.cache = cache
        self.call = call
        self.concurrency = concurrency
        self.refresh_before = check_refresh_before(refresh_before)
        self.tenant = tenant
        self.skip_keys = set(skip_keys)

    async def run(
        self,
        items: Iterable[tuple[int, Parsed]],
        on_result: Callable[[ItemResult], object] | None = None,
        stop: asyncio.Event | None = None,
    ) -> Report:
        """Warm numbered items; `stop` set: no new item starts, those under way finish."""
        pending = iter(items)
        summary, results = Summary(), []

        async def worker() -> None:
            for index, item in pending:  # shared by the workers: each item is taken once
                if stop is not None and stop.is_set():
                    return
                result = await self.warm_one(index, item)
                summary.add(result)
                results.append(result)
                if on_result is not None:
                    on_result(result)

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        results.sort(key=lambda r: r.index)
        return Report(summary, results)

    async def warm_one(self, index: int, item: Parsed) -> ItemResult:
        """Warm one item; never raises for the item's own problems (they are its result)."""
        if isinstance(item, InvalidItem):
            return ItemResult(index, "failed", reason=item.reason, id=item.id)
        cache = self.cache
        request = item.request(cache.normalisation)
        tenant = self.tenant(item) if self.tenant is not None else None
        ns, tags = item.namespace, item.tags
        call = cache.prepare(request, namespace=ns, tenant=tenant, tags=tags, ttl=item.ttl)
        done = _Done(index, item.model, item.id)
        try:
            namespace = call.scope.namespace
            version = cache.cached_version(namespace)
            if version is None:
                version = await cache.version(namespace)
            key = cache.key_of(call, version)
            if key in self.skip_keys:
                return done("fresh", key, reason="journal")
            refresh = item.refresh
            if not refresh:
                hit = await self._peek(key)
                if hit is not None and not refresh_due(hit, self.refresh_before):
                    return done("fresh", key)
                refresh = hit is not None
        except StoreError as exc:  # nothing could be stored: do not pay for the upstream call
            return done("failed", reason=f"store unavailable: {exc}")

        async def ask() -> Mapping[str, Any]:
            return await self.call(item)

        try:
            result = await cache.compute(
                request, ask, refresh=refresh, ttl=item.ttl, namespace=ns, tenant=tenant, tags=tags
            )
        except Exception as exc:  # one item's failure is its result, never the batch's
            log.warning("warming item %d failed: %s", index, _reason(exc))
            return done("failed", key, reason=_reason(exc))
        if result.status != "miss":  # answered by another caller meanwhile
            return done("fresh", key)
        usage = usage_of(result.response)
        spent = cost(item.model or _str(result.response.get("model")), usage, cache.prices)
        if result.stored:
            return done("stored", key, usage=usage, cost=spent)
        reason = f"not cacheable: {result.skipped}" if result.skipped else "the store failed"
        return done("failed", key, reason=reason, usage=usage, cost=spent)

    async def _peek(self, key: str) -> Hit | None:
        """The entry at `key` without counting a hit or touching its TTL (corrupt: absent)."""
        try:
            return await self.cache.get_key(key)
        except CorruptEntryError:
            return None


@dataclass(frozen=True)
class _Done:
    index: int
    model: str | None
    id: str | None

    def __call__(
        self,
        status: Status,
        key: str | None = None,
        *,
        reason: str | None = None,
        usage: Usage | None = None,
        cost: float = 0.0,
    ) -> ItemResult:
        return ItemResult(
            self.index, status, key, self.model, reason, usage or Usage(), cost, self.id
        )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text if isinstance(exc, LLMemoError) and text else f"{type(exc).__name__}: {text}"


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def upstream_body(item: WarmItem) -> bytes:
    """The JSON bytes to send upstream for an item."""
    return orjson.dumps(dict(item.body))


def auth_headers(provider: Provider, api_key: str | None) -> dict[str, str]:
    """The headers a provider expects: content type, version, and the API key if there is one."""
    headers = {"content-type": "application/json"}
    if provider == "anthropic":
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if api_key:
            headers["x-api-key"] = api_key
    elif api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


class HttpUpstream:
    """A Caller that POSTs items to the providers with httpx (`llmemo warm` without a service).

    Base URLs as `llmemo serve` takes them: OpenAI's with `/v1`, Anthropic's without.
    """

    def __init__(
        self,
        *,
        openai_base_url: str | None = None,
        anthropic_base_url: str | None = None,
        openai_api_key: str | None = None,
        anthropic_api_key: str | None = None,
        timeout: float = 600.0,
    ) -> None:
        require("httpx", "server")
        import httpx

        self.bases: dict[Provider, str | None] = {
            "openai": openai_base_url.rstrip("/") if openai_base_url else None,
            "anthropic": anthropic_base_url.rstrip("/") if anthropic_base_url else None,
        }
        self.keys: dict[Provider, str | None] = {
            "openai": openai_api_key,
            "anthropic": anthropic_api_key,
        }
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10.0))

    async def __aenter__(self) -> HttpUpstream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __call__(self, item: WarmItem) -> Mapping[str, Any]:
        import httpx

        base = self.bases[item.provider]
        if base is None:
            flag = "--anthropic-base-url" if item.provider == "anthropic" else "--openai-base-url"
            raise WarmError(f"no {item.provider} upstream: pass {flag}")
        headers = auth_headers(item.provider, self.keys[item.provider])
        try:
            response = await self._client.post(
                base + item.path, content=upstream_body(item), headers=headers
            )
        except httpx.HTTPError as exc:
            raise WarmError(
                f"cannot reach the {item.provider} upstream at {base}: {type(exc).__name__}"
            ) from None
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            data = None
        if response.status_code >= 400:
            raise WarmError(
                f"the {item.provider} upstream answered {response.status_code}"
                + (f": {_error_message(data)}" if _error_message(data) else "")
            )
        if not isinstance(data, dict):
            raise WarmError(f"the {item.provider} upstream answered without a JSON object")
        return data


def _error_message(data: Any) -> str | None:
    """The message of an OpenAI- or Anthropic-shaped error body."""
    error = data.get("error") if isinstance(data, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else None
    return message[:300] if isinstance(message, str) else None
