"""Service hit throughput: `llmemo serve` (Redis store) vs a bare Starlette endpoint, in one run.

Both apps run in their own process under the same uvicorn configuration (one worker, the same HTTP
implementation), and the same load generator drives both: N keep-alive HTTP/1.1 connections written
with raw asyncio, each sending the next request as soon as the previous answer is read. The bare
endpoint reads the request body and returns the very bytes llmemo returns on a hit. Rounds
alternate between the two so that drift in the machine's load hits both alike.

Run: .venv/bin/python bench/service.py [--concurrency 32] [--seconds 5] [--rounds 3] [--write]
A private redis-server and the local fake upstream are started (the upstream answers one miss).
Not a test: nothing is asserted. --write puts the figures into docs/benchmarks.md (own section).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Service"
KEY = "sk-bench-0123456789"
REQUEST = {
    "model": "gpt-4o-mini",
    "temperature": 0,
    "messages": [
        {"role": "system", "content": "You are a concise assistant for an online bookshop."},
        {"role": "user", "content": "Summarise 'Pride and Prejudice' in three sentences."},
    ],
}


# -- the two servers (child processes) --------------------------------------------------------


def make_app(kind: str, store: str, upstream: str, body_file: str, near_ttl: str = "") -> Any:
    if kind == "llmemo":
        from llmemo.service import create_app, load_settings

        near = {"near_ttl": near_ttl} if near_ttl else {}  # "": the shipped default
        settings = load_settings(
            store=store, openai_base_url=upstream + "/v1", anthropic_base_url=upstream, **near
        )
        return create_app(settings)
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    body = Path(body_file).read_bytes()

    async def bare(request: Request) -> Response:
        await request.body()
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/v1/chat/completions", bare, methods=["POST"])])


def run_server(
    kind: str,
    port: int,
    store: str,
    upstream: str,
    body_file: str,
    http: str,
    loop: str,
    near_ttl: str = "",
) -> None:
    import uvicorn

    app = make_app(kind, store, upstream, body_file, near_ttl)
    if kind == "bare":  # llmemo freezes its start-up heap in its lifespan (gc_freeze): same here
        from llmemo.service.app import freeze_heap

        freeze_heap()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        http=http,  # type: ignore[arg-type]
        loop=loop,  # type: ignore[arg-type]
    )


def stack_names(http: str, loop: str) -> tuple[str, str]:
    """What uvicorn's "auto" resolves to here (httptools and uvloop when installed)."""
    import importlib.util

    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    if loop == "auto":
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return http, loop


