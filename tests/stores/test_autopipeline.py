"""Auto-pipelined GETs on a real redis-server: batching, per-caller replies, errors, recovery."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio

from devtools.redis_server import RedisServer
from llmemo.errors import StoreError
from llmemo.stores import AsyncRedisStore
from llmemo.stores.autopipeline import GetBatcher, pack_get


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def fill(url: str, n: int) -> None:
    client = redis.Redis.from_url(url)
    client.mset({f"k{i}": f"v{i}".encode() for i in range(n)})
    client.close()


@pytest.mark.asyncio
async def test_concurrent_gets_share_one_pipeline_and_each_gets_its_own_reply(
    redis_url: str,
) -> None:
    fill(redis_url, 40)
    store = AsyncRedisStore.from_url(redis_url)
    keys = [f"k{i}" for i in range(40)] + ["absent"]
    replies = await asyncio.gather(*(store.get(key) for key in keys))
    assert replies == [f"v{i}".encode() for i in range(40)] + [None]
    assert store._gets.batches == 1 and store._gets.batched == 41  # one write for all
    await store.close()


@pytest.mark.asyncio
async def test_a_big_tick_is_split_into_bounded_pipelines(redis_url: str) -> None:
    fill(redis_url, 25)
    store = AsyncRedisStore.from_url(redis_url)
    store._gets.max_batch = 10
    replies = await asyncio.gather(*(store.get(f"k{i}") for i in range(25)))
    assert replies == [f"v{i}".encode() for i in range(25)]
    assert store._gets.batches == 3 and store._gets.batched == 25  # 10 + 10 + 5
    await store.close()


@pytest.mark.asyncio
async def test_sequential_gets_go_alone_and_refresh_sets_the_ttl(redis_url: str) -> None:
    fill(redis_url, 2)
    store = AsyncRedisStore.from_url(redis_url)
    assert await store.get("k0") == b"v0"
    assert await store.get("k1", refresh=120.0) == b"v1"  # GETEX PX in the same round trip
    assert store._gets.batches == 0  # a lone GET is not a pipeline
    raw = redis.Redis.from_url(redis_url)
    assert raw.ttl("k0") == -1 and 110 <= raw.ttl("k1") <= 120
    raw.close()
    await store.close()


@pytest.mark.asyncio
async def test_an_error_reply_fails_only_its_own_caller(redis_url: str) -> None:
    fill(redis_url, 3)
    raw = redis.Redis.from_url(redis_url)
    raw.rpush("a-list", "x")  # GET on a list: WRONGTYPE
    raw.close()
    store = AsyncRedisStore.from_url(redis_url)
    results = await asyncio.gather(
        store.get("k0"), store.get("a-list"), store.get("k2", refresh=60), return_exceptions=True
    )
    assert results[0] == b"v0" and results[2] == b"v2"
    assert isinstance(results[1], StoreError) and "WRONGTYPE" in str(results[1])
    assert await store.get("k1") == b"v1"  # the connection stayed in step
    await store.close()


@pytest.mark.asyncio
async def test_a_cancelled_caller_does_not_disturb_the_others(redis_url: str) -> None:
    fill(redis_url, 3)
    store = AsyncRedisStore.from_url(redis_url)
    doomed = asyncio.ensure_future(store.get("k0"))
    others = [asyncio.ensure_future(store.get(f"k{i}")) for i in (1, 2)]
    await asyncio.sleep(0)  # all three queued in the same tick
    doomed.cancel()
    assert await asyncio.gather(*others) == [b"v1", b"v2"]
    assert doomed.cancelled()
    await store.close()


@pytest.mark.asyncio
async def test_a_stopped_server_fails_every_caller_and_a_restart_recovers(
    own_redis: RedisServer,
) -> None:
    fill(own_redis.url, 4)
    store = AsyncRedisStore.from_url(own_redis.url)
    assert await asyncio.gather(*(store.get(f"k{i}") for i in range(4))) == [
        f"v{i}".encode() for i in range(4)
    ]
    own_redis.stop()
    failures = await asyncio.gather(*(store.get(f"k{i}") for i in range(4)), return_exceptions=True)
    assert all(isinstance(f, StoreError) for f in failures)
    own_redis.start()
    fill(own_redis.url, 4)  # the restarted server is empty (no persistence in tests)
    assert await asyncio.gather(*(store.get(f"k{i}") for i in range(4))) == [
        f"v{i}".encode() for i in range(4)
    ]  # pooled connections that died were replaced, no new store object needed
    await store.close()


@pytest.mark.asyncio
async def test_a_connection_closed_by_the_server_is_replaced_within_the_same_call(
    redis_url: str,
) -> None:
    fill(redis_url, 3)
    client = redis.asyncio.Redis.from_url(redis_url)
    batcher = GetBatcher(client)
    assert await asyncio.gather(*(batcher.get(f"k{i}", None) for i in range(3))) == [
        b"v0",
        b"v1",
        b"v2",
    ]
    raw = redis.Redis.from_url(redis_url)
    raw.client_kill_filter(_type="normal", skipme=True)  # what a Redis restart or idle timeout does
    raw.close()
    assert await asyncio.gather(*(batcher.get(f"k{i}", None) for i in range(3))) == [
        b"v0",
        b"v1",
        b"v2",
    ]
    await batcher.aclose()
    await client.aclose()


def test_a_batch_left_by_a_stopped_loop_does_not_stall_the_next_loop(redis_url: str) -> None:
    fill(redis_url, 1)
    store = AsyncRedisStore.from_url(redis_url)
    dead = asyncio.new_event_loop()
    store._gets._pending.append(("k0", None, dead.create_future()))  # never flushed
    store._gets._loop = dead
    dead.close()

    async def read() -> bytes | None:
        try:
            return await asyncio.wait_for(store.get("k0"), 5)
        finally:
            await store.close()

    assert asyncio.run(read()) == b"v0"


def test_get_and_getex_are_packed_as_redis_py_packs_them() -> None:
    conn = redis.asyncio.Connection()
    for key in ("llmemo:default:0:x:ab12", "clé:ünïcödé:✓", ""):
        assert pack_get(key, None) == b"".join(conn.pack_command("GET", key))
        assert pack_get(key, 90_000) == b"".join(conn.pack_command("GETEX", key, "PX", 90_000))


@pytest.mark.asyncio
async def test_a_batch_that_times_out_fails_its_callers_and_its_late_replies_reach_no_one(
    own_redis: RedisServer,
) -> None:
    """One deadline covers a batch's replies: past it every caller fails, and the connection is
    dropped, so the replies Redis sends late can never be read as the next batch's."""
    fill(own_redis.url, 4)
    client = redis.asyncio.Redis.from_url(own_redis.url, socket_timeout=0.2)
    batcher = GetBatcher(client)
    blocker = redis.Redis.from_url(own_redis.url)
    busy = (  # a script that keeps the server busy for 0.6 s
        "local t = redis.call('TIME') local n repeat n = redis.call('TIME') "
        "until (n[1] - t[1]) * 1e6 + (n[2] - t[2]) > 600000"
    )
    sleeper = asyncio.get_running_loop().run_in_executor(None, blocker.eval, busy, 0)
    await asyncio.sleep(0.05)  # the script is running: the server answers nothing until it ends
    failures = await asyncio.gather(
        *(batcher.get(f"k{i}", None) for i in range(4)), return_exceptions=True
    )
    assert all(isinstance(f, redis.TimeoutError) for f in failures), failures
    await sleeper
    assert await asyncio.gather(*(batcher.get(f"k{i}", None) for i in (3, 2, 1, 0))) == [
        b"v3",
        b"v2",
        b"v1",
        b"v0",
    ]
    blocker.close()
    await batcher.aclose()
    await client.aclose()


