"""Hot answers: the finished answer to a request that keeps being hit.

On a hit the service reads the body, works out the request's scope and key, reads the entry (from
the near cache or the store), decodes it, prices it and encodes the answer again. For a request
whose entry has not changed, all of that gives the same bytes each time. A hot answer keeps those
bytes, keyed on the request itself (route, body bytes, tenant and the headers that change the answer), with the stored value they were
made from.

Each use reads the entry as a lookup would (`AsyncCache.current_value`: the near cache, else the
store, a rolling TTL renewed) and checks it is still that value, byte for byte. It is then exactly
what the normal path would send, so:
- a store, delete or invalidate through this cache is seen at once, and another process's change
  as soon as the normal path would see it (at once without a near cache, within its ttl with one);
- a new namespace version (`version_ttl`) gives a new key, so no value;
- an entry past its soft TTL is left to the normal path (stale-while-revalidate);
- a request with an llmemo or Cache-Control header, a stream request, a store error or an open
  circuit take the normal path too.

Each use counts the same stats and metrics as a normal hit, with a fresh `Age`. What it skips is
parsing the body, preparing the key, decoding the entry and encoding the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from llmemo.core import AsyncCache
from llmemo.core import entry as entries
from llmemo.core.facade import Call, Result
from llmemo.core.request import CacheRequest
from llmemo.errors import CorruptEntryError
from llmemo.service.metrics import Metrics

HotKey = tuple[str, bytes, str | None, str]  # route, request body, tenant, answer headers

MAX_BODY = 8 * 1024  # longer requests are not kept: their key alone would cost more than it saves
_HIT = (b"x-llmemo-cache", b"hit")


@dataclass(slots=True)
class Hot:
    """One request's finished hit: the answer, and what the entry behind it was."""

    call: Call  # what the normal path prepares for this request
    value: bytes  # the stored value it was built from
    body: bytes  # the answer's JSON
    created: float  # the entry's creation time (cache clock), for Age
    ttl: float | None  # the entry's TTL (None: none), for the near cache
    stale_after: float | None  # the entry's soft TTL, if it has one
    counts: tuple[tuple[str, float], ...]  # what a hit adds to the cache's stats
    model: str  # the metrics' model label
    saved: tuple[int, float]  # tokens and dollars a hit saves


class HotAnswers:
    """The hot answers of one service: at most `max_bytes` of bodies and answers in all."""

    def __init__(self, cache: AsyncCache, metrics: Metrics, max_bytes: int = 16 * 1024 * 1024):
        self.cache = cache
        self.metrics = metrics
        self.max_bytes = max_bytes
        # None: hit once, not built yet (a request hit only once costs no build)
        self._hot: dict[HotKey, Hot | None] = {}
        self._bytes = 0

    async def get(self, key: HotKey) -> Hot | None:
        """The hot answer of this request, if it is still what the normal path would send."""
        hot = self._hot.get(key)
        if hot is None:
            return None
        found = await self.cache.current_value(hot.call)
        if found is None:
            return None
        entry, value, from_store = found
        if value is not hot.value and value != hot.value:
            return None
        now = self.cache.clock()
        if hot.stale_after is not None and now >= hot.stale_after:
            return None
        if from_store:  # kept as a lookup keeps it (the hot answer's own copy: same bytes)
            lifetime = None if hot.ttl is None else hot.ttl - (now - hot.created)
            self.cache.keep_near(entry, hot.value, lifetime)
        return hot

    async def answer(
        self, route: str, hot: Hot, seconds: float
    ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """Count a use of `hot` as a hit and give its body and headers."""
        cache = self.cache
        age = max(0.0, cache.clock() - hot.created)
        cache.count_many(hot.counts)
        self.metrics.record_cached(route, hot.model, "hit", hot.saved, seconds)
        if cache.flush_due():
            await cache.flush()
        return hot.body, [_HIT, (b"age", str(int(age)).encode())]

    async def learn(
        self, key: HotKey, request: CacheRequest, tenant: str | None, result: Result
    ) -> None:
        """A normal hit of this request was answered: build its hot answer on the second one."""
        if result.status != "hit" or len(key[1]) > MAX_BODY:
            return
        if key not in self._hot:
            self._remember(key, None)
            return
        hot = await self._build(request, tenant)
        if hot is not None:
            self._remember(key, hot)

    async def _build(self, request: CacheRequest, tenant: str | None) -> Hot | None:
        """The hot answer of the entry a lookup of this request would decode now, if any."""
        cache = self.cache
        call = cache.prepare(request, tenant=tenant)
        found = await cache.current_value(call)
        if found is None:
            return None
        key, value, _ = found
        try:
            head, doc = entries.decode_parts(value)
            hit = cache.hit_of(head, doc, key)
            stale_after = entries.stale_after(head)
        except (CorruptEntryError, TypeError, ValueError):
            return None
        if hit.stale:
            return None
        result = Result(hit.response, "hit", hit)
        return Hot(
            call,
            value,
            orjson.dumps(hit.response),
            hit.created,
            hit.ttl,
            stale_after,
            cache.hit_counts(hit),
            self.metrics.model_label(request.model),
            self.metrics.saved_by(request.model, result),
        )

    def _remember(self, key: HotKey, hot: Hot | None) -> None:
        size = len(key[1]) + (0 if hot is None else len(hot.body) + len(hot.value))
        if self._bytes + size > self.max_bytes:
            self._hot = {}  # rebinding: a simple bound, rebuilt from the next hits
            self._bytes = 0
        old = self._hot.get(key)
        if old is not None:
            self._bytes -= len(key[1]) + len(old.body) + len(old.value)
        elif key in self._hot:
            self._bytes -= len(key[1])
        self._hot[key] = hot
        self._bytes += size

    def __len__(self) -> int:
        return sum(1 for hot in self._hot.values() if hot is not None)
