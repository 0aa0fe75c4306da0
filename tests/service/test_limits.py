"""What a connection may cost: header size and time, body time, concurrency; hang-ups stay quiet.

Raw sockets against the real server (uvicorn with llmemo's protocol, as `llmemo serve` runs it),
so nothing between the test and the service fixes up what is sent.
"""

from __future__ import annotations

import socket

import httpx
import orjson
import pytest

from llmemo.service import create_app, load_settings
from llmemo.testing.server import UpstreamServer
from tests.service.conftest import ALICE, Serve, ServiceServer
from tests.service.test_cli import serving

CHAT = b"POST /v1/chat/completions HTTP/1.1\r\nHost: llmemo\r\n"
BODY = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]})


def connect(service: ServiceServer | str) -> socket.socket:
    port = service.port if isinstance(service, ServiceServer) else int(service.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (the socket's timeout bounds
    the wait: a connection left open fails the test)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def status_and_json(data: bytes) -> tuple[int, dict[str, object], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), orjson.loads(body), head.lower()


# -- header size (431) ------------------------------------------------------------------------


def test_a_header_over_the_cap_is_refused_while_it_arrives(
    service: ServiceServer, upstream: UpstreamServer
) -> None:
    with connect(service) as sock:
        sock.sendall(CHAT + b"X-Big: " + b"a" * (200 * 1024))  # never finished: no blank line
        status, body, head = status_and_json(read_all(sock))
    assert status == 431
    assert body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert b"connection: close" in head
    assert upstream.stats().total == 0


def test_headers_over_a_configured_cap_get_431_in_the_providers_shape(
    serve: Serve, upstream: UpstreamServer
) -> None:
    service = serve(max_header_bytes=8192)
    head = b"POST /v1/messages HTTP/1.1\r\nHost: llmemo\r\nanthropic-version: 2023-06-01\r\n"
    with connect(service) as sock:  # complete and sent at once: the app's own check answers
        sock.sendall(head + b"X-Big: " + b"a" * 10_000 + b"\r\nContent-Length: 2\r\n\r\n{}")
        status, body, _ = status_and_json(read_all(sock))
    assert status == 431
    assert body["type"] == "error" and "8192" in body["error"]["message"]  # type: ignore[index]
    assert upstream.stats().total == 0


def test_headers_under_the_cap_are_served(serve: Serve) -> None:
    service = serve(max_header_bytes=8192)
    headers = {"authorization": f"Bearer {ALICE}", "x-note": "a" * 4000}
    answer = httpx.post(service.url + "/v1/chat/completions", content=BODY, headers=headers)
    assert answer.status_code == 200


@pytest.mark.asyncio
async def test_the_app_checks_the_headers_under_any_server() -> None:
    app = create_app(load_settings(store="memory://", max_header_bytes=1024))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://llmemo") as client:
        answer = await client.get("/healthz", headers={"x-big": "a" * 2000})
    assert answer.status_code == 431
    assert answer.json()["error"]["type"] == "invalid_request_error"


# -- slow connections -------------------------------------------------------------------------


def test_slow_headers_get_408_and_the_connection_is_closed(serve: Serve) -> None:
    service = serve(header_timeout=0.5)
    with connect(service) as sock:
        sock.sendall(CHAT + b"X-Slow: a")  # and nothing more
        status, body, head = status_and_json(read_all(sock))
    assert status == 408 and b"connection: close" in head
    assert "LLMEMO_HEADER_TIMEOUT" in body["error"]["message"]  # type: ignore[index]


def test_a_connection_that_sends_nothing_is_closed(serve: Serve) -> None:
    service = serve(header_timeout=0.5)
    with connect(service) as sock:
        assert read_all(sock) == b""


def test_a_slow_body_gets_408_and_the_connection_is_closed(
    serve: Serve, upstream: UpstreamServer
) -> None:
    service = serve(body_timeout=0.5)
    with connect(service) as sock:
        sock.sendall(CHAT + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY[:10])
        status, body, head = status_and_json(read_all(sock))
    assert status == 408 and b"connection: close" in head
    assert "LLMEMO_BODY_TIMEOUT" in body["error"]["message"]  # type: ignore[index]
    with connect(service) as sock:  # in the provider's shape of the route
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: llmemo\r\nContent-Length: 99\r\n\r\n{")
        status, body, _ = status_and_json(read_all(sock))
    assert status == 408 and body["type"] == "error"
    assert upstream.stats().total == 0


def test_the_concurrency_limit_answers_503(serve: Serve) -> None:
    service = serve(limit_concurrency=2)  # uvicorn counts the connection asking, too
    with connect(service) as held:  # answered, then kept alive: it holds one place
        held.sendall(b"GET /healthz HTTP/1.1\r\nHost: llmemo\r\n\r\n")
        assert held.recv(65536).startswith(b"HTTP/1.1 200")
        answer = httpx.get(service.url + "/healthz")
    assert answer.status_code == 503


# -- `llmemo serve` ---------------------------------------------------------------------------


def test_a_client_hanging_up_mid_body_is_not_a_server_error(redis_url: str) -> None:
    args = ("--upstream", "demo", "--max-header-bytes", "8192")
    with serving(*args, REDIS_URL=redis_url) as (url, _):  # fails on a Traceback in the log
        with connect(url) as sock:
            sock.sendall(CHAT + b"X-Big: " + b"a" * 20_000)
            assert status_and_json(read_all(sock))[0] == 431
        for _ in range(3):
            with connect(url) as sock:
                sock.sendall(CHAT + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY[:10])
        for _ in range(3):  # the hang-ups are handled on the loop before these are answered
            assert httpx.get(url + "/healthz").status_code == 200


def test_serve_flags_set_the_limits_with_workers(redis_url: str) -> None:
    args = ("--upstream", "demo", "--workers", "2", "--max-header-bytes", "8192")
    with serving(*args, "--body-timeout", "0.5", REDIS_URL=redis_url) as (url, _):
        for _ in range(4):  # new connections: the kernel spreads them over the workers
            with connect(url) as sock:
                sock.sendall(CHAT + b"X-Big: " + b"a" * 20_000)
                assert status_and_json(read_all(sock))[0] == 431
        with connect(url) as sock:
            sock.sendall(CHAT + b"Content-Length: 100\r\n\r\n{")
            assert status_and_json(read_all(sock))[0] == 408
