"""UpstashStore beyond the contract: URLs and the environment, the stored form, requests per call,
errors (wrong token, outage, 5xx, timeout) and the Cache on it, all through the REST gateway."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import redis

from devtools.redis_server import RedisServer
from devtools.upstash_gateway import UpstashGateway
from llmemo import AsyncCache, Cache, CircuitBreaker, TtlPolicy
from llmemo import stores as base
from llmemo.errors import ConfigError, StoreError
from llmemo.stores import AsyncStore, AsyncUpstashStore, UpstashStore
from llmemo.stores.upstash_rest import _http_of, decode, encode, head_chars
from llmemo.stores.upstash_url import ENV_TOKEN, ENV_URL, parse_url
from tests.core.helpers import Upstream, answer, chat
from tests.stores.conftest import Awaited

TOKEN = "AX0sASQgODU4Yj/Y0ZjI+tNmJmZi00=="  # shaped like Upstash's: base64, with / and +
QUOTED = "AX0sASQgODU4Yj%2FY0ZjI+tNmJmZi00=="
FACES = ["sync", "async"]
ENV = {ENV_URL: "https://eu2-fine-owl-3.upstash.io", ENV_TOKEN: TOKEN}


@pytest.fixture(scope="module")
def gateway(redis_server: RedisServer) -> Iterator[UpstashGateway]:
    with UpstashGateway(redis_server.url, token=TOKEN) as gateway:
        yield gateway


@pytest.fixture
def gw(gateway: UpstashGateway, redis_url: str) -> UpstashGateway:
    """The module's gateway (restarted if a test stopped it) over an emptied server."""
    gateway.start()
    gateway.reset()
    return gateway


def make(face: str, url: str, **options: Any) -> AsyncStore:
    """The store for `face`, seen through the async protocol (as in the contract suite)."""
    if face == "sync":
        return Awaited(UpstashStore.from_url(url, **options))
    return AsyncUpstashStore.from_url(url, **options)


def commands(gw: UpstashGateway) -> list[tuple[str, list[tuple[str, ...]]]]:
    """Each HTTP request the gateway saw: its path and its commands (arguments cut to 40 chars)."""
    return [(r.path, [tuple(a[:40] for a in c) for c in r.commands]) for r in gw.requests]


# -- URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "rest_url", "shown"),
    [
        (f"upstash://:{QUOTED}@us1-merry-cat-32748.upstash.io", "https://us1-merry-cat-32748.upstash.io", "upstash://:***@us1-merry-cat-32748.upstash.io"),
        (f"upstash+https://default:{QUOTED}@h.example:8443/db/", "https://h.example:8443/db", "upstash://:***@h.example:8443/db"),
        (f"upstash+http://:{QUOTED}@127.0.0.1:8079", "http://127.0.0.1:8079", "upstash+http://:***@127.0.0.1:8079"),
        ("UPSTASH://", ENV[ENV_URL], "upstash://:***@eu2-fine-owl-3.upstash.io"),
        ("upstash://other.upstash.io", "https://other.upstash.io", "upstash://:***@other.upstash.io"),
        (f"upstash://:{QUOTED}@", ENV[ENV_URL], "upstash://:***@eu2-fine-owl-3.upstash.io"),
    ],
)  # fmt: skip
def test_urls(url: str, rest_url: str, shown: str) -> None:
    config = parse_url(url, ENV)
    assert (config.rest_url, config.token, config.url) == (rest_url, TOKEN, shown)
    assert TOKEN not in repr(config)
    assert (config.timeout, config.connect_timeout, config.retries) == (1.0, 2.0, 0)


def test_options_from_keywords_and_the_query_which_wins() -> None:
    config = parse_url("upstash://?timeout=0.3&retries=2", ENV, timeout=5, connect_timeout=0.5)
    assert (config.timeout, config.connect_timeout, config.retries) == (0.3, 0.5, 2)


