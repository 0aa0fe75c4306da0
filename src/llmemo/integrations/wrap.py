"""`llmemo.wrap(client, cache)`: the same client, with its generation calls answered from the cache.

The wrapped client is a proxy: every attribute is the client's own, except the cached methods
(`chat.completions.create`, `completions.create`, `embeddings.create`, `responses.create`,
`messages.create`), which key the call, answer a hit with the SDK's own object type, and send a
miss to the SDK (single-flight, stored when cacheable). SDK errors propagate unchanged and are
never stored. `with_options()` and `copy()` return wrapped clients too. `last_status()` tells
whether the last cached call in this thread or task was a hit.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar, cast

from llmemo.core import AsyncCache, Cache
from llmemo.core.facade import Hit, Result, Status
from llmemo.core.options import CacheOptions
from llmemo.core.request import CacheRequest
from llmemo.errors import ConfigError
from llmemo.integrations.provider import (
    JSON,
    Endpoint,
    Helper,
    Provider,
    Routes,
    dump,
    key_request,
    log,
    materialise,
)
from llmemo.integrations.streams import AsyncCacheStream, CacheStream

C = TypeVar("C")

# The SDK package a client class comes from -> the module that describes it.
PROVIDERS: Mapping[str, str] = {
    "openai": "llmemo.integrations.openai",
    "anthropic": "llmemo.integrations.anthropic",
}
_SUPPORTED = "openai.OpenAI, openai.AsyncOpenAI, anthropic.Anthropic or anthropic.AsyncAnthropic"
_REWRAP = frozenset({"with_options", "copy"})  # methods that return a new client
# A ContextVar, so each thread and each asyncio task sees its own calls only.
_LAST_STATUS: ContextVar[Status | None] = ContextVar("llmemo_last_status", default=None)


def last_status() -> Status | None:
    """How the last cached call of a wrapped client in this thread or asyncio task was answered:
    "hit", "semantic" or "stale" (from the cache), "miss" (from the provider), "bypass" (not
    cached: `cacheable=False` or an argument that cannot be keyed); None before the first one.

    A stream's status is known when `create(stream=True)` returns: "hit" when it is replayed.
    """
    return _LAST_STATUS.get()


def _status_of(hit: Hit) -> Status:
    return "stale" if hit.stale else "semantic" if hit.kind == "semantic" else "hit"


def wrap(client: C, cache: Cache | AsyncCache, **options: Any) -> C:
    """The client with its generation calls cached; `options` are per-call defaults.

    Options (`CacheOptions`): ttl, namespace, tags, tenant, user, cacheable, refresh, no_store,
    stale_grace. A call overrides them with keywords (`cache_ttl=`, `cache_namespace=`,
    `cache_tags=`, `cache_tenant=`, `cache_user=`, `cache_refresh=`, `cache_no_store=`,
    `cache_stale_grace=`, `cacheable=`) or with the service's headers in `extra_headers`
    (`Cache-Control: no-cache|no-store|stale-while-revalidate=N`, `X-LLMemo-TTL`,
    `X-LLMemo-Namespace`, `X-LLMemo-Tags`, `X-LLMemo-Stale-Grace`). With a stale grace, an entry
    past its TTL is answered (status "stale") while one background call refreshes it. Sync
    clients need a `Cache`, async clients an `AsyncCache`.
    """
    if isinstance(client, _Proxy):
        raise ConfigError("this client is already wrapped by llmemo.wrap()")
    provider = _provider(client)
    is_async = isinstance(client, provider.async_client)
    if not is_async and not isinstance(client, provider.sync_client):
        raise ConfigError(f"llmemo.wrap() needs {_SUPPORTED}, got {type(client).__qualname__}")
    wanted = AsyncCache if is_async else Cache
    if not isinstance(cache, wanted):
        kind = "an async" if is_async else "a sync"
        raise ConfigError(
            f"{type(client).__name__} is {kind} client: wrap it with llmemo.{wanted.__name__}, "
            f"not {type(cache).__name__}"
        )
    binding = _Binding(cache, CacheOptions.from_kwargs(**options), provider)
    return cast(C, _Proxy(client, provider.routes, binding))


def _provider(client: object) -> Provider:
    for cls in type(client).__mro__:
        module = PROVIDERS.get(cls.__module__.partition(".")[0])
        if module is not None:
            provider: Provider = importlib.import_module(module).PROVIDER
            return provider
    raise ConfigError(f"llmemo.wrap() needs {_SUPPORTED}, got {type(client).__qualname__}")


class _Binding:
    """What every cached method of one wrapped client shares."""

    def __init__(
        self, cache: Cache | AsyncCache, defaults: CacheOptions, provider: Provider
    ) -> None:
        self.cache = cache
        self.defaults = defaults
        self.provider = provider

    def method(self, sdk: Callable[..., Any], endpoint: Endpoint) -> Callable[..., Any]:
        if isinstance(self.cache, AsyncCache):
            return _AsyncCall(self, self.cache, sdk, endpoint)
        return _SyncCall(self, self.cache, sdk, endpoint)


class _Proxy:
    """Forwards every attribute to the wrapped object; the routes it knows come back cached.

    `isinstance(proxy, openai.OpenAI)` holds (through `__class__`), so code that checks the
    client's type keeps working.
    """

    __slots__ = ("_llmemo_binding", "_llmemo_routes", "_llmemo_target")

    def __init__(self, target: Any, routes: Routes, binding: _Binding) -> None:
        object.__setattr__(self, "_llmemo_target", target)
        object.__setattr__(self, "_llmemo_routes", routes)
        object.__setattr__(self, "_llmemo_binding", binding)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._llmemo_target, name)
        route = self._llmemo_routes.get(name)
        binding = self._llmemo_binding
        if isinstance(route, Endpoint):
            return binding.method(value, route)
        if isinstance(route, Helper):
            return _helper(self, value, route, binding)
        if route is not None:
            return _Proxy(value, route, binding)
        if name in _REWRAP and self._llmemo_routes is binding.provider.routes and callable(value):
            return _rewrapping(value, binding)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._llmemo_target, name, value)

    def __dir__(self) -> list[str]:
        return dir(self._llmemo_target)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self._llmemo_target)

    def __repr__(self) -> str:
        return f"llmemo.wrap({self._llmemo_target!r})"

    def __enter__(self) -> _Proxy:
        self._llmemo_target.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._llmemo_target.__exit__(*exc)

    async def __aenter__(self) -> _Proxy:
        await self._llmemo_target.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._llmemo_target.__aexit__(*exc)


def _helper(proxy: _Proxy, sdk: Callable[..., Any], route: Helper, binding: _Binding) -> Any:
    def helper(*args: Any, **kwargs: Any) -> Any:
        if args or route.passes(kwargs):  # keywords only; `passes`: the SDK's own, uncached
            return sdk(*args, **kwargs)
        create = getattr(proxy, route.via)  # the cached method
        return route.manager(create, kwargs, isinstance(binding.cache, AsyncCache))

    helper.__doc__ = getattr(sdk, "__doc__", None)
    return helper


def _rewrapping(method: Callable[..., Any], binding: _Binding) -> Callable[..., Any]:
    def rewrapped(*args: Any, **kwargs: Any) -> Any:
        return _Proxy(method(*args, **kwargs), binding.provider.routes, binding)

    return rewrapped


def _answer(endpoint: Endpoint, result: Result, fresh: list[Any]) -> Any:
    """The SDK's own object for an answer this call paid for, else the cached one rebuilt (a
    stale answer's background refresh may add to `fresh` at any time: it is not this answer)."""
    if fresh and result.status in ("miss", "bypass"):
        return fresh[0]
    return endpoint.response(result.response)


