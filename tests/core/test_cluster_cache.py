"""The Cache on a real Redis Cluster: exact hits, single-flight, invalidation, version bumps, and
a primary's failover under load (the issue 7 acceptance test; it prints what degraded)."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from devtools.redis_cluster import RedisClusterServer, command, parse_info
from llmemo import AsyncCache, Cache, CircuitBreaker
from llmemo.stores import RedisClusterStore
from tests.core.helpers import Upstream, answer, chat


def _port_of(cache: Cache, key: str) -> int:
    """The primary serving the key's slot (as the cache's cluster client knows it)."""
    assert isinstance(cache.backend, RedisClusterStore)
    return int(cache.backend.client.get_node_from_key(key).port)  # type: ignore[no-untyped-call]


def _entry_key(cache: Cache, request: dict[str, Any], **scope: Any) -> str:
    return cache._key_of(cache._prepare(request, **scope), 0)


def test_entry_and_its_lock_share_a_slot(redis_cluster_ready: RedisClusterServer) -> None:
    cache = Cache.from_url(redis_cluster_ready.url)
    node = redis.Redis(port=redis_cluster_ready.ports[0])
    slots = set()
    for i in range(30):
        call = cache._prepare(chat(f"question {i}"))
        entry, lock = cache._key_of(call, 3), cache._lock_of(call, 3)
        slot = node.execute_command("CLUSTER KEYSLOT", entry)
        assert node.execute_command("CLUSTER KEYSLOT", lock) == slot
        slots.add(slot)
    assert len(slots) == 30  # the hash tag is the request's sha: entries spread over slots
    node.close()
    cache.close()


def test_exact_miss_then_hit_on_every_primary(redis_cluster_ready: RedisClusterServer) -> None:
    cache, upstream = Cache.from_url(redis_cluster_ready.url), Upstream()
    requests = [chat(f"question {i}") for i in range(30)]
    assert [cache.compute(r, upstream).status for r in requests] == ["miss"] * 30
    assert [cache.compute(r, upstream).status for r in requests] == ["hit"] * 30
    assert upstream.calls == 30
    ports = {_port_of(cache, _entry_key(cache, r)) for r in requests}
    assert ports == set(redis_cluster_ready.primaries())
    cache.close()


@pytest.mark.asyncio
async def test_async_cache_on_the_cluster(redis_cluster_ready: RedisClusterServer) -> None:
    cache, upstream = AsyncCache.from_url(redis_cluster_ready.url), Upstream()
    for i in range(20):
        await cache.compute(chat(f"q{i}"), upstream.acall, tags=["faq"] if i % 2 else [])
    results = [await cache.compute(chat(f"q{i}"), upstream.acall) for i in range(20)]
    assert all(r.status == "hit" for r in results)
    assert await cache.invalidate(tag="faq") == 10
    assert await cache.lookup(chat("q1")) is None
    assert await cache.lookup(chat("q2")) is not None
    assert await cache.invalidate() == 10
    await cache.close()


def test_threads_on_separate_caches_make_one_call(redis_cluster_ready: RedisClusterServer) -> None:
    caches = [Cache.from_url(redis_cluster_ready.url) for _ in range(4)]
    upstream = Upstream(delay=0.3)
    barrier = threading.Barrier(40)

    def ask(i: int) -> str:
        barrier.wait()
        return caches[i % 4].compute(chat(), upstream).status

    with ThreadPoolExecutor(40) as pool:
        statuses = list(pool.map(ask, range(40)))
    assert upstream.calls == 1, (statuses, [c.local_stats() for c in caches])
    assert statuses.count("miss") == 1
    assert statuses.count("hit") == 39
    for cache in caches:
        cache.close()


def _process(url: str, start: Any, calls: Any, out: Any) -> None:
    cache = Cache.from_url(url)

    def fn() -> dict[str, Any]:
        with calls.get_lock():
            calls.value += 1
        time.sleep(0.5)
        return answer()

    cache.lookup(chat("warm-up"))  # connected before the race starts
    start.wait(timeout=60)
    with ThreadPoolExecutor(5) as pool:
        out.put(list(pool.map(lambda _: cache.compute(chat(), fn).status, range(5))))
    cache.close()


def test_four_processes_make_one_call(redis_cluster_ready: RedisClusterServer) -> None:
    ctx = mp.get_context("spawn")
    start, calls, out = ctx.Barrier(5), ctx.Value("i", 0), ctx.Queue()
    args = (redis_cluster_ready.url, start, calls, out)
    procs = [ctx.Process(target=_process, args=args) for _ in range(4)]
    for p in procs:
        p.start()
    start.wait(timeout=60)
    statuses = [s for _ in procs for s in out.get(timeout=60)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert calls.value == 1
    assert statuses.count("miss") == 1
    assert len(statuses) == 20


def test_invalidate_by_tag_on_every_primary(redis_cluster_ready: RedisClusterServer) -> None:
    writer, reader = (
        Cache.from_url(redis_cluster_ready.url),
        Cache.from_url(redis_cluster_ready.url),
    )
    requests = [chat(f"question {i}") for i in range(60)]
    for i, request in enumerate(requests):
        assert writer.store(request, answer(), tags=["faq"] if i % 3 == 0 else ["news"])
    faq = [r for i, r in enumerate(requests) if i % 3 == 0]
    ports = {_port_of(writer, _entry_key(writer, r)) for r in faq}
    assert ports == set(redis_cluster_ready.primaries())  # the tag's entries are on all of them
    assert all(reader.lookup(r) is not None for r in requests)

    assert writer.invalidate(tag="faq") == 20
    assert all(reader.lookup(r) is None for r in faq)  # seen by every cache at once
    assert all(reader.lookup(r) is not None for r in requests if r not in faq)
    assert writer.invalidate(namespace="*") == 40
    assert all(reader.lookup(r) is None for r in requests)
    writer.close()
    reader.close()


def test_version_bump_reaches_every_cache_within_version_ttl(
    redis_cluster_ready: RedisClusterServer,
) -> None:
    one, two = Cache.from_url(redis_cluster_ready.url), Cache.from_url(redis_cluster_ready.url)
    assert two.version_ttl == 1.0  # the default: how long a cache trusts its known version
    assert one.store(chat(), answer())
    assert two.lookup(chat()) is not None
    bumped = time.monotonic()
    assert one.bump_version() == 1
    assert one.lookup(chat()) is None  # the bumping cache switches at once
    while two.lookup(chat()) is not None:
        assert time.monotonic() - bumped < 1.5
        time.sleep(0.02)
    assert time.monotonic() - bumped <= 1.1
    assert two.store(chat(), answer("new"))  # written under the new version...
    hit = one.lookup(chat())
    assert hit is not None and hit.response == answer("new")  # ...and read by the other
    one.close()
    two.close()


# -- failover -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def failover_cluster() -> Iterator[RedisClusterServer]:
    """A cluster of its own, set up as docs/cluster.md recommends for a cache: the healthy
    primaries keep serving their slots while another primary's are uncovered."""
    args = ["--cluster-require-full-coverage", "no"]
    with RedisClusterServer(primaries=3, replicas=1, node_timeout_ms=1000, args=args) as cluster:
        yield cluster


