"""RedisStore beyond the contract: URLs, auth, ACL, TLS, unix sockets, failing fast, commands used."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
import redis.asyncio

from devtools.redis_server import RedisServer, free_port
from llmemo.errors import ConfigError, StoreError
from llmemo.stores import AsyncRedisStore, AsyncStore, RedisStore
from tests.stores.conftest import Awaited

ADMIN_PASSWORD = "s3cr@t/pw:x%"  # needs percent-encoding in a URL
ALICE_PASSWORD = "alice-pw-7f3a"
FACES = ["sync", "async"]


def make(face: str, url: str, **options: Any) -> AsyncStore:
    """The store for `face`, seen through the async protocol (as in the contract suite)."""
    if face == "sync":
        return Awaited(RedisStore.from_url(url, **options))
    return AsyncRedisStore.from_url(url, **options)


async def round_trip(store: AsyncStore, key: str = "llmemo:k") -> None:
    try:
        await store.set(key, b"\x00value", 10)
        assert await store.get(key) == b"\x00value"
    finally:
        await store.close()


async def failure(store: AsyncStore, key: str = "llmemo:k") -> StoreError:
    try:
        with pytest.raises(StoreError) as caught:
            await store.get(key)
        return caught.value
    finally:
        await store.close()


@pytest.fixture(scope="module")
def auth_server() -> Iterator[RedisServer]:
    """A server with a default-user password and an ACL user limited to `llmemo:*` keys.

    The password is set once the server runs: RedisServer's readiness probe is an unauthenticated
    PING, which `--requirepass` on the command line would answer with NOAUTH.
    """
    with RedisServer() as server:
        with redis.Redis(port=server.port) as admin:
            admin.execute_command(
                "ACL", "SETUSER", "alice", "on", f">{ALICE_PASSWORD}", "~llmemo:*", "+@all"
            )
            admin.config_set("requirepass", ADMIN_PASSWORD)
        yield server


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A server this test may stop or freeze without disturbing the others."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A server with a TLS port and a self-signed certificate for 127.0.0.1: (port, cert)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    args = ["--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    args += ["--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]
    with RedisServer(args=args):
        yield port, cert


@pytest.mark.asyncio
@pytest.mark.parametrize("face", FACES)
async def test_password_in_url(auth_server: RedisServer, face: str) -> None:
    url = f"redis://:{quote(ADMIN_PASSWORD, safe='')}@127.0.0.1:{auth_server.port}/0"
    store = make(face, url)
    assert store.url == f"redis://:***@127.0.0.1:{auth_server.port}/0"
    await round_trip(store)


@pytest.mark.asyncio
@pytest.mark.parametrize("face", FACES)
async def test_acl_user(auth_server: RedisServer, face: str) -> None:
    url = f"redis://alice:{ALICE_PASSWORD}@127.0.0.1:{auth_server.port}/0"
    await round_trip(make(face, url))
    store = make(face, url)
    assert store.url == f"redis://alice:***@127.0.0.1:{auth_server.port}/0"
    error = await failure(store, key="not-hers")  # outside the user's key pattern
    assert "NoPermissionError" in str(error)
    assert ALICE_PASSWORD not in str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("user", ["", "alice"])
async def test_wrong_password_is_a_store_error_without_the_password(
    auth_server: RedisServer, face: str, user: str
) -> None:
    wrong = "Wr0ng@pass word"
    url = f"redis://{user}:{quote(wrong, safe='')}@127.0.0.1:{auth_server.port}/0"
    message = str(await failure(make(face, url)))
    assert "AuthenticationError" in message
    assert "\n" not in message
    assert "***" in message
    assert wrong not in message
    assert quote(wrong, safe="") not in message


@pytest.mark.asyncio
@pytest.mark.parametrize("face", FACES)
async def test_missing_password_is_a_store_error(auth_server: RedisServer, face: str) -> None:
    message = str(await failure(make(face, auth_server.url)))
    assert "AuthenticationError" in message


@pytest.mark.asyncio
@pytest.mark.parametrize("face", FACES)
async def test_stopped_server_fails_fast(own_server: RedisServer, face: str) -> None:
    store = make(face, own_server.url)
    await store.set("k", b"v", None)  # a pooled connection exists
    own_server.stop()
    started = time.monotonic()
    error = await failure(store)
    assert time.monotonic() - started < 1.0
    assert "ConnectionError" in str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize("face", FACES)
async def test_frozen_server_times_out_instead_of_hanging(
    own_server: RedisServer, face: str
) -> None:
    pooled = make(face, own_server.url)
    await pooled.ping()
    fresh = make(face, own_server.url)  # will have to connect to the frozen server
    assert own_server.process is not None
    os.kill(own_server.process.pid, signal.SIGSTOP)
    try:
        for store in (pooled, fresh):
            started = time.monotonic()
            error = await failure(store)
            assert (
                time.monotonic() - started < 2.0
            )  # default socket timeouts: 0.5 s op, 1 s connect
            assert "TimeoutError" in str(error)
    finally:
        os.kill(own_server.process.pid, signal.SIGCONT)


@pytest.mark.asyncio
@pytest.mark.parametrize("face", FACES)
async def test_recovers_after_a_restart(own_server: RedisServer, face: str) -> None:
    store = make(face, own_server.url)
    await store.set("k", b"v", None)
    own_server.stop()
    own_server.start()
    try:
        assert (
            await store.get("k") is None
        )  # no persistence; the stale pooled connection is replaced
        await store.set("k", b"w", None)
        assert await store.get("k") == b"w"
    finally:
        await store.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("face", FACES)
async def test_tls(tls: tuple[int, Path], face: str) -> None:
    port, cert = tls
    await round_trip(make(face, f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"))
    await round_trip(make(face, f"rediss://127.0.0.1:{port}/0", ssl_ca_certs=str(cert)))
    await round_trip(make(face, f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none"))
    untrusted = await failure(make(face, f"rediss://127.0.0.1:{port}/0"))
    assert "certificate verify failed" in str(untrusted)


@pytest.mark.asyncio
@pytest.mark.parametrize("face", FACES)
async def test_unix_socket(face: str) -> None:
    server = RedisServer()
    socket = server.dir / "redis.sock"
    server.args += ["--unixsocket", str(socket), "--unixsocketperm", "700"]
    with server:
        await round_trip(make(face, f"unix://{socket}?db=1"))
        with redis.Redis(unix_socket_path=str(socket), db=1) as client:
            assert client.get("llmemo:k") == b"\x00value"


@pytest.mark.parametrize("cls", [RedisStore, AsyncRedisStore])
def test_rediss_url_is_parsed_without_connecting(cls: Any) -> None:
    store = cls.from_url(
        "rediss://app:p%40ss@cache.example.com:6380/3?ssl_cert_reqs=none&ssl_ca_certs=/etc/ca.pem"
    )
    pool = store.client.connection_pool
    assert pool.connection_class.__name__ == "SSLConnection"
    kwargs = pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache.example.com", 6380, 3)
    assert (kwargs["username"], kwargs["password"]) == ("app", "p@ss")
    assert (kwargs["ssl_cert_reqs"], kwargs["ssl_ca_certs"]) == ("none", "/etc/ca.pem")
    assert store.url == (
        "rediss://app:***@cache.example.com:6380/3?ssl_cert_reqs=none&ssl_ca_certs=/etc/ca.pem"
    )


@pytest.mark.parametrize("cls", [RedisStore, AsyncRedisStore])
def test_timeouts_are_short_by_default_and_overridable(cls: Any) -> None:
    def timeouts(store: Any) -> tuple[float, float]:
        kwargs = store.client.connection_pool.connection_kwargs
        return kwargs["socket_connect_timeout"], kwargs["socket_timeout"]

    assert timeouts(cls.from_url("redis://localhost/0")) == (1.0, 0.5)
    assert timeouts(cls.from_url("redis://localhost/0", socket_timeout=2)) == (1.0, 2)
    url = "redis://localhost/0?socket_timeout=0.1&socket_connect_timeout=0.2"
    assert timeouts(cls.from_url(url, socket_timeout=2)) == (0.2, 0.1)  # the URL wins


@pytest.mark.parametrize("cls", [RedisStore, AsyncRedisStore])
@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("http://localhost/0", {}, "not a Redis URL"),
        ("redis://:hunter22@localhost/0?bogus=1", {}, "bogus"),
        ("redis://:hunter22@localhost/0?socket_timeout=soon", {}, "socket_timeout"),
        ("rediss://:hunter22@localhost/0?ssl_cert_reqs=maybe", {}, "Certificate Requirements"),
        ("redis://localhost/0", {"decode_responses": True}, "decode_responses"),
        ("redis://localhost/0?decode_responses=yes", {}, "decode_responses"),
    ],
)
def test_bad_urls_and_options_are_config_errors(
    cls: Any, url: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        cls.from_url(url, **options)
    assert "hunter22" not in str(caught.value)


def test_a_wrong_type_is_a_store_error(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    store.incr("stats", {"hits": 1})
    with pytest.raises(StoreError, match="WRONGTYPE"):
        store.get("stats")
    store.close()


def command_counts(client: redis.Redis, action: Any) -> dict[str, int]:
    """The commands the server ran for `action` (besides the bookkeeping of this helper)."""
    client.config_resetstat()
    action()
    stats = client.info("commandstats")
    counts = {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in stats.items()}
    return {name: n for name, n in counts.items() if name not in ("config|resetstat", "info")}


def test_each_operation_is_the_intended_commands(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    admin = redis.Redis.from_url(redis_url)
    store.set("lease", b"t", 10)
    store.delete_if_equal("lease", b"other")  # loads the scripts once
    store.expire_if_equal("lease", b"other", 10)
    expect = {
        "get": ({"get": 1}, lambda: store.get("k")),
        "get refresh": ({"getex": 1}, lambda: store.get("k", refresh=10)),
        "set": ({"set": 1}, lambda: store.set("k", b"v", 10)),
        "set forever": ({"set": 1}, lambda: store.set("k", b"v", None)),
        "add": ({"set": 1}, lambda: store.add("new", b"v", 10)),
        "delete": ({"unlink": 1}, lambda: store.delete(["a", "b"])),
        "delete many": ({"unlink": 3}, lambda: store.delete([f"k{i}" for i in range(1200)])),
        "delete_if_equal": ({"evalsha": 1, "get": 1}, lambda: store.delete_if_equal("lease", b"x")),
        "expire_if_equal": ({"evalsha": 1, "get": 1, "pexpire": 1}, lambda: store.expire_if_equal("lease", b"t", 5)),
        "scan": ({"scan": 1}, lambda: list(store.scan("k*"))),
        "heads": ({"getrange": 2, "exists": 2}, lambda: store.heads(["k", "x"], 4)),
        "incr": ({"hincrbyfloat": 2}, lambda: store.incr("stats", {"a": 1, "b": 0.5})),
        "counters": ({"hgetall": 1}, lambda: store.counters("stats")),
    }  # fmt: skip
    for name, (commands, action) in expect.items():
        assert command_counts(admin, action) == commands, name
    admin.close()
    store.close()


def test_client_and_redacted_url_are_exposed(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url.replace("redis://", "redis://:pw@"))
    assert isinstance(store.client, redis.Redis)
    assert store.url == redis_url.replace("redis://", "redis://:***@")
    store.close()
