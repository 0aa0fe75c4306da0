"""The REST gateway fixture, driven by the official `upstash-redis` SDK: the SDK says it is right.

Where the SDK cannot show a documented shape (status codes, a discarded transaction, `_token`,
raw base64 bodies), plain httpx requests check it against Upstash's REST API page.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest
import redis
import upstash_redis
import upstash_redis.asyncio
from upstash_redis.errors import UpstashError

from devtools.redis_server import RedisServer
from devtools.upstash_gateway import UNAUTHORIZED, UpstashGateway

TEXT = 'héllo \x00 wörld 😀 {braces} "quotes" \\ \n'  # every JSON-escaping case, and non-ASCII


@pytest.fixture(scope="module")
def gateway(redis_server: RedisServer) -> Iterator[UpstashGateway]:
    with UpstashGateway(redis_server.url) as gateway:
        yield gateway


@pytest.fixture
def gw(gateway: UpstashGateway, redis_url: str) -> UpstashGateway:
    """The module's gateway over an emptied server, with a fresh request log and no faults."""
    gateway.reset()
    return gateway


@pytest.fixture(params=["base64", None], ids=["base64", "plain"])
def sdk(request: pytest.FixtureRequest, gw: UpstashGateway) -> Iterator[upstash_redis.Redis]:
    """The SDK as users build it: its default base64 response encoding, and plain JSON text."""
    client = upstash_redis.Redis(
        gw.url, gw.token, rest_encoding=request.param, rest_retries=0, allow_telemetry=False
    )
    yield client
    client.close()  # type: ignore[no-untyped-call]


def post(gw: UpstashGateway, path: str, body: object, **headers: str) -> httpx.Response:
    auth = {"Authorization": f"Bearer {gw.token}"}
    return httpx.post(f"{gw.url}{path}", json=body, headers={**auth, **headers})


def raw(gw: UpstashGateway) -> redis.Redis:
    return redis.Redis.from_url(gw.redis_url)


def test_set_get_getex_getrange(sdk: upstash_redis.Redis, gw: UpstashGateway) -> None:
    assert sdk.set("k", TEXT) is True
    assert sdk.get("k") == TEXT
    assert sdk.get("missing") is None
    assert sdk.getex("k", px=60_000) == TEXT
    with raw(gw) as direct:
        assert 0 < direct.pttl("k") <= 60_000
        assert direct.get("k") == TEXT.encode()  # stored as UTF-8, as the JSON string said
    assert sdk.getrange("k", 0, 4) == "héll"  # byte offsets: é is two bytes
    assert sdk.set("k", "v", nx=True) is False
    assert sdk.set("n", 12.5, px=1000) is True
    assert sdk.get("n") == "12.5"
    assert sdk.ping() == "PONG"
    assert [r.commands[0][0] for r in gw.requests][:3] == ["SET", "GET", "GET"]


def test_pipeline(sdk: upstash_redis.Redis) -> None:
    pipe = sdk.pipeline()
    pipe.set("a", TEXT)
    pipe.incr("counter")
    pipe.hincrbyfloat("h", "cost", 0.1)
    pipe.hincrbyfloat("h", "cost", 0.2)
    pipe.get("a")
    pipe.unlink("a", "nope")
    assert pipe.exec() == [True, 1, 0.1, pytest.approx(0.3), TEXT, 1]
    assert sdk.hgetall("h") == {"cost": "0.3"}


def test_a_failed_command_does_not_stop_a_pipeline(sdk: upstash_redis.Redis) -> None:
    pipe = sdk.pipeline()
    pipe.set("s", "text")
    pipe.incr("s")  # ERR value is not an integer
    pipe.set("after", "yes")
    with pytest.raises(UpstashError, match="not an integer"):
        pipe.exec()
    assert sdk.get("after") == "yes"


def test_multi_exec(sdk: upstash_redis.Redis, gw: UpstashGateway) -> None:
    tx = sdk.multi()
    tx.set("a", "1")
    tx.incr("a")
    tx.get("a")
    assert tx.exec() == [True, 2, "2"]
    assert gw.requests[-1].path == "/multi-exec"
    assert gw.requests[-1].commands == (("SET", "a", "1"), ("INCR", "a"), ("GET", "a"))


def test_eval(sdk: upstash_redis.Redis) -> None:
    assert sdk.eval("return {KEYS[1], ARGV[1], 7, false, {1}}", ["k"], [TEXT]) == [
        "k",
        TEXT,
        7,
        None,
        [1],
    ]
    sdk.set("k", "v")
    script = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
    assert sdk.eval(script, ["k"], ["other"]) == 0
    assert sdk.eval(script, ["k"], ["v"]) == 1
    sha = sdk.script_load("return ARGV[1]")
    assert sdk.evalsha(sha, args=["x"]) == "x"


def test_scan_pages_with_match_and_count(sdk: upstash_redis.Redis) -> None:
    pipe = sdk.pipeline()
    for i in range(120):
        pipe.set(f"llm:{{app}}:{i}", "v")
    pipe.set("other", "v")
    pipe.exec()
    seen: list[str] = []
    cursor, pages = 0, 0
    while True:
        cursor, keys = sdk.scan(cursor, match="llm:{app}:*", count=20)
        seen += keys
        pages += 1
        if cursor == 0:
            break
    assert set(seen) == {f"llm:{{app}}:{i}" for i in range(120)}
    assert pages > 1


