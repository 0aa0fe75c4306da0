"""The Cache facade on the in-memory store: hits, misses, what is not cached, TTL, stats."""

from __future__ import annotations

import pytest

from llmemo import NO_EXPIRY, AsyncCache, Cache, CacheRequest, TtlPolicy, UnkeyableError
from llmemo.core.entry import decode
from llmemo.core.request import to_request
from llmemo.stores.memory import AsyncMemoryStore, MemoryStore
from tests.core.helpers import CountingStore, Upstream, answer, chat


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(clock: Clock | None = None, **options: object) -> Cache:
    clock = clock or Clock()
    return Cache(MemoryStore(clock=clock), clock=clock, **options)  # type: ignore[arg-type]


def test_miss_then_hit_calls_upstream_once() -> None:
    cache, upstream = make(), Upstream()
    first = cache.compute(chat(), upstream)
    second = cache.compute(chat(), upstream)
    assert (first.status, second.status) == ("miss", "hit")
    assert first.stored
    assert second.response == answer()
    assert upstream.calls == 1
    assert second.hit is not None and second.hit.usage.total == 15
    assert second.hit.model == "gpt-4o-mini"


def test_lookup_and_store() -> None:
    cache = make()
    assert cache.lookup(chat()) is None
    assert cache.store(chat(), answer())
    hit = cache.lookup(chat("What  is the capital of France? "))
    assert hit is not None and hit.response["choices"][0]["message"]["content"] == "Paris."
    assert cache.lookup(chat(), tenant="other") is None


def test_sdk_object_with_model_dump_is_stored_as_dict() -> None:
    class Dumpable:
        def model_dump(
            self, mode: str = "python", exclude_unset: bool = False
        ) -> dict[str, object]:
            return answer("From an SDK object.")

    cache = make()
    assert (
        cache.get_or_compute(chat(), Dumpable)["choices"][0]["message"]["content"]
        == "From an SDK object."
    )
    assert cache.lookup(chat()) is not None


def test_fn_returning_garbage_is_a_clear_error() -> None:
    with pytest.raises(UnkeyableError, match="model_dump"):
        make().get_or_compute(chat(), lambda: 42)


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        ({"error": {"message": "rate limited"}}, "error"),
        (answer(""), "empty"),
        (answer("Par", finish="length"), "truncated"),
        (
            {
                **answer(),
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [{"id": "t"}],
                        },
                        "finish_reason": "tool_calls",
                    }
                ],
            },
            "tool_calls",
        ),
    ],
)
def test_uncacheable_responses_are_not_stored(response: dict[str, object], reason: str) -> None:
    cache = make()
    result = cache.compute(chat(), Upstream(response))
    assert result.status == "miss" and not result.stored and result.skipped == reason
    assert cache.lookup(chat()) is None
    assert cache.stats().skip_reasons == {reason: 1}


def test_cacheable_false_bypasses_lookup_and_store() -> None:
    cache, upstream = make(), Upstream()
    cache.store(chat(), answer("old"))
    result = cache.compute(chat(), upstream, cacheable=False)
    assert result.status == "bypass" and result.response == answer() and upstream.calls == 1
    assert cache.lookup(chat()).response == answer("old")  # type: ignore[union-attr]


def test_temperature_bound() -> None:
    cache = make(max_temperature=0.5)
    assert not cache.store(chat(temperature=0.9), answer())
    assert cache.store(chat(temperature=0.2), answer())


def test_refresh_replaces_and_no_store_does_not_store() -> None:
    cache = make()
    cache.store(chat(), answer("old"))
    fresh = cache.compute(chat(), Upstream(answer("new")), refresh=True)
    assert fresh.status == "miss"
    assert cache.lookup(chat()).response == answer("new")  # type: ignore[union-attr]
    other = chat("Another question")
    assert cache.compute(other, Upstream(), no_store=True).status == "miss"
    assert cache.lookup(other) is None


def test_ttl_expiry_with_injected_clock() -> None:
    clock = Clock()
    cache = make(clock, ttl=TtlPolicy.build("1h", jitter=0.0))
    cache.store(chat(), answer())
    clock.now += 3599
    assert cache.lookup(chat()) is not None
    clock.now += 2
    assert cache.lookup(chat()) is None


def test_per_call_ttl_and_tag_tiers() -> None:
    clock = Clock()
    cache = make(clock, ttl=TtlPolicy.build("1d", jitter=0.0))
    cache.store(chat("a"), answer(), ttl="10m")
    cache.store(chat("b"), answer(), tags=("volatile",))
    cache.store(chat("c"), answer(), tags=("static",))
    clock.now += 31 * 60
    assert cache.lookup(chat("a")) is None
    assert cache.lookup(chat("b")) is None
    clock.now += 2 * 86400
    assert cache.lookup(chat("c")) is not None