def test_a_sync_get_goes_straight_to_a_pooled_connection(redis_url: str) -> None:
    # Every sync hit is one GET: it skips redis-py's per-command machinery (execute_command).
    from llmemo.stores import RedisStore

    fill(redis_url, 2)
    store = RedisStore.from_url(redis_url)
    commands: list[tuple[object, ...]] = []
    run = store.client.execute_command

    def counted(*args: object, **options: object) -> object:
        commands.append(args)
        return run(*args, **options)

    store.client.execute_command = counted  # type: ignore[method-assign]
    assert store.get("k0") == b"v0"
    assert store.get("k1", refresh=120.0) == b"v1"  # GETEX PX
    assert store.get("absent") is None
    assert commands == []
    store.client.execute_command = run  # type: ignore[method-assign]
    assert 0 < store.client.pttl("k1") <= 120_000
    store.close()


def test_a_sync_get_on_a_killed_connection_reconnects_once(redis_url: str) -> None:
    from llmemo.stores import RedisStore

    fill(redis_url, 1)
    store = RedisStore.from_url(redis_url)
    assert store.get("k0") == b"v0"
    admin = redis.Redis.from_url(redis_url)
    admin.client_kill_filter(_type="normal", skipme=True)  # the store's pooled connection dies
    assert store.get("k0") == b"v0"  # reconnected, sent again
    admin.hset("counters", "n", 1)
    with pytest.raises(StoreError):  # a command's own error reply: raised, the connection kept
        store.get("counters")
    assert store.get("k0") == b"v0"
    admin.close()
    store.close()