def test_wrong_token_is_the_sdks_upstash_error(gw: UpstashGateway) -> None:
    client = upstash_redis.Redis(gw.url, "not-the-token", rest_retries=0, allow_telemetry=False)
    with pytest.raises(UpstashError, match=UNAUTHORIZED):
        client.get("k")
    assert gw.requests[-1].status == 401
    client.close()  # type: ignore[no-untyped-call]


@pytest.mark.asyncio
async def test_the_async_sdk(gw: UpstashGateway) -> None:
    client = upstash_redis.asyncio.Redis(gw.url, gw.token, rest_retries=0, allow_telemetry=False)
    try:
        assert await client.set("k", TEXT, ex=60) is True
        assert await client.getex("k", px=5000) == TEXT
        pipe = client.pipeline()
        pipe.hincrbyfloat("h", "n", 1.5)
        pipe.get("k")
        assert await pipe.exec() == [1.5, TEXT]
        tx = client.multi()
        tx.incr("c")
        assert await tx.exec() == [1]
    finally:
        await client.close()


# -- the documented shapes, checked with plain HTTP ---------------------------------------------


def test_base64_encodes_every_string_but_ok(gw: UpstashGateway) -> None:
    b64 = {"Upstash-Encoding": "base64"}
    assert post(gw, "/", ["SET", "foo", "bar"], **b64).json() == {"result": "OK"}
    assert post(gw, "/", ["GET", "foo"], **b64).json() == {"result": "YmFy"}
    assert post(gw, "/", ["PING"], **b64).json() == {"result": "UE9ORw=="}
    assert post(gw, "/", ["EVAL", "return {1, 'a'}", 0], **b64).json() == {"result": [1, "YQ=="]}
    assert post(gw, "/pipeline", [["GET", "foo"], ["GET", "x"]], **b64).json() == [
        {"result": "YmFy"},
        {"result": None},
    ]


def test_binary_replies(gw: UpstashGateway) -> None:
    with raw(gw) as direct:
        direct.set("bin", b"\xff\x00ok")
    plain = post(gw, "/", ["GET", "bin"]).json()["result"]
    assert plain == "\ufffd\x00ok"  # "replaced with U+FFFD" without base64
    b64 = post(gw, "/", ["GET", "bin"], **{"Upstash-Encoding": "base64"}).json()["result"]
    assert base64.b64decode(b64) == b"\xff\x00ok"


def test_status_codes_and_error_bodies(gw: UpstashGateway) -> None:
    failed = post(gw, "/", ["INCR", "foo", "extra"])
    assert failed.status_code == 400
    assert "wrong number of arguments" in failed.json()["error"]
    assert post(gw, "/", ["BLPOP", "q", 0]).status_code == 400  # blocking: not over REST
    assert post(gw, "/", "not a command").status_code == 400
    assert post(gw, "/", [True]).status_code == 400
    bad_json = httpx.post(gw.url, content=b"[", headers={"Authorization": f"Bearer {gw.token}"})
    assert bad_json.status_code == 400
    assert "error" in bad_json.json()
    unauthorised = httpx.post(gw.url, json=["PING"])
    assert (unauthorised.status_code, unauthorised.json()) == (401, {"error": UNAUTHORIZED})
    wrong = httpx.post(gw.url, json=["PING"], headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert httpx.delete(gw.url, headers={"Authorization": f"Bearer {gw.token}"}).status_code == 405
    by_query = httpx.post(gw.url, params={"_token": gw.token}, json=["PING"])
    assert by_query.json() == {"result": "PONG"}


def test_a_discarded_transaction_is_one_error(gw: UpstashGateway) -> None:
    refused = post(gw, "/multi-exec", [["SET", "a", "1"], ["SET", "b"]])  # a syntax error
    assert refused.status_code == 400
    assert set(refused.json()) == {"error"}
    unsupported = post(gw, "/multi-exec", [["SET", "a", "1"], ["WATCH", "a"]])
    assert set(unsupported.json()) == {"error"}
    with raw(gw) as direct:
        assert direct.exists("a") == 0  # nothing ran
    ran = post(gw, "/multi-exec", [["SET", "a", "x"], ["INCR", "a"], ["GET", "a"]])
    assert ran.status_code == 200
    assert ran.json()[0] == {"result": "OK"}
    assert "not an integer" in ran.json()[1]["error"]  # fails at run time: the rest still runs
    assert ran.json()[2] == {"result": "x"}


def test_injected_failures(gw: UpstashGateway) -> None:
    gw.control.failure = (503, "upstream unavailable")
    answer = post(gw, "/", ["PING"])
    assert (answer.status_code, answer.text) == (503, "upstream unavailable")
    gw.reset()
    assert post(gw, "/", ["PING"]).status_code == 200


def test_stop_and_start_keep_the_port(redis_server: RedisServer, redis_url: str) -> None:
    with UpstashGateway(redis_server.url) as gateway:
        url = gateway.url
        gateway.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.post(url, json=["PING"])
        gateway.start()
        assert gateway.url == url
        assert post(gateway, "/", ["PING"]).json() == {"result": "PONG"}