@pytest.mark.parametrize(
    ("url", "env", "message"),
    [
        (f"upstash://{QUOTED}@h.upstash.io", ENV, "after a colon"),
        ("upstash://", {}, ENV_URL),
        ("upstash://h.upstash.io", {}, ENV_TOKEN),
        ("redis://:x@h:6379", ENV, "not an Upstash URL"),
        ("upstash:///path", ENV, "needs a host"),
        ("upstash://", {**ENV, ENV_URL: "ftp://h"}, r"must be http\(s\)"),
        ("upstash://?timeout=0", ENV, "must be positive"),
        ("upstash://?retries=-1", ENV, "must be positive"),
        ("upstash://?timeout=soon", ENV, "not a number"),
        ("upstash://?token=x", ENV, "unknown Upstash option"),
    ],
)
def test_bad_urls_fail_in_one_line_without_the_token(
    url: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_url(url, env)
    assert TOKEN not in str(caught.value)
    assert QUOTED not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_from_url_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, gw: UpstashGateway
) -> None:
    monkeypatch.setenv(ENV_URL, gw.url)
    monkeypatch.setenv(ENV_TOKEN, TOKEN)
    store = base.from_url("upstash://")
    assert isinstance(store, UpstashStore)
    assert store.url == f"upstash+http://:***@127.0.0.1:{gw.port}"
    store.set("k", b"v", None)
    assert store.get("k") == b"v"
    store.close()
    assert isinstance(base.async_from_url("upstash://"), AsyncUpstashStore)


def test_an_sdk_without_the_httpx_client_is_refused() -> None:
    with pytest.raises(ConfigError, match="upstash-redis"):
        _http_of(object(), httpx.Client)


# -- the stored form -----------------------------------------------------------------------------


