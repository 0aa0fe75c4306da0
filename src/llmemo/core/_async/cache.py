"""AsyncCache: the store I/O around the shared decisions in `facade.py`.

The sync `Cache` in `core/_sync/cache.py` is GENERATED from this file by `scripts/gen_sync.py`
(a test fails when it is out of date): edit this file, then run the script.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from llmemo import telemetry
from llmemo.core import hot
from llmemo.core._async import erase
from llmemo.core._async.check import check_store
from llmemo.core._async.feedback import AsyncFeedback
from llmemo.core.check import CheckReport
from llmemo.core.entry import HEAD_BYTES, decode_head
from llmemo.core.erase import ALL_NAMESPACES, WipeReport, WipeTarget
from llmemo.core.facade import BaseCache, Call, Hit, Result, head_matches, response_dict
from llmemo.core.feedback import FeedbackLimits, Reported, ServedHit, WrongHit, namespace_of_key
from llmemo.core.frozen import builder, built
from llmemo.core.hot import HotAnswer
from llmemo.core.policy import TtlArg
from llmemo.core.request import CacheRequest, check_name, entry_pattern
from llmemo.core.semantic import AsyncSemanticLayer, SemanticPlan
from llmemo.core.singleflight import (
    AsyncBackground,
    AsyncFlights,
    AsyncOp,
    AsyncRenewer,
    ainvoke,
    asleep,
)
from llmemo.core.stats import CacheStats
from llmemo.errors import CorruptEntryError, StoreError, UndecryptableError
from llmemo.stores import base as stores

T = TypeVar("T")
_ResultBuilder = builder(Result)
Request = CacheRequest | Mapping[str, Any]


class AsyncCache(BaseCache):
    """An LLM response cache over an AsyncStore: exact hits, single-flight misses, fail-open.

    semantic: the semantic layer (embedder + vector index, core/semantic.py) consulted after an
    exact miss; None (the default) for exact matching only. feedback: the bounds of the
    served-hit log and wrong-hit reports (core/feedback.py).
    """

    semantic: AsyncSemanticLayer | None

    def __init__(
        self,
        store: stores.AsyncStore,
        *,
        semantic: AsyncSemanticLayer | None = None,
        feedback: FeedbackLimits | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.backend = store
        self.semantic = semantic
        if semantic is not None:
            semantic.bind(store, self.prefix, self.clock, self.monotonic, self.keyring)
            semantic.tracer = self._tracer
        self.feedback = AsyncFeedback(store, self.prefix, self.keyring, self.clock, feedback)
        self._flights = AsyncFlights()
        self._revalidating: set[str] = set()
        self._background = AsyncBackground()

    @classmethod
    def from_url(
        cls, url: str | None = None, *, semantic: bool | AsyncSemanticLayer = False, **options: Any
    ) -> AsyncCache:
        """A cache on the store the URL names (sqlite:///path, redis://..., rediss://..., memory://).

        Without a URL: `$LLMEMO_STORE`, else the embedded SQLite file ~/.cache/llmemo/cache.db.
        semantic=True adds the semantic layer; its options (embedder, index, threshold, guard,
        namespaces, k, backfill) may be given here too (see core/semantic.py).
        """
        layer = AsyncSemanticLayer.from_options(semantic, options)
        return cls(stores.async_from_url(url or stores.default_url()), semantic=layer, **options)

    async def __aenter__(self) -> AsyncCache:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, timeout: float = 5.0) -> None:
        """Wait up to `timeout` seconds for background refreshes (a refresh that outlived its cache
        would reopen the store; tasks still running then are cancelled), flush pending counters
        and close the store, also when its circuit is open (a skipped close leaves connections
        open)."""
        await self._background.drain(timeout)
        await self.flush()
        if self.semantic is not None:
            await self._closing(self.semantic.close)
        await self._closing(self.backend.close)

    async def _closing(self, close: AsyncOp[None]) -> None:
        try:
            await close()
        except StoreError as exc:  # fail open: counted, never raised from close()
            self._count_store_error(exc)

    async def check(self) -> CheckReport:
        """Probe the store (write, read back, delete a key; for Redis its version, search module
        and eviction policy) and the semantic layer's embedder. Never raises for a store failure:
        `report.ok` says whether the store works (`llmemo doctor` prints this report)."""
        return await check_store(self.backend, self.prefix, self.semantic)

    # -- fail-open plumbing -----------------------------------------------------------------

    async def _safely(self, op: AsyncOp[T], default: T) -> T:
        """Run a store operation; when the store fails (or its circuit is open) return default."""
        if not self.breaker.allow():
            return default
        try:
            result = await op()
        except StoreError as exc:
            self._count_store_error(exc)
            return default
        self.breaker.success()
        return result

    async def _put(self, key: str, value: bytes, ttl: float | None) -> bool:
        if not self.breaker.allow():
            return False
        try:
            await self.backend.set(key, value, ttl)
        except StoreError as exc:
            self._count_store_error(exc)
            return False
        self.breaker.success()
        if self.near is not None:
            self.near.put(key, value, ttl)
        return True

    async def _version(self, namespace: str) -> int | None:
        known = self._cached_version(namespace)
        if known is not None:
            return known
        counters = await self._safely(
            lambda: self.backend.counters(self._meta_key(namespace)), None
        )
        if counters is None:  # keep using the last version seen: the rest of the store may work
            return self._last_version(namespace)
        return self._remember_meta(namespace, counters)

    async def _read(self, key: str, refresh: float | None = None) -> Hit | None:
        found = await self._read_value(key, refresh)
        return None if found is None else found[0]

    async def _read_value(self, key: str, refresh: float | None) -> tuple[Hit, bytes] | None:
        """The hit at `key` and the stored value it was decoded from (None: no entry, an
        unreadable one, or the store failed)."""
        near = self.near
        if near is not None:
            kept = near.get(key)
            if kept is not None:
                return self._hit_from(kept, key), kept  # read and decoded before: not corrupt
        if not self.breaker.allow():  # _safely, inlined: this is every lookup's path
            return None
        try:
            data = await self.backend.get(key, refresh)
        except StoreError as exc:
            self._count_store_error(exc)
            return None
        self.breaker.success()
        if data is None:
            return None
        try:
            hit = self._hit_from(data, key)
        except CorruptEntryError as exc:
            self._count_corrupt(exc)
            if not isinstance(exc, UndecryptableError):  # another reader may hold its key
                await self._safely(lambda: self.backend.delete([key]), 0)
            return None
        if near is not None:
            near.put(key, data, 0.0 if hit.stale else hit.remaining)
        return hit, data

    async def _current_value(self, call: Call) -> tuple[str, bytes, bool] | None:
        """(key, value, read from the store) of the entry a lookup of this call would decode now,
        not decoded: the near cache's value, else the store's (a rolling TTL renewed as a lookup
        renews it). For kept answers (`answer_bytes`, `still_current`).

        None leaves the call to a lookup: no entry, the namespace's version not known lately, the
        store's circuit not closed, a store error (not counted: the lookup that follows counts its
        own), or a hit that must do more than read (a semantic lease under a rolling TTL). A value
        read from the store is not put in the near cache: keep it there once it is known good.
        """
        if self.semantic is not None and self.policy.rolling:
            return None
        version = self._cached_version(call.scope.namespace)
        if version is None:
            return None
        key = self._key_of(call, version)
        near = self.near
        if near is not None:
            kept = near.get(key)
            if kept is not None:
                return key, kept, False
        if not self.breaker.closed:
            return None
        try:
            data = await self.backend.get(key, self._refresh_ttl())
        except StoreError:
            return None
        return None if data is None else (key, data, True)

    # -- kept answers (core/hot.py) ---------------------------------------------------------

    async def answer_bytes(self, request: Request, **scope: Any) -> HotAnswer | None:
        """This request's current hit as finished JSON bytes, to keep and serve again while
        `still_current` says so (each use counted by `count_served`); nothing is counted here.
        None when a lookup must decide: no entry, a stale or unreadable one, the namespace's
        version not known lately, the store's circuit not closed, a store error."""
        call = self._prepare(request, **scope)
        found = await self._current_value(call)
        if found is None:
            return None
        key, value, _ = found
        decoded = hot.decode_answer(key, value, self.clock(), self.keyring)
        if decoded is None:
            return None
        hit, stale_after, body = decoded
        return HotAnswer(call, value, body, hit, stale_after, self._hit_counts(hit))

    def kept_answer(
        self, request: Request, result: Result, body: bytes, **scope: Any
    ) -> HotAnswer | None:
        """A fresh exact hit that `compute` just gave, kept as `answer_bytes` would keep it,
        with no store read and no decoding: `body` is its response's JSON as it was sent. None
        for any other result."""
        if result.status != "hit" or result.value is None or result.hit is None:
            return None
        call = self._prepare(request, **scope)
        return hot.kept(call, result.hit, result.value, body, self._hit_counts(result.hit))

    async def still_current(self, answer: HotAnswer) -> bool:
        """Is `answer` still what a lookup would return now, byte for byte? Reads the entry as a
        lookup does (the near cache, else the store, a rolling TTL renewed) and keeps it in the
        near cache as a lookup would; a stale entry is left to a lookup."""
        found = await self._current_value(answer.call)
        if found is None:
            return False
        key, value, from_store = found
        now = self.clock()
        if not hot.is_current(answer, value, now):
            return False
        if from_store and self.near is not None:  # the kept copy: the same bytes
            self.near.put(key, answer.value, hot.near_lifetime(answer, now))
        return True

    async def count_served(self, answer: HotAnswer) -> float:
        """Count a use of a kept answer as the hit it is (flushing the counters when due);
        returns its age in seconds (the `Age` header)."""
        seconds = hot.age(answer, self.clock())
        self._count_many(answer.counts)
        if self._flush_due():
            await self.flush()
        return seconds

    async def _read_live(self, call: Call, key: str) -> tuple[Hit, bytes] | None:
        """The read of a lookup: the hit and its stored value (in an `llmemo.lookup` span when
        tracing)."""
        if self._tracer is not None:
            with self._tracer.start_as_current_span("llmemo.lookup") as span:
                found = await self._read_renewing(call, key)
                telemetry.looked_up(span, call.scope.namespace, None if found is None else found[0])
                return found
        return await self._read_renewing(call, key)

    async def _read_renewing(self, call: Call, key: str) -> tuple[Hit, bytes] | None:
        """The read of a lookup: a hit under a rolling TTL also renews its vector's lease."""
        rolling = self._refresh_ttl()
        found = await self._read_value(key, rolling)
        if found is not None and rolling is not None and self.semantic is not None:
            self._count_many(await self.semantic.touch(call, key, rolling))
        return found

    async def _semantic_lookup(
        self, layer: AsyncSemanticLayer, call: Call, version: int, backfill: bool = True
    ) -> tuple[Hit | None, SemanticPlan | None]:
        """After an exact miss (in an `llmemo.semantic` span when tracing): the hit, and the plan
        when it holds a probe (verified hits: judge the miss's fresh answer, `_probed`)."""
        with telemetry.span(self._tracer, "llmemo.semantic") as span:
            hit, plan = await self._carry_out(layer, call, version, backfill)
            if span is not None:
                telemetry.looked_up(span, call.scope.namespace, hit)
            return hit, plan if plan is not None and plan.probe is not None else None

    async def _carry_out(
        self, layer: AsyncSemanticLayer, call: Call, version: int, backfill: bool
    ) -> tuple[Hit | None, SemanticPlan | None]:
        """After an exact miss: carry out the semantic layer's plan (counts, backfill, lease)."""
        if not self._may_embed(call):  # a skipped category in the request: never embedded
            return None, None
        plan = await layer.lookup(call, version, self._refresh_ttl(), backfill)
        self._count_many(plan.counts)
        for error in plan.errors:
            self._count_store_error(error)
        hit = plan.hit
        backfilled = False
        if hit is not None:
            try:  # the backfill and the served-hit log record: one round trip
                backfilled = await self.feedback.served(
                    call, self._key_of(call, version), hit, plan
                )
                if plan.renew is not None:  # a hit renews its entry's lease, and its vector's
                    key, lease = plan.renew
                    await self.backend.get(key, lease)
                    self._count_many(await layer.touch(call, key, lease))
            except StoreError as exc:
                self._count_store_error(exc)
            self._count_hit(hit, "semantic_hits")
        await layer.settle(plan, backfilled)
        return hit, plan

    async def _probed(self, plan: SemanticPlan | None, result: Result) -> Result:
        """Verified hits: a candidate was checked against the upstream instead of served; the
        fresh answer (what the caller gets) is judged against the cached one."""
        if plan is not None and self.semantic is not None and result.status == "miss":
            self._count_many(await self.semantic.observe(plan, result.response))
        return result

    # -- the API ----------------------------------------------------------------------------

    async def lookup(self, request: Request, **scope: Any) -> Hit | None:
        """The cached answer for this request, or None (a store failure is a miss)."""
        call = self._prepare(request, **scope)
        version = await self._version(call.scope.namespace)
        found = (
            None if version is None else await self._read_live(call, self._key_of(call, version))
        )
        hit = None if found is None else found[0]
        if hit is None and version is not None and self.semantic is not None:
            hit, plan = await self._semantic_lookup(self.semantic, call, version)
            if hit is not None:
                return hit  # counted by the layer
            if plan is not None:  # verified hits: judged when `store` brings the answer
                self.semantic.hold(self._key_of(call, version), plan)
        if hit is None:
            self.count("misses")
        else:
            self._count_hit(hit)
            if self._flush_due():
                await self.flush()
        return hit

    async def store(self, request: Request, response: Any, **options: Any) -> bool:
        """Store a response for this request; False when it is not cacheable or the store failed."""
        call = self._prepare(request, **options)
        version = await self._version(call.scope.namespace)
        if version is None:
            return False
        fresh = response_dict(response)
        stored = (await self._write(call, version, fresh))[0]
        if self.semantic is not None:  # verified hits: a probe `lookup` held for this request
            self._count_many(await self.semantic.observe_held(self._key_of(call, version), fresh))
        return stored

    async def _write(
        self, call: Call, version: int, response: dict[str, Any], counter: str = "stores"
    ) -> tuple[bool, str | None]:
        """Store (and index) a response: (stored, None), or (False, why it is not cacheable)."""
        key = self._key_of(call, version)
        value, ttl, reason = self._encode_entry(call, response, key)
        if value is None:
            self.count("skips")
            self.count(f"skip:{reason}")
            return False, reason
        ok = await self._put(key, value, ttl)
        self.count(counter if ok else "store_failed")
        if ok:
            await self._index(call, version, key, value, ttl)
        return ok, None

    async def _index(
        self, call: Call, version: int, key: str, value: bytes, ttl: float | None
    ) -> None:
        """A fresh answer was stored: give the semantic layer its vector."""
        if self.semantic is not None:
            self._count_many(await self.semantic.remember(call, version, key, value, ttl))

    async def get_or_compute(
        self, request: Request, fn: Callable[[], Any], **options: Any
    ) -> dict[str, Any]:
        """The cached response, or `fn()`'s (stored when cacheable). Misses are single-flight."""
        return (await self.compute(request, fn, **options)).response

    async def compute(
        self,
        request: Request,
        fn: Callable[[], Any],
        *,
        refresh: bool = False,
        no_store: bool = False,
        ttl: TtlArg = None,
        cacheable: bool = True,
        **scope: Any,
    ) -> Result:
        """Like get_or_compute, but says how the answer was obtained.

        refresh: skip the lookup and replace the entry (Cache-Control: no-cache).
        no_store: look up, but do not store a fresh answer (Cache-Control: no-store).
        stale_grace: serve an expired entry this long past its TTL (status "stale") while one
        background call refreshes it (stale-while-revalidate); the cache's default otherwise.
        cacheable=False: neither look up nor store (counted as a bypass).
        """
        call = self._prepare(request, ttl=ttl, cacheable=cacheable, **scope)
        if not cacheable:
            self.count("bypasses")
            return Result(response_dict(await ainvoke(fn)), "bypass")
        version = await self._version(call.scope.namespace)
        if version is None:  # store down: fail open, still one call per key in this process
            return await self._flight(f"down:{call.sha}", lambda: self._call_only(fn))
        key = self._key_of(call, version)
        probe = None
        if not refresh:
            found = await self._read_live(call, key)
            if found is not None:
                hit = found[0]
                self._count_hit(hit)
                if self._flush_due():
                    await self.flush()
                if hit.stale:
                    self.count("stale_hits")
                    self._revalidate_later(call, version, fn)
                    return Result(hit.response, "stale", hit)
                made = _ResultBuilder(hit.response, "hit", hit, value=found[1])
                return built(Result, made)  # not through the frozen __init__: every hit's path
            if self.semantic is not None:
                similar, probe = await self._semantic_lookup(
                    self.semantic, call, version, not no_store
                )
                if similar is not None:
                    return Result(similar.response, "semantic", similar)
        self.count("misses")
        result = await self._flight(
            key, lambda: self._lead(call, version, fn, not no_store, refresh)
        )
        return await self._probed(probe, result)

    async def _call_only(self, fn: Callable[[], Any]) -> Result:
        return Result(response_dict(await ainvoke(fn)), "miss")

    async def _flight(self, key: str, lead: AsyncOp[Result]) -> Result:
        """In-process single-flight: one leader runs `lead`; if it fails, one follower retries."""
        failed = False
        while True:
            leader, flight = self._flights.join(key)
            if leader:
                try:
                    result = await lead()
                except BaseException as exc:
                    self._flights.finish(key, flight, error=exc)
                    raise
                self._flights.finish(key, flight, result)
                return result
            try:
                result = await self._flights.wait(flight)
            except Exception:
                if failed:
                    raise
                failed = True  # the leader failed: try once more (one of us leads the retry)
                continue
            return Result(
                result.response,
                "hit" if result.status != "bypass" else "bypass",
                result.hit,
                shared=True,
            )

    async def _lead(
        self, call: Call, version: int, fn: Callable[[], Any], store: bool, refresh: bool
    ) -> Result:
        """Cross-process single-flight: hold the lease while calling fn, or wait for its holder."""
        key, lock = self._key_of(call, version), self._lock_of(call, version)
        token = os.urandom(12).hex().encode()
        acquired = await self._safely(lambda: self.backend.add(lock, token, self.lock_ttl), None)
        if acquired is False:
            hit = await self._await_leader(key, lock, token, refresh)
            if hit is not None:
                self._count_hit(hit)
                return Result(hit.response, "hit", hit, shared=True)
        try:
            async with AsyncRenewer(
                lambda: self.backend.expire_if_equal(lock, token, self.lock_ttl), self.lock_ttl / 3
            ):
                response = response_dict(await ainvoke(fn))
            stored, reason = await self._write(call, version, response) if store else (False, None)
            return Result(response, "miss", stored=stored, skipped=reason)
        finally:
            if acquired is not None:
                await self._safely(lambda: self.backend.delete_if_equal(lock, token), False)
            if self._flush_due():
                await self.flush()

    def _revalidate_later(self, call: Call, version: int, fn: Callable[[], Any]) -> None:
        """Refresh a stale entry in the background, once: one task per key here, one lease overall."""
        key = self._key_of(call, version)
        if key in self._revalidating:
            return
        self._revalidating.add(key)

        async def refresh() -> None:
            try:
                await self._revalidate(call, version, fn)
            finally:
                self._revalidating.discard(key)

        self._background.spawn(refresh)

    async def _revalidate(self, call: Call, version: int, fn: Callable[[], Any]) -> None:
        lock = self._lock_of(call, version)
        token = os.urandom(12).hex().encode()
        if not await self._safely(lambda: self.backend.add(lock, token, self.lock_ttl), False):
            return  # another process is refreshing it (or the store is down): keep serving stale
        try:
            await self._write(call, version, response_dict(await ainvoke(fn)), "revalidations")
        except Exception:  # a failed refresh keeps the stale entry until its grace runs out
            self.count("revalidation_errors")
        finally:
            await self._safely(lambda: self.backend.delete_if_equal(lock, token), False)

    async def _await_leader(self, key: str, lock: str, token: bytes, refresh: bool) -> Hit | None:
        """Wait for another process's leader: its value (a hit), or its lease (we take over)."""
        deadline = time.monotonic() + self.wait_timeout
        delay = 0.005
        while time.monotonic() < deadline:
            await asleep(delay)
            delay = min(delay * 2, 0.1)
            hit = None if refresh else await self._read(key)
            if hit is not None:
                return hit
            took = await self._safely(lambda: self.backend.add(lock, token, self.lock_ttl), None)
            if took is not False:  # the leader finished without a value, died, or the store failed
                return None
            if refresh:
                refresh = False  # a refresh leader elsewhere: its new value is what we want
        return None  # waited long enough: call fn ourselves (fail-open)

    # -- invalidation -----------------------------------------------------------------------

    async def delete(self, request: Request, **scope: Any) -> bool:
        """Delete this request's entry (current version)."""
        call = self._prepare(request, **scope)
        version = await self._version(call.scope.namespace)
        if version is None:
            return False
        return await self.delete_key(self._key_of(call, version))

    async def delete_key(self, key: str) -> bool:
        """Delete one entry by its store key. Store errors are raised (an explicit admin action)."""
        if self.semantic is not None:
            await self.semantic.forget([key])
        if self.near is not None:
            self.near.discard(key)
        return await self.backend.delete([key]) > 0

    async def entry_key(self, request: Request, **options: Any) -> str:
        """The store key of this request's entry in the namespace's current version (the version
        the cache knows, else read). ConfigError for a bad option (a TTL over `max_ttl`) before
        any I/O; store errors are raised."""
        call = self._prepare(request, **options)
        namespace = call.scope.namespace
        version = self._cached_version(namespace)
        if version is None:
            version = await self.version(namespace)
        return self._key_of(call, version)

    async def get_key(self, key: str) -> Hit | None:
        """Read one entry by its store key (for tools: `llmemo get`). Store errors are raised."""
        data = await self.backend.get(key)
        return None if data is None else self._hit_from(data, key)

    async def bump_version(self, namespace: str | None = None) -> int:
        """Invalidate a whole namespace at once, in every process: its version goes up by one."""
        ns = namespace or self.namespace
        values = await self.backend.incr(self._meta_key(ns), {"version": 1})
        return self._remember_version(ns, int(values["version"]))

    async def version(self, namespace: str | None = None) -> int:
        """The namespace's current version (read from the store)."""
        ns = namespace or self.namespace
        counters = await self.backend.counters(self._meta_key(ns))
        return self._remember_meta(ns, counters)

    async def invalidate(
        self,
        *,
        namespace: str | None = None,
        version: int | None = None,
        model: str | None = None,
        tenant: str | None = None,
        user: str | None = None,
        tag: str | None = None,
        batch: int = 500,
    ) -> int:
        """Delete matching entries (SCAN + UNLINK in batches, never KEYS or FLUSHDB); returns the count.

        namespace "*" means every namespace; with no filter every entry of the namespace goes.
        Store errors are raised: an invalidation that silently did nothing would be worse.
        """
        pattern = entry_pattern(self.prefix, namespace or self.namespace, version)
        filtered = any(v is not None for v in (model, tenant, user, tag))
        deleted = 0
        async for keys in self.backend.scan(pattern, batch):
            if filtered:
                heads = await self.backend.heads(keys, HEAD_BYTES)
                chosen = []
                for k, h in zip(keys, heads, strict=True):
                    verdict = None if h is None else _matches(h, model, tenant, user, tag)
                    if verdict is None and h is not None and len(h) >= HEAD_BYTES:
                        whole = await self.backend.get(k)  # a header past HEAD_BYTES
                        verdict = _matches(whole or b"", model, tenant, user, tag)
                    if verdict:
                        chosen.append(k)
                keys = chosen
            if keys:
                if self.semantic is not None:
                    await self.semantic.forget(keys)
                deleted += await self.backend.delete(keys)
        if self.near is not None:
            self.near.clear()
        return deleted

    # -- feedback on semantic hits (core/feedback.py) ----------------------------------------

    async def semantic_hits(self, limit: int = 50, namespace: str | None = None) -> list[ServedHit]:
        """The newest served semantic hits (one namespace, or every one), newest first; each
        names the key to report if it was wrong. Store errors are raised."""
        return await self.feedback.hits(limit, namespace)

    async def wrong_hits(self, limit: int = 50, namespace: str | None = None) -> list[WrongHit]:
        """The newest wrong-hit reports, newest first. Store errors are raised."""
        return await self.feedback.reports(limit, namespace)

    async def report_wrong_hit(
        self, key: str | Request, *, note: str | None = None, **scope: Any
    ) -> Reported:
        """Report a semantic hit as wrong, by the key it was served under or by the request that
        got it: the key is deleted, the hit kept as a negative example, and its matched entry
        will not answer a query as similar again. Counted as `feedback_wrong_hit`. ConfigError
        for a key that is not an entry key (before any I/O); store errors are raised."""
        if not isinstance(key, str):
            key = await self.entry_key(key, **scope)
        namespace_of_key(self.prefix, key)
        deleted = int(await self.delete_key(key))
        reported = await self.feedback.report(key, deleted, note)
        self.count("feedback_wrong_hit")
        await self.flush()
        return reported

    async def forget_feedback(
        self,
        *,
        key: str | None = None,
        tenant: str | None = None,
        user: str | None = None,
        namespace: str | None = None,
    ) -> int:
        """Erase served-hit and report records of an entry key, a tenant or a user (erasure);
        returns how many went. Store errors are raised."""
        return await self.feedback.forget(key=key, tenant=tenant, user=user, namespace=namespace)

    async def wipe(
        self,
        *,
        user: str | None = None,
        tenant: str | None = None,
        namespace: str | None = ALL_NAMESPACES,
        batch: int = 500,
    ) -> WipeReport:
        """Erase a user's (in every tenant, or in `tenant`) or a whole tenant's data: entries and
        their stored prompts, vector records, embedding-cache rows; every process drops its
        in-process copies within `version_ttl` (docs/privacy.md, "Erasure"). namespace: one
        namespace, or "*" (the default) for every one. ConfigError without a user or tenant;
        store errors are raised."""
        target = WipeTarget(user, tenant)
        namespace = namespace or self.namespace
        if namespace != ALL_NAMESPACES:
            check_name("namespace", namespace)
        return await erase.wipe(self, target, namespace, batch)

    # -- stats ------------------------------------------------------------------------------

    async def flush(self) -> bool:
        """Send pending counters to the store in one round trip; kept for later if it fails."""
        self._last_flush = self.monotonic()
        pending = self._stats.drain()
        if not pending:
            return True
        try:
            await self.backend.incr(self._stats_key(self.namespace), pending)
        except StoreError:
            self._stats.restore(pending)
            return False
        return True

    async def stats(self) -> CacheStats:
        """Totals for this namespace across every process (local counters when the store is down)."""
        if await self.flush():
            counters = await self._safely(
                lambda: self.backend.counters(self._stats_key(self.namespace)), None
            )
            if counters is not None:
                return CacheStats.from_counters(counters)
        return self.local_stats()


def _matches(
    head: bytes, model: str | None, tenant: str | None, user: str | None, tag: str | None
) -> bool | None:
    """Whether an entry's first bytes match the filters; None when its header cannot be read."""
    try:
        return head_matches(decode_head(head), model, tenant, user, tag)
    except CorruptEntryError:
        return None