def test_no_expiry_only_when_asked() -> None:
    clock = Clock()
    cache = make(clock, ttl=NO_EXPIRY)
    cache.store(chat(), answer())
    clock.now += 10 * 365 * 86400
    assert cache.lookup(chat()) is not None


def test_rolling_refresh_uses_the_same_round_trip() -> None:
    clock = Clock()
    store = CountingStore(MemoryStore(clock=clock))
    cache = Cache(store, clock=clock, ttl=TtlPolicy.build("1h", jitter=0.0, rolling=True))  # type: ignore[arg-type]
    cache.store(chat(), answer())
    for _ in range(5):
        clock.now += 50 * 60
        assert cache.lookup(chat()) is not None
    before = dict(store.ops)
    cache.lookup(chat())
    assert {k: v - before.get(k, 0) for k, v in store.ops.items() if v != before.get(k, 0)} == {
        "get": 1
    }


def test_a_hit_costs_one_round_trip_and_counters_are_batched() -> None:
    store = CountingStore(MemoryStore())
    cache = Cache(store, flush_interval=3600)  # type: ignore[arg-type]
    cache.store(chat(), answer())
    before = dict(store.ops)
    for _ in range(100):
        assert cache.lookup(chat()) is not None
    assert store.ops["get"] - before.get("get", 0) == 100
    assert store.ops["incr"] == before.get("incr", 0)  # nothing flushed on the hit path
    stats = cache.stats()
    assert stats.hits == 100 and stats.stores == 1
    assert stats.tokens_saved == 1500
    assert stats.dollars_saved > 0


def test_corrupt_entry_is_a_counted_miss_and_is_deleted() -> None:
    store = MemoryStore()
    cache = Cache(store)
    cache.store(chat(), answer())
    (key,) = next(store.scan("llmemo:*:x:*"))
    store.set(key, b"\x00garbage", None)
    upstream = Upstream()
    assert cache.compute(chat(), upstream).status == "miss"
    assert upstream.calls == 1
    assert decode(store.get(key) or b"").response == answer()  # replaced by a good entry
    assert cache.stats().corrupt == 1


def test_invalidate_by_model_tenant_user_tag() -> None:
    cache = make()
    cache.store(chat("1"), answer(), tenant="acme", tags=("faq",))
    cache.store(chat("2"), answer(), tenant="acme", user="u1")
    cache.store(chat("3", model="gpt-4o"), answer(model="gpt-4o"), tenant="globex")
    cache.store(chat("4"), answer(), tenant="globex", tags=("faq",))
    assert cache.invalidate(tag="faq") == 2
    assert cache.invalidate(user="u1") == 1
    assert cache.invalidate(model="gpt-4o") == 1
    assert cache.invalidate() == 0
    cache.store(chat("5"), answer())
    cache.store(chat("6"), answer(), namespace="other")
    assert cache.invalidate() == 1
    assert cache.lookup(chat("6"), namespace="other") is not None
    assert cache.invalidate(namespace="*") == 1


def test_bump_version_invalidates_every_cache_on_the_store() -> None:
    store = MemoryStore()
    a, b = Cache(store, version_ttl=0), Cache(store, version_ttl=0)
    a.store(chat(), answer())
    assert b.lookup(chat()) is not None
    assert a.bump_version() == 1
    assert b.lookup(chat()) is None
    assert b.version() == 1