class _Call:
    """One cached SDK method: the decisions its sync and async twins share."""

    def __init__(self, binding: _Binding, sdk: Callable[..., Any], endpoint: Endpoint) -> None:
        self.binding = binding
        self.sdk = sdk
        self.endpoint = endpoint
        self.__doc__ = getattr(sdk, "__doc__", None)

    def prepare(
        self, kwargs: Mapping[str, Any]
    ) -> tuple[CacheOptions, dict[str, Any], CacheRequest | None, bool]:
        """(options, keywords for the SDK, request or None to pass through, streaming)."""
        options, sdk = self.binding.defaults.split(kwargs)
        sdk = materialise(sdk)
        streaming = sdk.get("stream") is True
        request = None
        if not streaming or self.endpoint.streams:
            request = key_request(
                self.endpoint,
                sdk,
                self.binding.provider.omitted,
                self.binding.cache.normalisation,
            )
        return options, sdk, request, streaming

    def replayed(self, hit: Hit, kwargs: Mapping[str, Any]) -> list[Any] | None:
        """The chunk objects that replay a hit, or None when the entry cannot be replayed."""
        endpoint = self.endpoint
        assert endpoint.replay is not None and endpoint.chunk is not None
        try:
            return [endpoint.chunk(c) for c in endpoint.replay(hit.response, kwargs)]
        except Exception as exc:  # an entry we cannot replay is a miss, never the caller's error
            log.warning("llmemo: cannot replay %s as a %s stream: %r", hit.key, endpoint.name, exc)
            return None

    def assembled(self, chunks: list[Any]) -> JSON | None:
        """The response a finished stream adds up to, or None when it did not end cleanly."""
        endpoint = self.endpoint
        assert endpoint.assemble is not None and endpoint.complete is not None
        try:
            dicts = [dump(c) for c in chunks]
            if not endpoint.complete(dicts):
                self.binding.cache.count("skips")
                self.binding.cache.count("skip:incomplete")
                return None
            return endpoint.assemble(dicts)
        except Exception as exc:  # storing is best effort: the caller already has the stream
            log.warning("llmemo: cannot assemble a %s stream: %r", endpoint.name, exc)
            self.binding.cache.count("store_failed")
            return None