@dataclass
class Call:
    started: float
    ended: float
    failed_shard: bool
    kind: str  # "lookup" or "store"
    ok: bool  # a hit, or a stored entry


def _slot_owners(cluster: RedisClusterServer) -> dict[int, int]:
    """slot -> port of the primary serving it now (a snapshot: it stays put through a failover)."""
    owners = {}
    for node in cluster.topology():
        if node.is_primary:
            for item in node.slots:
                first, _, last = item.partition("-")
                owners.update(dict.fromkeys(range(int(first), int(last or first) + 1), node.port))
    return owners


def _promoted(port: int) -> bool:
    try:
        return parse_info(command(port, "INFO", "replication"))["role"] == "master"
    except OSError:
        return False


def _report(calls: list[Call], killed: float, promoted: float) -> dict[str, Any]:
    out: dict[str, Any] = {"promoted_after": round(promoted - killed, 2)}
    for shard in ("failed", "healthy"):
        for kind in ("lookup", "store"):
            rows = [
                c
                for c in calls
                if c.kind == kind and c.failed_shard == (shard == "failed") and c.started >= killed
            ]
            bad = [c for c in rows if not c.ok]
            window = (max(c.ended for c in bad) - min(c.started for c in bad)) if bad else 0.0
            out[f"{shard}_{kind}"] = {
                "calls": len(rows),
                "degraded": len(bad),
                "window_s": round(window, 2),
                "slowest_ms": round(max((c.ended - c.started for c in rows), default=0) * 1000),
            }
    return out


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["data-primary", "version-primary"])
def test_failover_under_load(failover_cluster: RedisClusterServer, victim: str) -> None:
    """Kill a primary's process under lookups and stores from 6 threads; its replica takes over.

    data-primary holds neither the namespace's version pointer nor its counters: nothing but
    its own slots may degrade. version-primary holds the version pointer, which every lookup
    needs once per `version_ttl`: today every shard misses from then until the promotion.
    """
    cluster = failover_cluster
    for port in cluster.ports:
        cluster.restart(port)
    cluster.wait_ok(timeout=30)
    cluster.flushall()
    # The Cache's default breaker (3 straight errors open it for every key, 5 s) would make the
    # healthy primaries miss too; the store's per-node gate already saves the dead node's
    # timeouts. See docs/cluster.md.
    cache = Cache.from_url(cluster.url, breaker=CircuitBreaker(threshold=100, reset=1.0))
    requests = [chat(f"question {i}") for i in range(90)]
    for request in requests:
        assert cache.store(request, answer())
    slots = _slot_owners(cluster)

    def port(key: str) -> int:
        return slots[key_slot(key.encode())]

    owner = {i: port(_entry_key(cache, r)) for i, r in enumerate(requests)}
    meta, stats = port(cache._meta_key("default")), port(cache._stats_key("default"))
    if victim == "version-primary":
        dead = meta
    else:
        dead = next(p for p in cluster.primaries() if p not in (meta, stats))
    replica = cluster.replicas_of(dead)[0]

    calls: list[Call] = []
    raised: list[BaseException] = []
    stop = threading.Event()

    def work(worker: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            i = (n * 7 + worker) % len(requests)
            started = time.monotonic()
            try:
                if n % 4:
                    kind, failed, ok = (
                        "lookup",
                        owner[i] == dead,
                        cache.lookup(requests[i]) is not None,
                    )
                else:
                    fresh = chat(f"worker {worker} call {n}")
                    failed = port(_entry_key(cache, fresh)) == dead
                    kind, ok = "store", cache.store(fresh, answer())
            except BaseException as exc:
                raised.append(exc)
                return
            calls.append(Call(started, time.monotonic(), failed, kind, ok))
            time.sleep(0.002)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        killed = time.monotonic()
        cluster.kill(dead)
        while not _promoted(replica):
            assert time.monotonic() - killed < 20, "the replica was not promoted"
            time.sleep(0.01)
        promoted = time.monotonic()
        time.sleep(2.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    report = _report(calls, killed, promoted)
    print(f"\nfailover ({victim}): {report}")

    assert raised == []  # no call raised to the caller
    before = [c for c in calls if c.ended < killed]
    assert before and all(c.ok for c in before)
    if victim == "data-primary":
        assert report["healthy_lookup"]["degraded"] == 0  # other primaries hit throughout
        assert report["healthy_store"]["degraded"] == 0
    else:
        assert report["healthy_lookup"]["calls"] > 0
    # The gate's 0.5 s cooldown, gossip, and (version-primary) the breaker's 1 s reset.
    settled = [c for c in calls if c.started > promoted + 1.5]
    assert any(c.failed_shard and c.kind == "store" for c in settled)
    assert any(c.failed_shard and c.kind == "lookup" for c in settled)
    assert all(c.ok for c in settled)  # writes and hits on the failed slots resumed
    assert report["failed_lookup"]["window_s"] < promoted - killed + 1.5
    cache.close()


@pytest.mark.slow
@pytest.mark.asyncio
async def test_async_failover_under_load(failover_cluster: RedisClusterServer) -> None:
    """The same with AsyncCache (what `llmemo serve` runs): 12 tasks, a data primary killed."""
    cluster = failover_cluster
    for port in cluster.ports:
        cluster.restart(port)
    cluster.wait_ok(timeout=30)
    cluster.flushall()
    cache = AsyncCache.from_url(cluster.url, breaker=CircuitBreaker(threshold=100, reset=1.0))
    requests = [chat(f"question {i}") for i in range(90)]
    for request in requests:
        assert await cache.store(request, answer())
    slots = _slot_owners(cluster)

    def port(key: str) -> int:
        return slots[key_slot(key.encode())]

    taken = {port(cache._meta_key("default")), port(cache._stats_key("default"))}
    dead = next(p for p in cluster.primaries() if p not in taken)
    replica = cluster.replicas_of(dead)[0]
    calls: list[Call] = []
    stop = asyncio.Event()

    async def work(worker: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            request = requests[(n * 7 + worker) % len(requests)] if n % 4 else chat(f"{worker}/{n}")
            failed = port(cache._key_of(cache._prepare(request), 0)) == dead
            started = time.monotonic()
            if n % 4:
                kind, ok = "lookup", await cache.lookup(request) is not None
            else:
                kind, ok = "store", await cache.store(request, answer())
            calls.append(Call(started, time.monotonic(), failed, kind, ok))
            await asyncio.sleep(0.001)

    workers = asyncio.gather(*(work(w) for w in range(12)))  # raises if any call raised
    await asyncio.sleep(1.0)
    killed = time.monotonic()
    cluster.kill(dead)
    while not _promoted(replica):
        assert time.monotonic() - killed < 20, "the replica was not promoted"
        await asyncio.sleep(0.01)
    promoted = time.monotonic()
    await asyncio.sleep(2.5)
    stop.set()
    await workers
    report = _report(calls, killed, promoted)
    print(f"\nfailover (async, data-primary): {report}")

    assert report["healthy_lookup"]["degraded"] == report["healthy_store"]["degraded"] == 0
    settled = [c for c in calls if c.started > promoted + 1.5]
    assert {(c.kind, c.failed_shard) for c in settled} == {
        (kind, failed) for kind in ("lookup", "store") for failed in (True, False)
    }
    assert all(c.ok for c in settled)
    await cache.close()
