"""A local Upstash Redis REST API in front of a real redis-server, for tests and offline demos.

What it implements, from Upstash's REST API page (https://upstash.com/docs/redis/features/restapi):

- "POST Command in Body": `POST /` (or PUT) with a JSON array `[COMMAND, ARG1, ..., ARGN]`; string
  and number arguments. Answers `{"result": ...}` (null, integer, string or array) with 200, or
  `{"error": "..."}` with 400 when the command fails or is refused.
- "Pipelining": `POST /pipeline` with an array of command arrays -> an array of `{"result"}` /
  `{"error"}` items in order, not atomic (a failed command does not stop the others).
- "Transactions": `POST /multi-exec`, the same shapes, run in MULTI/EXEC; a transaction that is
  discarded as a whole (a syntax error, an unsupported command) is one `{"error"}` with 400.
- "Base64 Encoded Responses": with `Upstash-Encoding: base64`, every string in a result is base64,
  except "OK"; without it, invalid UTF-8 in a reply becomes U+FFFD.
- "Security and Authentication": `Authorization: Bearer $TOKEN` or `?_token=$TOKEN`; a missing or
  wrong token is 401 `{"error": "WRONGPASS invalid or missing auth token"}` (the message of
  https://upstash.com/docs/redis/troubleshooting/http_unauthorized).
- "HTTP Codes": 405 for methods other than HEAD, GET, POST and PUT.
- "REST - Redis API Compatibility": blocking commands, WATCH/UNWATCH/DISCARD, MULTI/EXEC as
  commands (TCP-only), SUBSCRIBE & co and connection commands other than PING and ECHO are refused.

Not implemented (404 or ignored): path-style commands (`/set/foo/bar`), `Upstash-Response-Format:
resp2`, `/monitor`, `/subscribe`, read-only tokens, request size limits, `Upstash-Sync-Token`
(one server: every read sees every write). The texts of our own refusals are ours, not Upstash's.
Every request is logged (`requests`), so tests can count HTTP round trips.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

from llmemo.errors import require

require("starlette", "server")
require("uvicorn", "server")
require("redis", "redis")

import redis.asyncio  # noqa: E402
import uvicorn  # noqa: E402
from redis.exceptions import ResponseError  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from llmemo.stores.autopipeline import exchange  # noqa: E402

UNAUTHORIZED = "WRONGPASS invalid or missing auth token"
METHODS = ("HEAD", "GET", "POST", "PUT")
# Documented as unsupported over REST, or changing the state of a pooled connection.
REFUSED = frozenset({
    "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP",
    "MULTI", "EXEC", "WATCH", "UNWATCH", "DISCARD", "MONITOR", "SYNC", "PSYNC", "SHUTDOWN",
    "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE",
    "AUTH", "HELLO", "SELECT", "CLIENT", "QUIT", "RESET", "READONLY", "READWRITE", "CLUSTER",
    "ASKING",
})  # fmt: skip
Command = list[str | int | float]


@dataclass(frozen=True)
class GatewayRequest:
    """One HTTP request as the gateway saw it: its path, commands (names upper-cased) and status."""

    path: str
    commands: tuple[tuple[str, ...], ...]
    status: int


class Control:
    """What a test changes while the gateway runs: an injected failure, a delay, the request log."""

    def __init__(self) -> None:
        self.failure: tuple[int, str] | None = None  # (status, plain-text body) for every request
        self.delay = 0.0  # seconds before answering (a slow network)
        self._log: list[GatewayRequest] = []
        self._lock = threading.Lock()

    def record(self, path: str, commands: Sequence[Command], status: int) -> None:
        shown = tuple(
            tuple(str(a).upper() if i == 0 else str(a) for i, a in enumerate(c)) for c in commands
        )
        with self._lock:
            self._log.append(GatewayRequest(path, shown, status))

    def requests(self) -> list[GatewayRequest]:
        with self._lock:
            return list(self._log)

    def reset(self) -> None:
        with self._lock:
            self._log.clear()


class _Refused(Exception):
    """A request the gateway will not run; the message is the error body."""


def _command(item: Any) -> Command:
    if not isinstance(item, list) or not item or not isinstance(item[0], str):
        raise _Refused("ERR a command is a non-empty JSON array that starts with its name")
    for arg in item:
        if isinstance(arg, bool) or not isinstance(arg, str | int | float):
            raise _Refused(f"ERR arguments are strings or numbers, not {json.dumps(arg)}")
    if item[0].upper() in REFUSED or (
        item[0].upper() in ("XREAD", "XREADGROUP") and "BLOCK" in map(str.upper, map(str, item))
    ):
        raise _Refused(f"ERR Command is not available over REST: '{item[0]}'")
    return item


def _commands(body: Any) -> list[Command]:
    if not isinstance(body, list) or not body:
        raise _Refused("ERR a pipeline is a non-empty JSON array of commands")
    return [_command(item) for item in body]


def _reply(value: Any, b64: bool) -> Any:
    """A RESP2 reply as JSON: integers and null as they are, strings as text or base64."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, list):
        return [_reply(item, b64) for item in value]
    if isinstance(value, ResponseError):
        value = str(value)
    data = value.encode() if isinstance(value, str) else bytes(value)
    if not b64:
        return data.decode("utf-8", errors="replace")
    return "OK" if data == b"OK" else base64.b64encode(data).decode("ascii")