def test_heads_of_base64_cover_every_prefix() -> None:
    for length in range(12):
        value = bytes(range(250, 250 - length, -1))
        for size in range(10):
            assert decode(encode(value)[: head_chars(size)]) == value[: head_chars(size) // 4 * 3]
            assert (decode(encode(value)[: head_chars(size)]) or b"")[:size] == value[:size]


def test_text_this_store_did_not_write_comes_back_as_is() -> None:
    assert decode("not base64!") == b"not base64!"
    assert decode("é") == "é".encode()
    assert decode(None) is None


@pytest.mark.asyncio
@pytest.mark.parametrize("face", FACES)
async def test_values_are_stored_as_base64(face: str, gw: UpstashGateway) -> None:
    store = make(face, gw.store_url)
    await store.set("k", b"\xff\x00\x80", None)
    with redis.Redis.from_url(gw.redis_url) as direct:
        assert direct.get("k") == base64.b64encode(b"\xff\x00\x80")
        direct.set("foreign", b"\xff raw")  # written by something else: a corrupt entry
    assert await store.get("foreign") == "\ufffd raw".encode()
    await store.close()


# -- one HTTP request per call -------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("face", FACES)
async def test_one_request_per_call(face: str, gw: UpstashGateway) -> None:
    store = make(face, gw.store_url)
    v = encode(b"v")
    steps: list[tuple[Any, tuple[str, list[tuple[str, ...]]]]] = [
        (store.set("k", b"v", 1.5), ("/", [("SET", "k", v, "PX", "1500")])),
        (store.set("k", b"v", None), ("/", [("SET", "k", v)])),
        (store.get("k"), ("/", [("GET", "k")])),
        (store.get("k", refresh=60), ("/", [("GETEX", "k", "PX", "60000")])),
        (store.add("lock", b"t", 30), ("/", [("SET", "lock", encode(b"t"), "NX", "PX", "30000")])),
        (store.incr("s", {"a": 1, "b": 0.5}), ("/pipeline", [("HINCRBYFLOAT", "s", "a", "1"), ("HINCRBYFLOAT", "s", "b", "0.5")])),
        (store.counters("s"), ("/", [("HGETALL", "s")])),
        (store.ping(), ("/", [("PING",)])),
    ]  # fmt: skip
    for call, expected in steps:
        gw.reset()
        await call
        assert commands(gw) == [expected]
    for call, name in [
        (store.heads(["k", "lock"], 100), "EVAL"),
        (store.delete_if_equal("lock", b"t"), "EVAL"),
        (store.expire_if_equal("k", b"v", 5), "EVAL"),
        (store.delete(["k"]), "UNLINK"),
    ]:
        gw.reset()
        await call
        assert [(path, [c[0] for c in cs]) for path, cs in commands(gw)] == [("/", [name])]
    gw.reset()
    assert await store.delete([f"k{i}" for i in range(2500)]) == 0
    assert [len(cs[0]) - 1 for _, cs in commands(gw)] == [1000, 1000, 500]  # keys per UNLINK
    await store.close()


# -- errors --------------------------------------------------------------------------------------


async def failure(store: AsyncStore, call: str = "get") -> StoreError:
    try:
        with pytest.raises(StoreError) as caught:
            await (store.get("k") if call == "get" else store.incr("s", {"a": 1}))
        message = str(caught.value)
        assert TOKEN not in message
        assert QUOTED not in message
        assert "\n" not in message
        return caught.value
    finally:
        await store.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("call", ["get", "incr"])  # one command, and a pipeline
async def test_a_wrong_token_is_a_clear_store_error(
    face: str, call: str, gw: UpstashGateway
) -> None:
    error = await failure(make(face, gw.store_url.replace("AX0s", "BAD0")), call)
    assert "HTTP 401: WRONGPASS invalid or missing auth token" in str(error)
    assert f"upstash+http://:***@127.0.0.1:{gw.port}" in str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize("face", FACES)
async def test_an_outage_is_a_store_error(face: str, gw: UpstashGateway) -> None:
    gw.stop()
    assert "ConnectError" in str(await failure(make(face, gw.store_url)))


@pytest.mark.asyncio
@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("call", ["get", "incr"])
async def test_a_5xx_answer_is_a_store_error(face: str, call: str, gw: UpstashGateway) -> None:
    gw.control.failure = (503, "<html>upstream connect error</html>")
    error = await failure(make(face, gw.store_url), call)
    assert "HTTP 503: Service Unavailable" in str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize("face", FACES)
async def test_a_slow_answer_times_out(face: str, gw: UpstashGateway) -> None:
    gw.control.delay = 2.0
    assert "ReadTimeout" in str(await failure(make(face, gw.store_url + "?timeout=0.1")))


@pytest.mark.asyncio
@pytest.mark.parametrize("face", FACES)
async def test_retries_are_off_unless_asked(face: str, gw: UpstashGateway) -> None:
    gw.control.failure = (502, "bad gateway")
    await failure(make(face, gw.store_url))
    assert len(gw.requests) == 1
    gw.reset()
    gw.control.failure = (502, "bad gateway")
    await failure(make(face, gw.store_url, retries=2))
    assert len(gw.requests) == 3


@pytest.mark.asyncio
async def test_a_command_error_names_the_command(gw: UpstashGateway) -> None:
    store = UpstashStore.from_url(gw.store_url)
    store.incr("s", {"a": 1})
    with pytest.raises(StoreError, match=r"upstash GET failed .* HTTP 400: WRONGTYPE"):
        store.get("s")  # a counters hash is not an entry
    store.close()


# -- the Cache on it -----------------------------------------------------------------------------


def test_cache_miss_then_one_request_per_hit(gw: UpstashGateway) -> None:
    for rolling, read in [(False, "GET"), (True, "GETEX")]:
        cache = Cache(
            UpstashStore.from_url(gw.store_url),
            namespace=f"app{read}",
            ttl=TtlPolicy.build("1h", rolling=rolling),
            version_ttl=60,
        )
        upstream = Upstream()
        assert cache.compute(chat(), upstream).status == "miss"
        gw.reset()
        results = [cache.compute(chat(), upstream) for _ in range(5)]
        assert [r.status for r in results] == ["hit"] * 5
        assert all(r.response == answer() for r in results)
        assert upstream.calls == 1
        assert [(r.path, [c[0] for c in r.commands]) for r in gw.requests] == [("/", [read])] * 5
        cache.close()


@pytest.mark.asyncio
async def test_async_cache_miss_then_hit(gw: UpstashGateway) -> None:
    cache = AsyncCache(AsyncUpstashStore.from_url(gw.store_url), version_ttl=60)
    upstream = Upstream()
    assert (await cache.compute(chat(), upstream.acall)).status == "miss"
    gw.reset()
    assert (await cache.compute(chat(), upstream.acall)).status == "hit"
    assert len(gw.requests) == 1
    assert upstream.calls == 1
    await cache.close()


def test_cache_fails_open_on_a_wrong_token_and_an_outage(gw: UpstashGateway) -> None:
    wrong = Cache.from_url(gw.store_url.replace("AX0s", "BAD0"), breaker=CircuitBreaker(1000))
    upstream = Upstream()
    assert [wrong.get_or_compute(chat(), upstream) for _ in range(3)] == [answer()] * 3
    assert upstream.calls == 3
    assert wrong.local_stats().store_errors >= 3

    cache = Cache.from_url(gw.store_url, breaker=CircuitBreaker(threshold=2, reset=60))
    assert cache.compute(chat(), upstream).status == "miss"
    assert cache.compute(chat(), upstream).status == "hit"
    gw.stop()
    results = [cache.compute(chat(), upstream) for _ in range(5)]
    assert [r.response for r in results] == [answer()] * 5
    assert cache.breaker.state == "open"  # no more requests to a store that is down
    wrong.close()
    cache.close()


@pytest.mark.asyncio
async def test_async_cache_fails_open(gw: UpstashGateway) -> None:
    cache = AsyncCache.from_url(gw.store_url.replace("AX0s", "BAD0"))
    upstream = Upstream()
    assert await cache.get_or_compute(chat(), upstream.acall) == answer()
    assert await cache.get_or_compute(chat(), upstream.acall) == answer()
    assert upstream.calls == 2
    await cache.close()


def test_cache_from_the_environment(monkeypatch: pytest.MonkeyPatch, gw: UpstashGateway) -> None:
    monkeypatch.setenv(ENV_URL, gw.url)
    monkeypatch.setenv(ENV_TOKEN, TOKEN)
    with Cache.from_url("upstash://") as cache:
        upstream = Upstream()
        assert cache.compute(chat(), upstream).status == "miss"
        assert cache.compute(chat(), upstream).status == "hit"
        assert TOKEN not in cache.backend.url


def test_a_local_index_rebuilds_from_upstash_records(gw: UpstashGateway) -> None:
    """The semantic layer on Upstash: LocalIndex, its vector records read back through `heads`."""
    import numpy as np

    from llmemo.index import LocalIndex
    from llmemo.index.base import IndexItem, IndexScope

    scope = IndexScope("app", 0, None, "ctx", "test-embedder")
    writer = LocalIndex(UpstashStore.from_url(gw.store_url), 8, log=None)
    vector = np.arange(1, 9, dtype=np.float32)
    writer.add(IndexItem("llmemo:app:0:x:abc", vector, scope, ttl=60))
    reader = LocalIndex(UpstashStore.from_url(gw.store_url), 8, log=None)  # a cold start
    (match,) = reader.search(vector, scope, k=1)
    assert match.key == "llmemo:app:0:x:abc"
    assert match.similarity == pytest.approx(1.0, abs=1e-3)
    writer.close()
    reader.close()
    writer.store.close()
    reader.store.close()


def test_one_store_serves_many_threads(gw: UpstashGateway) -> None:
    store = UpstashStore.from_url(gw.store_url)

    def work(n: int) -> bool:
        value = bytes([n]) * 100
        store.set(f"t{n}", value, 60)
        return all(store.get(f"t{n}", refresh=60) == value for _ in range(20))

    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(work, range(64)))
    store.close()


@pytest.mark.asyncio
async def test_one_async_store_serves_many_tasks(gw: UpstashGateway) -> None:
    store = AsyncUpstashStore.from_url(gw.store_url)
    await asyncio.gather(*(store.set(f"t{n}", bytes([n]), 60) for n in range(100)))
    got = await asyncio.gather(*(store.get(f"t{n}") for n in range(100)))
    assert got == [bytes([n]) for n in range(100)]
    await store.close()