def asgi_cpu(app: Any, n: int) -> float:
    """CPU µs per hit of the app alone: driven through ASGI in this process, no HTTP server."""
    body = orjson.dumps(REQUEST)
    headers = [
        (b"host", b"llmemo"),
        (b"authorization", f"Bearer {KEY}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }

    async def one() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                assert message["status"] == 200

        await app({**scope, "state": {}}, receive, send)

    async def drive() -> float:
        async with app.router.lifespan_context(app):
            for _ in range(200):
                await one()
            start = time.process_time()
            for _ in range(n):
                await one()
            return (time.process_time() - start) / n * 1e6

    return asyncio.run(drive())


def start_server(
    kind: str,
    port: int,
    redis_url: str,
    upstream: str,
    body_file: str,
    http: str,
    loop: str,
    near_ttl: str = "",
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--port",
        str(port),
        "--redis-url",
        redis_url,
        "--upstream",
        upstream,
        "--body-file",
        body_file,
        "--http",
        http,
        "--loop",
        loop,
        "--near-ttl",
        near_ttl,
    ]
    process = subprocess.Popen(command)
    deadline = time.monotonic() + 30
    while True:
        try:
            with __import__("socket").create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {kind} server did not start") from None
            time.sleep(0.05)


# -- the load generator -----------------------------------------------------------------------


def http_request(port: int) -> bytes:
    body = orjson.dumps(REQUEST)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"authorization: Bearer {KEY}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


_LENGTH = re.compile(rb"content-length: *(\d+)", re.IGNORECASE)


@dataclass
class Round:
    side: str
    requests: int
    seconds: float
    latencies: list[float]
    not_hits: int
    server_cpu: float  # CPU seconds the server process used during the round
    redis_cpu: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def server_us(self) -> float:
        """Server CPU per request: what throughput on a core of its own would be bounded by."""
        return self.server_cpu / self.requests * 1e6


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _connection(port: int, until: float, latencies: list[float], bad: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = http_request(port)
    try:
        while (start := time.perf_counter()) < until:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            found = _LENGTH.search(head)
            await reader.readexactly(int(found[1]) if found else 0)
            latencies.append(time.perf_counter() - start)
            if not head.startswith(b"HTTP/1.1 200") or (
                b"x-llmemo-cache" in head and b"x-llmemo-cache: hit" not in head
            ):
                bad.append(1)
    finally:
        writer.close()
        await writer.wait_closed()


async def load(port: int, concurrency: int, seconds: float) -> tuple[int, float, list[float], int]:
    latencies: list[float] = []
    bad: list[int] = []
    start = time.perf_counter()
    until = start + seconds
    await asyncio.gather(*(_connection(port, until, latencies, bad) for _ in range(concurrency)))
    return len(latencies), time.perf_counter() - start, latencies, len(bad)


def measure(
    side: str, port: int, concurrency: int, seconds: float, server: int, redis_pid: int
) -> Round:
    before = cpu_seconds(server), cpu_seconds(redis_pid)
    requests, elapsed, latencies, bad = asyncio.run(load(port, concurrency, seconds))
    server_cpu = cpu_seconds(server) - before[0]
    redis_cpu = cpu_seconds(redis_pid) - before[1]
    return Round(side, requests, elapsed, latencies, bad, server_cpu, redis_cpu)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# -- main -------------------------------------------------------------------------------------


def machine(http: str, loop: str) -> str:
    import redis
    import starlette
    import uvicorn

    cpu = platform.processor() or platform.machine()
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    server = version.split()[2].removeprefix("v=") if version else "?"
    return (
        f"{os.cpu_count()} vCPUs ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, uvicorn {uvicorn.__version__} ({http}, {loop} loop), "
        f"starlette {starlette.__version__}, redis-server {server}, redis-py {redis.__version__}"
    )


def write_docs(text: str, heading: str) -> None:
    """Put one stack's figures (`### heading` ...) into the service section of docs/benchmarks.md."""
    path = ROOT / "docs" / "benchmarks.md"
    doc = path.read_text() if path.exists() else "# Benchmarks\n"
    start = doc.find(SECTION)
    if start < 0:
        doc, start = doc.rstrip("\n") + "\n\n" + SECTION + "\n\n", len(doc.rstrip("\n")) + 2
    end = doc.find("\n## ", start + len(SECTION))
    end = len(doc) if end < 0 else end + 1
    body = doc[start:end]
    at = body.find(heading + "\n")
    if at < 0:
        body = body.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n\n"
    else:
        stop = body.find("\n### ", at + len(heading))
        rest = body[stop + 1 :] if stop >= 0 else ""
        body = body[:at] + text.rstrip("\n") + "\n\n" + rest
    path.write_text(doc[:start] + body + doc[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--store", help="store URL for llmemo (default: a private redis-server on a free port)"
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run everything at this niceness (negative needs root): shields the run from other jobs",
    )
    parser.add_argument(
        "--also-memory", action="store_true", help="also measure llmemo on memory:// (no Redis)"
    )
    parser.add_argument(
        "--write", action="store_true", help="record the figures in docs/benchmarks.md"
    )
    parser.add_argument(
        "--http",
        choices=["auto", "h11", "httptools"],
        default="auto",
        help="uvicorn HTTP implementation for both servers (auto: as `llmemo serve`)",
    )
    parser.add_argument(
        "--loop",
        choices=["auto", "asyncio", "uvloop"],
        default="auto",
        help="uvicorn event loop for both servers (auto: as `llmemo serve`)",
    )
    parser.add_argument(
        "--also-far",
        action="store_true",
        help="also measure llmemo on Redis with its near cache off (every hit reads Redis)",
    )
    parser.add_argument("--near-ttl", default="", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=["llmemo", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    parser.add_argument("--body-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_server(
            args.child,
            args.port,
            args.redis_url,
            args.upstream,
            args.body_file,
            args.http,
            args.loop,
            args.near_ttl,
        )
        return

    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # inherited by Redis and the servers
    result = run(args)
    if args.write:
        http, loop = stack_names(args.http, args.loop)
        write_docs(_section(args, *result), f"### uvicorn with {http}, {loop} loop")
        print("written to docs/benchmarks.md")


NAMES = {
    "bare": "bare Starlette",
    "llmemo": "llmemo hit, Redis",
    "far": "llmemo hit, Redis, near cache off",
    "memory": "llmemo hit, memory://",
}
NEAR = {"far": "0"}  # per side: its near_ttl setting ("" = the shipped default)


def run(args: argparse.Namespace) -> tuple[dict[str, Side], int, tuple[float, float]]:
    import checkout  # noqa: F401 - the repository root on sys.path, for devtools/
    import httpx

    from devtools.redis_server import RedisServer, free_port
    from llmemo.testing.server import UpstreamServer

    names = [
        "bare",
        "llmemo",
        *(["far"] if args.also_far else []),
        *(["memory"] if args.also_memory else []),
    ]
    stores = {"llmemo": args.store, "far": args.store, "memory": "memory://"}
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        redis_server = stack.enter_context(RedisServer())
        upstream = stack.enter_context(UpstreamServer())
        body_file = str(Path(tmp) / "body.json")
        ports = {name: free_port() for name in names}
        servers: dict[str, subprocess.Popen[bytes]] = {}
        hit = b""
        for name in names[1:]:  # the llmemo servers first: the bare one returns their hit's body
            # the near-cache-off server on its own database: its first request must miss
            store = stores[name] or redis_server.url + ("/1" if name == "far" else "")
            servers[name] = start_server(
                "llmemo",
                ports[name],
                store,
                upstream.url,
                body_file,
                args.http,
                args.loop,
                NEAR.get(name, ""),
            )
            stack.callback(servers[name].terminate)
            url = f"http://127.0.0.1:{ports[name]}/v1/chat/completions"
            answers = [
                httpx.post(url, json=REQUEST, headers={"authorization": f"Bearer {KEY}"})
                for _ in range(2)
            ]
            assert [a.headers["x-llmemo-cache"] for a in answers] == ["miss", "hit"]
            hit = hit or answers[1].content
        Path(body_file).write_bytes(hit)
        servers["bare"] = start_server(
            "bare", ports["bare"], "", upstream.url, body_file, args.http, args.loop
        )
        stack.callback(servers["bare"].terminate)

        load_before = os.getloadavg()[0]
        redis_pid = redis_server.process.pid if redis_server.process else os.getpid()

        def measure_side(name: str, seconds: float) -> Round:
            pid = servers[name].pid
            return measure(name, ports[name], args.concurrency, seconds, pid, redis_pid)

        for name in names:  # warm up: connections, lazy imports
            measure_side(name, 1.0)
        rounds: list[Round] = []
        for number in range(args.rounds):
            shift = number % len(names)
            for name in names[shift:] + names[:shift]:  # rotate who goes first
                done = measure_side(name, args.seconds)
                rounds.append(done)
                print(
                    f"round {number + 1} {name:>6}: {done.rps:6.0f} req/s  "
                    f"p50 {pct(done.latencies, 0.5):6.2f} ms  p99 {pct(done.latencies, 0.99):6.2f} ms"
                    f"  server CPU {done.server_us:5.0f} us/request"
                    + (f"  ({done.not_hits} not hits!)" if done.not_hits else "")
                )
        upstream_calls = upstream.stats().total
        load = (load_before, os.getloadavg()[0])
        asgi = {}
        for name in names:  # the same apps without an HTTP server: what the app itself costs
            kind = "bare" if name == "bare" else "llmemo"
            store = stores.get(name) or redis_server.url + ("/1" if name == "far" else "")
            app = make_app(kind, store, upstream.url, body_file, NEAR.get(name, ""))
            asgi[name] = asgi_cpu(app, 3000)

    sides = {
        name: replace(Side.of([r for r in rounds if r.side == name]), asgi_us=asgi[name])
        for name in names
    }
    print(f"\nmedian of {args.rounds} rounds, concurrency {args.concurrency}, {len(hit)}-byte body")
    for name, side in sides.items():
        print(f"  {NAMES[name]:<22}: {side.describe()}")
        if name != "bare":
            print(
                f"  {'':<22}  ratio to bare: throughput {side.rps / sides['bare'].rps:.2f}, "
                f"server CPU per request {sides['bare'].server_us / side.server_us:.2f}"
            )
    print(f"  target: throughput ratio >= 0.60; upstream calls: {upstream_calls} (the misses)")
    print(
        f"  machine: {machine(*stack_names(args.http, args.loop))}; load average {load[0]:.1f} before, {load[1]:.1f} after"
    )
    return sides, len(hit), load


@dataclass(frozen=True)
class Side:
    """One server over its rounds: median throughput and CPU, latencies pooled."""

    rps: float
    p50: float
    p99: float
    server_us: float
    redis_us: float
    asgi_us: float = 0.0

    @classmethod
    def of(cls, rounds: list[Round]) -> Side:
        latencies = [x for r in rounds for x in r.latencies]
        return cls(
            statistics.median(r.rps for r in rounds),
            pct(latencies, 0.5),
            pct(latencies, 0.99),
            statistics.median(r.server_us for r in rounds),
            statistics.median(r.redis_cpu / r.requests * 1e6 for r in rounds),
        )

    def describe(self) -> str:
        return (
            f"{self.rps:6.0f} req/s  p50 {self.p50:.2f} ms  p99 {self.p99:.2f} ms  "
            f"server CPU {self.server_us:.0f} us/request, redis-server {self.redis_us:.0f}; "
            f"app alone (ASGI) {self.asgi_us:.0f} us"
        )


def _section(
    args: argparse.Namespace, sides: dict[str, Side], size: int, load: tuple[float, float]
) -> str:
    options = (
        ("concurrency", args.concurrency),
        ("seconds", args.seconds),
        ("rounds", args.rounds),
        ("store", args.store),
        ("nice", args.nice),
    )
    command = "bench/service.py " + " ".join(f"--{k} {v}" for k, v in options if v)
    command += " --also-memory" if args.also_memory else ""
    command += " --also-far" if args.also_far else ""
    command += f" --http {args.http} --loop {args.loop}"
    bare = sides["bare"]
    rows = "\n".join(
        f"| {NAMES[name]} | {side.rps:,.0f} | {side.p50:.2f} | {side.p99:.2f} "
        f"| {side.rps / bare.rps:.2f} | {side.server_us:.0f} | {side.redis_us:.0f} "
        f"| {side.asgi_us:.0f} |"
        for name, side in sides.items()
    )
    ratio = sides["llmemo"].rps / bare.rps
    verdict = "met" if ratio >= 0.6 else "**not met**"
    where = ""
    if "memory" in sides:
        memory, far = sides["memory"], sides.get("far")
        fetch = (
            ""
            if far is None
            else f""", and {far.server_us - memory.server_us:.0f} µs more when every hit
reads Redis (near cache off: one `GET`, auto-pipelined, so the hits of one event-loop tick share a
write and what is left is the request's own wake-up, its reply's parsing and its share of the
batch's system calls)"""
        )
        where = f"""
Where a hit's server CPU goes (medians above): {bare.server_us:.0f} µs for uvicorn + bare Starlette,
{memory.server_us:.0f} µs for llmemo with no store round trip (memory://){fetch}. Driven through ASGI alone, without an HTTP server, the
bare and memory:// apps cost {bare.asgi_us:.0f} and {memory.asgi_us:.0f} µs per request (the
Redis figures there are sequential, one unbatched round trip per hit).
memory:// reaches {memory.rps / bare.rps:.2f} of bare.
"""
    http, loop = stack_names(args.http, args.loop)
    return f"""### uvicorn with {http}, {loop} loop

Command: `.venv/bin/python {command} --write` (starts its own `redis-server` and the local
upstream, which answers one miss per llmemo server). Each server is its own uvicorn process (one
worker, {"/".join(stack_names(args.http, args.loop))}, access log off); one load generator (raw asyncio, {args.concurrency} keep-alive
connections, each sending its next request as soon as the answer is in) drives them in turn:
{args.rounds} rounds of {args.seconds:g} s each, the order rotating, after a 1 s warm-up. Throughput and
CPU are the median round; latencies are pooled over the rounds. The request is a 2-message chat
completion with an API key (tenant scope on); the answer is the {size}-byte cached
`chat.completion`, which the bare endpoint returns as fixed bytes after reading the request body.
Server CPU per request is read from /proc (user + system time of the server process over the
round): it bounds a server's throughput on a core of its own, whatever else runs on the machine.
"App alone" drives the same app through ASGI in the benchmark process (3000 sequential hits, no
HTTP server): what the app's own code costs. "llmemo hit, Redis" is `llmemo serve` as shipped:
the Redis store with its near cache (`near_ttl` 1 s; every connection asks for the same prompt, so
the entry is read from Redis once a second and from the process's memory in between) and its hot
answers (docs/service.md: the finished answer of a request hit before, sent while the entry's
stored value is unchanged); "near cache off" is the same with `near_ttl` 0, so every hit reads
the entry from Redis (one `GET`) before its answer is sent.

Machine: {machine(*stack_names(args.http, args.loop))}. The load generator, the servers and Redis share the 2 cores; the 1-minute
load average was {load[0]:.1f} before and {load[1]:.1f} after the run (other jobs on the VM).

| | requests/s | p50 ms | p99 ms | throughput / bare | server CPU µs/req | redis-server CPU µs/req | app alone, CPU µs/req |
|---|---:|---:|---:|---:|---:|---:|---:|
{rows}

**Ratio llmemo (Redis) / bare throughput: {ratio:.2f}** (target >= 0.60: {verdict}).
{where}"""


if __name__ == "__main__":
    main()
