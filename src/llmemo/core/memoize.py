"""`@cache.memoize(...)`: cache what a function returns, keyed on its qualified name and arguments.

Values are stored as JSON, so a memoized function must return JSON data: dict (str keys), list,
tuple, str, int, float, bool or None. The value is returned in its stored form on a miss as on a
hit (tuples as lists, str/int enums as plain str/int), so callers see the same value either way.
Anything else fails with `UnstorableValueError` naming the offending part: return e.g.
`model.model_dump()` or `dataclasses.asdict(obj)` instead. (No pickle: a shared Redis would then
run whatever bytes it holds as code.)

Arguments are keyed by parameter name with defaults applied (so changing a default changes the
key), canonically: JSON values, pydantic models through `model_dump()`. An argument that cannot be
keyed (an open file, `self` of a plain class) fails with `UnkeyableError`: pass
`key=lambda *args, **kwargs: ...` to build the key from what matters. Misses are single-flight:
concurrent calls with the same arguments run the function once (across processes too).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from llmemo.core.policy import TtlArg
from llmemo.core.request import CacheRequest, from_call
from llmemo.errors import ConfigError, LLMemoError

if TYPE_CHECKING:
    from llmemo.core import AsyncCache, Cache
    from llmemo.core.facade import BaseCache

F = TypeVar("F", bound=Callable[..., Any])
KeyFn = Callable[..., Any]


class UnstorableValueError(LLMemoError, TypeError):
    """A memoized function returned a value that JSON cannot hold."""


def memoize(
    cache: BaseCache,
    *,
    ttl: TtlArg = None,
    namespace: str | None = None,
    key: KeyFn | None = None,
    tags: tuple[str, ...] | list[str] = (),
) -> Callable[[F], F]:
    """A decorator: `Cache` for sync functions, `AsyncCache` for `async def` functions."""
    from llmemo.core import AsyncCache

    options = {"ttl": ttl, "namespace": namespace, "tags": tuple(tags)}

    def decorate(fn: F) -> F:
        name = f"{fn.__module__}.{fn.__qualname__}"
        is_async = inspect.iscoroutinefunction(fn)
        if isinstance(cache, AsyncCache):
            if not is_async:
                raise ConfigError(
                    f"AsyncCache.memoize needs an async def function; {name} is sync: "
                    "memoize it with a Cache"
                )
            return cast(F, _async(cache, fn, name, key, options))
        if is_async:
            raise ConfigError(
                f"Cache.memoize cannot cache the async function {name}: use an AsyncCache"
            )
        return cast(F, _sync(cast("Cache", cache), fn, name, key, options))

    return decorate


def _keyer(
    fn: Callable[..., Any], name: str, key: KeyFn | None
) -> Callable[[tuple[Any, ...], Mapping[str, Any]], CacheRequest]:
    """How a call's arguments become its request: by parameter name, defaults applied, so
    `f(1)`, `f(1, b=2)` and `f(a=1, b=2)` share an entry; or through the user's `key`."""
    if key is not None:
        return lambda args, kwargs: from_call(name, (key(*args, **kwargs),), {})
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have none: key the arguments as given
        return lambda args, kwargs: from_call(name, args, kwargs)

    def request(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> CacheRequest:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return from_call(name, (), bound.arguments)

    return request


def _sync(
    cache: Cache, fn: Callable[..., Any], name: str, key: KeyFn | None, options: dict[str, Any]
) -> Callable[..., Any]:
    keyed = _keyer(fn, name, key)

    @functools.wraps(fn)
    def memoized(*args: Any, **kwargs: Any) -> Any:
        request = keyed(args, kwargs)
        result = cache.compute(request, lambda: box(fn(*args, **kwargs), name), **options)
        return result.response["value"]

    return memoized


def _async(
    cache: AsyncCache,
    fn: Callable[..., Any],
    name: str,
    key: KeyFn | None,
    options: dict[str, Any],
) -> Callable[..., Any]:
    keyed = _keyer(fn, name, key)

    @functools.wraps(fn)
    async def memoized(*args: Any, **kwargs: Any) -> Any:
        request = keyed(args, kwargs)

        async def call() -> dict[str, Any]:
            return box(await fn(*args, **kwargs), name)

        result = await cache.compute(request, call, **options)
        return result.response["value"]

    return memoized


def box(value: Any, name: str) -> dict[str, Any]:
    """The stored form of a return value: `{"value": <JSON>}` (raises UnstorableValueError)."""
    return {"value": _json(value, name, "the value")}


def _json(value: Any, name: str, where: str) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)  # a plain str, also for str enums
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise _unstorable(name, where, f"an int too large for JSON ({value:.3g})")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _unstorable(name, where, f"the float {value!r}")
        return float(value)
    if isinstance(value, list | tuple):
        return [_json(item, name, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, item in value.items():
            if not isinstance(k, str):
                raise _unstorable(name, where, f"a dict key of type {type(k).__name__} ({k!r:.40})")
            out[k] = _json(item, name, f"{where}[{k!r}]")
        return out
    raise _unstorable(name, where, f"a {type(value).__name__}")


def _unstorable(name: str, where: str, what: str) -> UnstorableValueError:
    return UnstorableValueError(
        f"cannot memoize {name}(): {where} is {what}; memoize stores JSON values (dict with str "
        "keys, list, tuple, str, int, float, bool, None): return e.g. model.model_dump() or "
        "dataclasses.asdict(obj)"
    )