def test_request_types() -> None:
    cache = make()
    anthropic = {
        "model": "claude-sonnet-4",
        "max_tokens": 100,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hi"}],
    }
    cache.store(
        anthropic,
        {
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4",
            "content": [{"type": "text", "text": "Hello"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 5, "output_tokens": 1},
        },
    )
    assert cache.lookup(anthropic) is not None
    assert cache.lookup({**anthropic, "system": "Be long."}) is None
    with pytest.raises(UnkeyableError):
        cache.lookup("a string")  # type: ignore[arg-type]
    assert isinstance(cache._prepare(chat()).request, CacheRequest)


@pytest.mark.asyncio
async def test_async_cache_miss_then_hit() -> None:
    cache, upstream = AsyncCache(AsyncMemoryStore()), Upstream()
    first = await cache.compute(chat(), upstream.acall)
    second = await cache.compute(chat(), upstream.acall)
    sync_fn = await cache.compute(chat("sync fn"), upstream)
    assert (first.status, second.status, sync_fn.status) == ("miss", "hit", "miss")
    assert upstream.calls == 2
    assert (await cache.lookup(chat())) is not None
    assert (await cache.invalidate()) == 2
    assert (await cache.stats()).hits == 2
    await cache.close()


def test_stale_while_revalidate_serves_stale_and_refreshes_once() -> None:
    import time as _time

    clock = Clock()
    cache = make(clock, ttl=TtlPolicy.build("1h", jitter=0.0), stale_grace="10m")
    upstream = Upstream(answer("new"), delay=0.2)
    cache.store(chat(), answer("old"))
    clock.now += 3601  # past the soft TTL, within the grace period
    results = [cache.compute(chat(), upstream) for _ in range(10)]
    assert {r.status for r in results} == {"stale"}
    assert all(r.response == answer("old") for r in results)
    deadline = _time.monotonic() + 5
    while upstream.calls == 0 or cache.lookup(chat()).response != answer("new"):  # type: ignore[union-attr]
        assert _time.monotonic() < deadline, "the background refresh never landed"
        _time.sleep(0.02)
    assert upstream.calls == 1  # ten stale hits, one refresh
    assert cache.compute(chat(), upstream).status == "hit"
    clock.now += 3600 + 601  # past soft TTL and grace: a plain miss
    assert cache.compute(chat(), upstream).status == "miss"
    assert cache.stats().stale_hits == 10


def test_without_grace_an_expired_entry_is_a_miss() -> None:
    clock = Clock()
    cache = make(clock, ttl=TtlPolicy.build("1h", jitter=0.0))
    cache.store(chat(), answer("old"))
    clock.now += 3601
    assert cache.compute(chat(), Upstream()).status == "miss"


@pytest.mark.asyncio
async def test_async_stale_while_revalidate() -> None:
    import asyncio

    clock = Clock()
    cache = AsyncCache(
        AsyncMemoryStore(MemoryStore(clock=clock)),
        clock=clock,
        ttl=TtlPolicy.build("1h", jitter=0.0),
    )
    upstream = Upstream(answer("new"), delay=0.05)
    await cache.store(chat(), answer("old"), stale_grace="5m")
    clock.now += 3700
    results = await asyncio.gather(
        *(cache.compute(chat(), upstream.acall, stale_grace="5m") for _ in range(10))
    )
    assert {r.status for r in results} == {"stale"}
    for _ in range(200):
        if upstream.calls and (await cache.lookup(chat())).response == answer("new"):  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.01)
    assert upstream.calls == 1


def test_a_repeated_body_is_prepared_from_the_memo_and_keys_as_without_it() -> None:
    cache = Cache(MemoryStore())
    body = chat("memo me")
    first = cache._prepare(body)
    again = cache._prepare(chat("memo me"))
    assert again.sha == first.sha and again.request is first.request  # served by the memo
    fresh = Cache(MemoryStore())._prepare(to_request(body))
    assert fresh.sha == first.sha  # the memo changes nothing about the key
    body["messages"][-1]["content"] = "something else"
    assert cache._prepare(body).sha != first.sha  # a mutated body is a different request
    scoped = cache._prepare(chat("memo me"), tenant="acme")
    assert scoped.sha != first.sha and scoped.scope.tenant == "acme"  # scoped calls bypass it


def test_the_prepared_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmemo.core import facade

    monkeypatch.setattr(facade, "PREPARED_MEMO", 8)
    cache = Cache(MemoryStore())
    shas = [cache._prepare(chat(f"question {i}")).sha for i in range(30)]
    assert len(cache._prepared) <= 8
    assert [cache._prepare(chat(f"question {i}")).sha for i in range(30)] == shas


def test_scoped_calls_are_memoised_without_changing_keys_or_validation() -> None:
    from llmemo import ConfigError
    from llmemo.core.request import Scope, digest

    cache = Cache(MemoryStore(), tags=("base",))
    request = to_request(chat("scoped"))
    first = cache._prepare(request, tenant="acme", user="u1", tags=["x"])
    again = cache._prepare(request, tenant="acme", user="u1", tags=["x"])
    assert again.scope is first.scope and again.sha == first.sha
    expected = Scope("default", "acme", "u1", ("base", "x"))
    assert first.scope == expected and first.sha == digest(request, expected)
    assert cache._prepare(request, tenant="other").sha != first.sha
    assert cache._prepare(request, tenant="acme", user="u2").sha != first.sha
    for _ in range(2):  # a bad scope is refused every time, never remembered
        with pytest.raises(ConfigError):
            cache._prepare(request, namespace="bad namespace!")


def test_big_bodies_are_keyed_without_being_remembered() -> None:
    from llmemo.core.request import MEMO_MAX_BYTES

    cache = Cache(MemoryStore())
    big = chat("x " * MEMO_MAX_BYTES)  # normalised each time: the memos stay small
    first, again = cache._prepare(big), cache._prepare(chat("x " * MEMO_MAX_BYTES))
    assert first.sha == again.sha == Cache(MemoryStore())._prepare(to_request(big)).sha
    assert cache._prepared == {} and cache._shas == {}
    small = cache._prepare(chat("small"))
    assert cache._prepared and small.sha == cache._prepare(chat("small")).sha
