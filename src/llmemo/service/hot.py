"""Hot answers: the finished answer to a request that keeps being hit.

On a hit the service reads the body, works out the request's scope and key, reads the entry (from
the near cache or the store), decodes it, prices it and encodes the answer again. For a request
whose entry has not changed, all of that gives the same bytes each time. A hot answer keeps those
bytes, keyed on the request itself (route, body bytes, tenant and the headers that change the
answer), with the stored value they were made from: both taken from the request's second hit as it
is answered (`AsyncCache.kept_answer`), so keeping it costs no read and no decoding.

Each use asks the cache whether a lookup would read that same value now, byte for byte
(`AsyncCache.still_current`, see core/hot.py). It is then exactly what the normal path would
send, so:
- a store, delete or invalidate through this cache is seen at once, and another process's change
  as soon as the normal path would see it (at once without a near cache, within its ttl with one);
- a new namespace version (`version_ttl`) gives a new key, so no value;
- an entry past its soft TTL is left to the normal path (stale-while-revalidate);
- a request with an llmemo or Cache-Control header, a stream request, a store error or an open
  circuit take the normal path too.

Each use counts the same stats (`AsyncCache.count_served`) and metrics as a normal hit, with a
fresh `Age`. What it skips is parsing the body, preparing the key, decoding the entry and encoding
the answer. This module only keeps the answers and the metrics' part of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmemo.core import AsyncCache
from llmemo.core.facade import Result
from llmemo.core.hot import HotAnswer
from llmemo.core.request import CacheRequest
from llmemo.service.metrics import Metrics

HotKey = tuple[str, bytes, str | None, str]  # route, request body, tenant, answer headers

MAX_BODY = 8 * 1024  # longer requests are not kept: their key alone would cost more than it saves
_HIT = (b"x-llmemo-cache", b"hit")


@dataclass(slots=True)
class Hot:
    """One request's finished hit: the cache's kept answer, and its metrics' labels."""

    answer: HotAnswer  # the body, and the entry it was made from
    model: str  # the metrics' model label
    saved: tuple[int, float]  # tokens and dollars a hit saves
    tenant: str | None = None  # the dashboard's rollups count the hit for it

    @property
    def size(self) -> int:
        return len(self.answer.body) + len(self.answer.value)


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
        if hot is None or not await self.cache.still_current(hot.answer):
            return None
        return hot

    async def answer(
        self, route: str, hot: Hot, seconds: float
    ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """Count a use of `hot` as a hit and give its body and headers."""
        age = await self.cache.count_served(hot.answer)
        self.metrics.record_cached(route, hot.model, "hit", hot.saved, seconds, None, hot.tenant)
        return hot.answer.body, [_HIT, (b"age", str(int(age)).encode())]

    def learn(
        self, key: HotKey, request: CacheRequest, tenant: str | None, result: Result, body: bytes
    ) -> None:
        """A normal hit of this request was answered with `body`: keep it as its hot answer on
        the second one, made of what that hit read (no store read, no decoding)."""
        if len(key[1]) > MAX_BODY:
            return
        if result.status != "hit":
            if self._hot.get(key) is not None:  # its entry changed or went: free its bytes
                self._remember(key, None)
            return
        if key not in self._hot:
            self._remember(key, None)
            return
        if self._hot[key] is None and self._bytes >= self.max_bytes * 3 // 4:
            return  # full: the answers kept stay (a quarter is left to the marks of requests)
        answer = self.cache.kept_answer(request, result, body, tenant=tenant)
        if answer is not None:
            hit = answer.hit
            saved = self.metrics.saved_by(request.model, Result(hit.response, "hit", hit))
            label = self.metrics.model_label(request.model)
            self._remember(key, Hot(answer, label, saved, tenant))

    def _remember(self, key: HotKey, hot: Hot | None) -> None:
        size = len(key[1]) + (0 if hot is None else hot.size)
        old = self._hot.get(key)
        grows = size - (0 if old is None else old.size) - (len(key[1]) if key in self._hot else 0)
        if self._bytes + grows > self.max_bytes:
            # Full: drop the marks of requests hit once (cheap to make again), keep the built
            # answers (emptying them all would rebuild them over and over on many distinct
            # requests; `learn` builds new ones up to three quarters of the bound only).
            self._hot = {k: v for k, v in self._hot.items() if v is not None or k == key}
            self._bytes = sum(
                len(k[1]) + (0 if v is None else v.size) for k, v in self._hot.items()
            )
            if self._bytes + grows > self.max_bytes:
                return
        if old is not None:
            self._bytes -= len(key[1]) + old.size
        elif key in self._hot:
            self._bytes -= len(key[1])
        self._hot[key] = hot
        self._bytes += size

    def clear(self) -> None:
        """Forget every answer kept (after an erasure: they hold requests and answers)."""
        self._hot = {}
        self._bytes = 0

    def __len__(self) -> int:
        return sum(1 for hot in self._hot.values() if hot is not None)