def _item(value: Any, b64: bool) -> dict[str, Any]:
    if isinstance(value, ResponseError):
        return {"error": str(value)}
    return {"result": _reply(value, b64)}


async def _run(pool: redis.asyncio.ConnectionPool, commands: Sequence[Command]) -> list[Any]:
    """Send commands on one connection, in one write; a failed command is its ResponseError."""
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        return await exchange(conn, commands)
    except BaseException:
        await conn.disconnect()
        raise
    finally:
        await pool.release(conn)


async def _transaction(pool: redis.asyncio.ConnectionPool, commands: list[Command]) -> list[Any]:
    """MULTI, the commands, EXEC: the replies, or _Refused when Redis discarded the transaction."""
    replies = await _run(pool, [["MULTI"], *commands, ["EXEC"]])
    queued = [r for r in replies[1:-1] if isinstance(r, ResponseError)]
    if queued:
        raise _Refused(str(queued[0]))
    if isinstance(replies[-1], ResponseError):
        raise _Refused(str(replies[-1]))
    return list(replies[-1])


def _authorised(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        given = request.query_params.get("_token", "")
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def create_app(redis_url: str, token: str, control: Control | None = None) -> Starlette:
    """The gateway app; `redis_url` is the server behind it, `token` the one Bearer token."""
    state = control or Control()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = redis.asyncio.ConnectionPool.from_url(redis_url, protocol=2, socket_timeout=5)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.aclose()

    async def endpoint(request: Request) -> Response:
        path = "/" + request.path_params["path"]
        if state.delay:
            await asyncio.sleep(state.delay)
        if state.failure is not None:
            status, text = state.failure
            state.record(path, [], status)
            return Response(text, status, media_type="text/plain")
        status, body = await _answer(request, path, request.app.state.pool, token, state)
        return JSONResponse(body, status)

    app = Starlette(
        routes=[Route("/{path:path}", endpoint, methods=["DELETE", "OPTIONS", "PATCH", *METHODS])],
        lifespan=lifespan,
    )
    app.state.control = state
    return app


async def _answer(
    request: Request, path: str, pool: redis.asyncio.ConnectionPool, token: str, state: Control
) -> tuple[int, Any]:
    commands: list[Command] = []
    status: int = 200
    body: Any = None
    try:
        if request.method not in METHODS:
            status, body = 405, {"error": f"ERR method {request.method} is not allowed"}
        elif not _authorised(request, token):
            status, body = 401, {"error": UNAUTHORIZED}
        elif path not in ("/", "/pipeline", "/multi-exec") or request.method in ("GET", "HEAD"):
            status, body = 404, {"error": "ERR only POST /, /pipeline, /multi-exec are served here"}
        else:
            try:
                parsed = json.loads(await request.body())
            except ValueError:
                raise _Refused("ERR the request body is not JSON") from None
            b64 = request.headers.get("upstash-encoding", "").lower() == "base64"
            if path == "/":
                commands = [_command(parsed)]
                (reply,) = await _run(pool, commands)
                status, body = (400 if isinstance(reply, ResponseError) else 200), _item(reply, b64)
            else:
                commands = _commands(parsed)
                run = _run if path == "/pipeline" else _transaction
                body = [_item(reply, b64) for reply in await run(pool, commands)]
    except _Refused as exc:
        status, body = 400, {"error": str(exc)}
    except (redis.RedisError, OSError) as exc:
        status, body = 500, {"error": f"ERR the Redis server behind the gateway failed: {exc}"}
    state.record(path, commands, status)
    return status, body


class UpstashGateway:
    """The gateway on 127.0.0.1 (uvicorn in a thread); `stop()` then `start()` keeps the port.

    `store_url` is the llmemo URL for it; `url` and `token` are what `upstash_redis.Redis` takes.
    """

    def __init__(self, redis_url: str, *, token: str = "llmemo-test-token", port: int = 0) -> None:
        self.redis_url = redis_url
        self.token = token
        self.control = Control()
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def store_url(self) -> str:
        return f"upstash+http://:{quote(self.token, safe='')}@127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[GatewayRequest]:
        return self.control.requests()

    def reset(self) -> None:
        """Forget the logged requests, the injected failure and the delay."""
        self.control.reset()
        self.control.failure = None
        self.control.delay = 0.0

    def start(self, timeout: float = 10.0) -> UpstashGateway:
        if self._thread is not None:
            return self
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP, and without
        # it a response written in two parts waits out the client's delayed ACK (40 ms).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        app = create_app(self.redis_url, self.token, self.control)
        config = uvicorn.Config(
            app, lifespan="on", log_config=None, access_log=False, timeout_graceful_shutdown=1
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"upstash:{self.port}", daemon=True
        )
        self._server, self._thread, self._socket = server, thread, sock
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Upstash gateway did not start on {self.url}")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> UpstashGateway:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"UpstashGateway({self.url!r})"