class _SyncCall(_Call):
    def __init__(
        self, binding: _Binding, cache: Cache, sdk: Callable[..., Any], endpoint: Endpoint
    ) -> None:
        super().__init__(binding, sdk, endpoint)
        self.cache = cache

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args:  # the SDK methods take keywords only: let the SDK report the mistake
            return self.sdk(*args, **kwargs)
        options, sdk, request, streaming = self.prepare(kwargs)
        if request is None:
            self.cache.count("bypasses")
            _LAST_STATUS.set("bypass")
            live = self.sdk(**sdk)
            return CacheStream.recording(live) if streaming and self.endpoint.streams else live
        if streaming:
            return self._stream(options, sdk, request)
        fresh: list[Any] = []

        def call() -> Any:
            response = self.sdk(**sdk)
            fresh.append(response)
            return response

        result = self.cache.compute(request, call, **options.options())
        _LAST_STATUS.set(result.status)
        return _answer(self.endpoint, result, fresh)

    def _stream(
        self, options: CacheOptions, sdk: dict[str, Any], request: CacheRequest
    ) -> CacheStream[Any]:
        if not options.cacheable:
            self.cache.count("bypasses")
            _LAST_STATUS.set("bypass")
            return CacheStream.recording(self.sdk(**sdk))
        if not options.refresh:
            hit = self.cache.lookup(request, **options.scope())
            chunks = None if hit is None else self.replayed(hit, sdk)
            if hit is not None and chunks is not None:
                _LAST_STATUS.set(_status_of(hit))
                return CacheStream.replaying(chunks, hit)
        _LAST_STATUS.set("miss")
        live = self.sdk(**sdk)
        if options.no_store:
            return CacheStream.recording(live)

        def store(chunks: list[Any]) -> None:
            response = self.assembled(chunks)
            if response is not None:
                self.cache.store(request, response, **options.storing())

        return CacheStream.recording(live, store)


class _AsyncCall(_Call):
    def __init__(
        self, binding: _Binding, cache: AsyncCache, sdk: Callable[..., Any], endpoint: Endpoint
    ) -> None:
        super().__init__(binding, sdk, endpoint)
        self.cache = cache

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args:
            return await self.sdk(*args, **kwargs)
        options, sdk, request, streaming = self.prepare(kwargs)
        if request is None:
            self.cache.count("bypasses")
            _LAST_STATUS.set("bypass")
            live = await self.sdk(**sdk)
            return AsyncCacheStream.recording(live) if streaming and self.endpoint.streams else live
        if streaming:
            return await self._stream(options, sdk, request)
        fresh: list[Any] = []

        async def call() -> Any:
            response = await self.sdk(**sdk)
            fresh.append(response)
            return response

        result = await self.cache.compute(request, call, **options.options())
        _LAST_STATUS.set(result.status)
        return _answer(self.endpoint, result, fresh)

    async def _stream(
        self, options: CacheOptions, sdk: dict[str, Any], request: CacheRequest
    ) -> AsyncCacheStream[Any]:
        if not options.cacheable:
            self.cache.count("bypasses")
            _LAST_STATUS.set("bypass")
            return AsyncCacheStream.recording(await self.sdk(**sdk))
        if not options.refresh:
            hit = await self.cache.lookup(request, **options.scope())
            chunks = None if hit is None else self.replayed(hit, sdk)
            if hit is not None and chunks is not None:
                _LAST_STATUS.set(_status_of(hit))
                return AsyncCacheStream.replaying(chunks, hit)
        _LAST_STATUS.set("miss")
        live = await self.sdk(**sdk)
        if options.no_store:
            return AsyncCacheStream.recording(live)

        async def store(chunks: list[Any]) -> None:
            response = self.assembled(chunks)
            if response is not None:
                await self.cache.store(request, response, **options.storing())

        return AsyncCacheStream.recording(live, store)
