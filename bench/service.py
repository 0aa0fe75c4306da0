"""Service hit throughput on a realistic workload: `llmemo serve` (Redis store) vs a bare Starlette
endpoint returning the same bytes, in one run; plus the miss path's added latency.

The workload (bench/workload.py) is N distinct chat requests built from real questions, with
answers from 200 B to 40 KB. A small answering app serves each request's answer: once as the
upstream that llmemo's misses call, once as the bare endpoint (it reads the body, finds its
answer in a dict and returns those bytes: no cache, no parsing). Every app is its own uvicorn
process (one worker, the HTTP implementation and loop `llmemo serve` uses); one load generator
(raw asyncio, N keep-alive HTTP/1.1 connections, each sending its next request as soon as the
answer is in) drives them in turn, the connections drawing the next request of the order.

Sides: bare; llmemo as shipped (Redis, near cache 1 s, hot answers); llmemo with the near cache
off (near_ttl 0). Both llmemo servers share one Redis database, filled through the service (every
request once, a miss answered by the upstream app). Orders: Zipf (s = 1.0) and uniform over the
first 10,000 requests, uniform over all 100,000 (`--orders`); the best case (one request sent
again and again) is one extra labelled row. Rounds rotate who goes first.

Miss path: `--misses` requests not seen before, one at a time, each sent straight to the upstream
app and then through llmemo (a miss that calls the same upstream), timed back to back.

`--otel` adds a side: llmemo as shipped with `otel` on, under the OpenTelemetry SDK (every span
built and batched, then dropped by a no-op exporter; metrics aggregated in memory), to price the
tracing of a hit.

`--dashboard` adds a side: llmemo as shipped but with the dashboard's rollups off
(`dashboard=False`), to price their collection on the hit path (the shipped side collects them,
writing its rollups every 2 s); the report gives hits/s with collection on / off per order.

Run: .venv/bin/python bench/service.py [--concurrency 32] [--seconds 5] [--rounds 3]
     [--orders zipf:10000,uniform:10000,uniform:100000] [--data PATH] [--otel] [--dashboard]
A private redis-server is started. Not a test: nothing is asserted. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workload import BEST_CASE, Workload, default_data, response_for

KEY = "sk-bench-0123456789"
PATH = "/v1/chat/completions"
TARGET = 0.60
NAMES = {
    "bare": "bare Starlette",
    "llmemo": "llmemo, Redis (shipped)",
    "far": "llmemo, Redis, near cache off",
}
NEAR = {"llmemo": "", "far": "0"}  # near_ttl per side ("" = the shipped default)


# -- the servers (child processes) ------------------------------------------------------------


def answers_app(pairs_file: str) -> Any:
    """Each known request body's answer as fixed bytes: the upstream, and the bare endpoint."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    pairs = orjson.loads(Path(pairs_file).read_bytes())
    answers = {request.encode(): answer.encode() for request, answer in pairs}

    async def answer(request: Request) -> Response:
        body = answers.get(await request.body())
        if body is None:
            return Response(b'{"error":{"message":"unknown request"}}', 404)
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route(PATH, answer, methods=["POST"])])


def llmemo_app(
    store: str, upstream: str, near_ttl: str, otel: bool = False, dashboard: bool = True
) -> Any:
    from llmemo.service import create_app, load_settings

    near = {"near_ttl": near_ttl} if near_ttl else {}  # "": the shipped default
    settings = load_settings(
        store=store,
        openai_base_url=upstream + "/v1",
        anthropic_base_url=upstream,
        otel=otel,
        dashboard=dashboard,
        **near,
    )
    if not otel:
        return create_app(settings)
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Dropped(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Dropped()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return create_app(settings, tracer_provider=tracer_provider, meter_provider=meter_provider)


def run_child(args: argparse.Namespace) -> None:
    import uvicorn

    if args.child == "llmemo":
        app = llmemo_app(
            args.redis_url,
            args.upstream,
            args.near_ttl,
            args.child_otel == "1",
            args.child_dashboard != "0",
        )
    else:
        app = answers_app(args.pairs_file)
        from llmemo.service.app import freeze_heap  # llmemo freezes its heap in its lifespan

        freeze_heap()
    profile = None
    if args.profile_server and args.child == "llmemo":
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        http=args.http,
        loop=args.loop,
    )
    if profile is not None:  # uvicorn returns on SIGTERM (the bench's terminate)
        profile.disable()
        profile.dump_stats(str(Path(args.profile_server) / f"llmemo-{args.port}.prof"))


def start(kind: str, port: int, args: argparse.Namespace, **extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, __file__, "--child", kind, "--port", str(port)]
    command += ["--http", args.http, "--loop", args.loop]
    for name, value in extra.items():
        command += [f"--{name.replace('_', '-')}", value]
    if args.profile_server:
        command += ["--profile-server", args.profile_server]
    process = subprocess.Popen(command)
    deadline = time.monotonic() + 120
    while True:
        try:
            with __import__("socket").create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {kind} server did not start") from None
            time.sleep(0.1)


def stack_names(http: str, loop: str) -> tuple[str, str]:
    """What uvicorn's "auto" resolves to here (httptools and uvloop when installed)."""
    import importlib.util

    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    if loop == "auto":
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return http, loop


# -- the load generator -----------------------------------------------------------------------


def http_request(port: int, body: bytes) -> bytes:
    head = (
        f"POST {PATH} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"authorization: Bearer {KEY}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


_LENGTH = re.compile(rb"content-length: *(\d+)", re.IGNORECASE)
_STATUS = re.compile(rb"x-llmemo-cache: *([a-z]+)", re.IGNORECASE)


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[bytes, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    found = _LENGTH.search(head)
    return head, await reader.readexactly(int(found[1]) if found else 0)


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
        return self.server_cpu / self.requests * 1e6


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _connection(
    port: int,
    until: float,
    wire: list[bytes],
    order: Iterator[int],
    out: list[float],
    bad: list[int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (start := time.perf_counter()) < until:
            head, _ = await exchange(reader, writer, wire[next(order)])
            out.append(time.perf_counter() - start)
            status = _STATUS.search(head)
            if not head.startswith(b"HTTP/1.1 200") or (status and status[1] != b"hit"):
                bad.append(1)
    finally:
        writer.close()
        await writer.wait_closed()


def measure(
    side: str,
    port: int,
    wire: list[bytes],
    order: Iterator[int],
    args: argparse.Namespace,
    seconds: float,
    pids: tuple[int, int],
) -> Round:
    async def load() -> tuple[float, list[float], int]:
        latencies: list[float] = []
        bad: list[int] = []
        start = time.perf_counter()
        until = start + seconds
        await asyncio.gather(
            *(
                _connection(port, until, wire, order, latencies, bad)
                for _ in range(args.concurrency)
            )
        )
        return time.perf_counter() - start, latencies, len(bad)

    before = cpu_seconds(pids[0]), cpu_seconds(pids[1])
    elapsed, latencies, bad = asyncio.run(load())
    server_cpu = cpu_seconds(pids[0]) - before[0]
    redis_cpu = cpu_seconds(pids[1]) - before[1]
    return Round(side, len(latencies), elapsed, latencies, bad, server_cpu, redis_cpu)


async def fill(port: int, wire: list[bytes], concurrency: int) -> dict[bytes, int]:
    """Send every request once (concurrently); how many answers had each cache status."""
    todo = iter(range(len(wire)))
    seen: dict[bytes, int] = {}

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in todo:
                head, _ = await exchange(reader, writer, wire[i])
                status = _STATUS.search(head)
                name = status[1] if status else head[:12]
                seen[name] = seen.get(name, 0) + 1
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return seen


async def misses(
    upstream: int, llmemo: int, bodies: list[bytes]
) -> tuple[list[float], list[float], int]:
    """Each body straight to the upstream, then through llmemo (a miss), back to back."""
    direct: list[float] = []
    through: list[float] = []
    not_missed = 0
    up = await asyncio.open_connection("127.0.0.1", upstream)
    mid = await asyncio.open_connection("127.0.0.1", llmemo)
    for body in bodies:
        start = time.perf_counter()
        await exchange(*up, http_request(upstream, body))
        middle = time.perf_counter()
        head, _ = await exchange(*mid, http_request(llmemo, body))
        direct.append(middle - start)
        through.append(time.perf_counter() - middle)
        status = _STATUS.search(head)
        not_missed += not (status and status[1] == b"miss")
    for _, writer in (up, mid):
        writer.close()
    return direct, through, not_missed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# -- main -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """One server over its rounds: median throughput and CPU, latencies pooled."""

    rps: float
    p50: float
    p99: float
    server_us: float
    redis_us: float
    not_hits: int

    @classmethod
    def of(cls, rounds: list[Round]) -> Side:
        latencies = [x for r in rounds for x in r.latencies]
        return cls(
            statistics.median(r.rps for r in rounds),
            pct(latencies, 0.5),
            pct(latencies, 0.99),
            statistics.median(r.server_us for r in rounds),
            statistics.median(r.redis_cpu / r.requests * 1e6 for r in rounds),
            sum(r.not_hits for r in rounds),
        )


def machine(http: str, loop: str) -> str:
    import redis
    import starlette
    import uvicorn

    import llmemo

    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    server = version.split()[2].removeprefix("v=") if version else "?"
    return (
        f"{model}, {os.cpu_count()} vCPUs, {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, llmemo {llmemo.__version__}, uvicorn "
        f"{uvicorn.__version__} ({http}, {loop}), starlette {starlette.__version__}, "
        f"redis-server {server}, redis-py {redis.__version__}"
    )


def parse_orders(text: str) -> list[tuple[str, int]]:
    out = []
    for item in text.split(","):
        kind, _, size = item.partition(":")
        if kind not in ("zipf", "uniform") or not size.isdigit():
            raise SystemExit(f"bad --orders item {item!r}: use zipf:N or uniform:N")
        out.append((kind, int(size)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--orders", default="zipf:10000,uniform:10000,uniform:100000")
    parser.add_argument("--misses", type=int, default=300, help="miss-path samples (at least 1)")
    parser.add_argument("--data", type=Path, default=None, help="JSONL of questions (a, b)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--http", choices=["auto", "h11", "httptools"], default="auto")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    parser.add_argument("--child", choices=["llmemo", "answers"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    parser.add_argument("--pairs-file", help=argparse.SUPPRESS)
    parser.add_argument("--near-ttl", default="", help=argparse.SUPPRESS)
    parser.add_argument("--otel", action="store_true", help="add llmemo with otel on (SDK)")
    parser.add_argument("--child-otel", default="", help=argparse.SUPPRESS)
    parser.add_argument("--dashboard", action="store_true", help="add llmemo with rollups off")
    parser.add_argument("--child-dashboard", default="1", help=argparse.SUPPRESS)
    parser.add_argument(
        "--profile-server",
        metavar="DIR",
        default="",
        help="cProfile each llmemo server; DIR/llmemo-PORT.prof is written when it stops",
    )
    args = parser.parse_args()
    if args.otel:
        NAMES["otel"] = "llmemo, Redis, --otel (SDK, spans dropped)"
        NEAR["otel"] = ""
    if args.dashboard:
        NAMES["nodash"] = "llmemo, Redis, dashboard rollups off"
        NEAR["nodash"] = ""
    if args.child:
        run_child(args)
        return
    if args.misses < 1:
        parser.error("--misses must be at least 1 (the miss path is part of the report)")
    orders = parse_orders(args.orders)
    run(args, orders)


def run(args: argparse.Namespace, orders: list[tuple[str, int]]) -> None:
    import checkout  # noqa: F401 - the repository root on sys.path, for devtools/

    from devtools.redis_server import RedisServer, free_port

    http, loop = stack_names(args.http, args.loop)
    args.http, args.loop = http, loop
    distinct = max(size for _, size in orders)
    started = time.monotonic()
    work = Workload.build(distinct + args.misses, seed=args.seed, data=args.data or default_data())
    best_answer = response_for(BEST_CASE, "A short, fixed answer of a few sentences. " * 12, 0)
    bodies = [orjson.dumps(r) for r in work.requests[:distinct]]
    fresh = [orjson.dumps(r) for r in work.requests[distinct:]]  # for the miss path
    best = orjson.dumps(BEST_CASE)
    answers = [orjson.dumps(r) for r in work.responses] + [orjson.dumps(best_answer)]
    print(f"workload: {work.describe()} (built in {time.monotonic() - started:.0f} s)")

    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        pairs_file = str(Path(tmp) / "pairs.json")
        everything = [*bodies, *fresh, best]
        Path(pairs_file).write_bytes(
            orjson.dumps(
                [[b.decode(), a.decode()] for b, a in zip(everything, answers, strict=True)]
            )
        )
        redis_server = stack.enter_context(RedisServer())
        sides = [name for name in NAMES if name != "bare"]  # the llmemo servers
        ports = {name: free_port() for name in ("upstream", "bare", *sides)}
        servers = {}
        for name in ("upstream", "bare"):
            servers[name] = start("answers", ports[name], args, pairs_file=pairs_file)
            stack.callback(servers[name].terminate)
        upstream = f"http://127.0.0.1:{ports['upstream']}"
        for name in sides:
            servers[name] = start(
                "llmemo",
                ports[name],
                args,
                redis_url=redis_server.url,
                upstream=upstream,
                near_ttl=NEAR[name],
                **({"child_otel": "1"} if name == "otel" else {}),
                **({"child_dashboard": "0"} if name == "nodash" else {}),
            )
            stack.callback(servers[name].terminate)
        redis_pid = redis_server.process.pid if redis_server.process else os.getpid()

        # the miss path first (every request not seen before), then fill the store
        direct, through, odd = asyncio.run(misses(ports["upstream"], ports["llmemo"], fresh))
        wires = {name: [http_request(ports[name], b) for b in [*bodies, best]] for name in NAMES}
        started = time.monotonic()
        filled = asyncio.run(fill(ports["llmemo"], wires["llmemo"], 64))
        print(
            f"filled {len(bodies) + 1:,} entries through llmemo in {time.monotonic() - started:.0f} s: "
            + ", ".join(f"{k.decode()} {v}" for k, v in filled.items())
        )
        check = asyncio.run(
            same_bytes(ports, wires, range(0, len(bodies), max(1, len(bodies) // 200)))
        )
        print(f"hit bodies equal to bare bodies: {check}")

        load_before = os.getloadavg()[0]
        rows: list[tuple[str, dict[str, Side]]] = []
        cases: list[tuple[str, list[int]]] = [
            (f"{kind}, {size:,} distinct", work_order(work, kind, size, args))
            for kind, size in orders
        ]
        cases.append(("best case: one request repeated", [len(bodies)]))
        names = list(NAMES)
        for label, order in cases:
            for name in names:  # warm up: connections, lazy imports, the order's head
                measure(
                    name,
                    ports[name],
                    wires[name],
                    cycle(order, 1),
                    args,
                    1.0,
                    (servers[name].pid, redis_pid),
                )
            rounds: list[Round] = []
            for number in range(args.rounds):
                shift = number % len(names)
                for name in names[shift:] + names[:shift]:
                    pids = (servers[name].pid, redis_pid)
                    done = measure(
                        name,
                        ports[name],
                        wires[name],
                        cycle(order, number + 2),
                        args,
                        args.seconds,
                        pids,
                    )
                    rounds.append(done)
                    print(
                        f"{label} round {number + 1} {name:>6}: {done.rps:6.0f} req/s  "
                        f"p50 {pct(done.latencies, 0.5):6.2f} ms  server CPU {done.server_us:5.0f} us/req"
                        + (f"  ({done.not_hits} not hits!)" if done.not_hits else "")
                    )
            rows.append((label, {n: Side.of([r for r in rounds if r.side == n]) for n in names}))
        load_after = os.getloadavg()[0]

    print()
    print(report(args, rows, (direct, through, odd), (load_before, load_after)))


def work_order(work: Workload, kind: str, size: int, args: argparse.Namespace) -> list[int]:
    sub = Workload(work.requests[:size], work.responses[:size], work.seed)
    return sub.order(kind, max(200_000, 2 * size))


def cycle(order: list[int], start: int) -> Iterator[int]:
    """The order, from a round-dependent point on, over and over (shared by the connections)."""
    at = (start * 7919) % len(order)
    return itertools.cycle(order[at:] + order[:at])


async def same_bytes(ports: dict[str, int], wires: dict[str, list[bytes]], sample: range) -> str:
    """Whether llmemo's hit bodies are the bare endpoint's bytes (a sample of the requests)."""
    equal = differ = 0
    bare = await asyncio.open_connection("127.0.0.1", ports["bare"])
    ours = await asyncio.open_connection("127.0.0.1", ports["llmemo"])
    for i in sample:
        _, a = await exchange(*bare, wires["bare"][i])
        _, b = await exchange(*ours, wires["llmemo"][i])
        if a == b:
            equal += 1
        else:
            differ += 1
    for _, writer in (bare, ours):
        writer.close()
    return f"{equal} of {equal + differ} sampled"


def report(
    args: argparse.Namespace,
    rows: list[tuple[str, dict[str, Side]]],
    miss: tuple[list[float], list[float], int],
    load: tuple[float, float],
) -> str:
    lines = [
        f"Command: `.venv/bin/python bench/service.py --concurrency {args.concurrency} "
        f"--seconds {args.seconds:g} --rounds {args.rounds} --orders {args.orders} "
        f"--misses {args.misses}{' --dashboard' if args.dashboard else ''}"
        f"{' --otel' if args.otel else ''}`",
        "",
        f"Machine: {machine(args.http, args.loop)}; load average {load[0]:.1f} before the "
        f"rounds, {load[1]:.1f} after.",
        "",
        "| order | server | requests/s | / bare | p50 ms | p99 ms | server CPU µs/req | "
        "CPU: bare / it | redis CPU µs/req | not hits |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for label, sides in rows:
        bare = sides["bare"]
        for name, side in sides.items():
            lines.append(
                f"| {label} | {NAMES[name]} | {side.rps:,.0f} | {side.rps / bare.rps:.2f} | "
                f"{side.p50:.2f} | {side.p99:.2f} | {side.server_us:.0f} | "
                f"{bare.server_us / side.server_us:.2f} | {side.redis_us:.0f} | {side.not_hits} |"
            )
        if not label.startswith("best"):
            for name in ("llmemo", "far"):
                cpu = bare.server_us / sides[name].server_us
                verdicts.append((label, name, sides[name].rps / bare.rps, cpu))
    direct, through, odd = miss
    added = [b - a for a, b in zip(direct, through, strict=True)]
    lines += [
        "",
        f"Miss path ({len(direct)} requests never seen, one at a time; each straight to the "
        f"upstream app, then through llmemo): direct p50 {pct(direct, 0.5):.2f} ms, p99 "
        f"{pct(direct, 0.99):.2f} ms; through llmemo p50 {pct(through, 0.5):.2f} ms, p99 "
        f"{pct(through, 0.99):.2f} ms; added per request p50 {pct(added, 0.5):.2f} ms, p99 "
        f"{pct(added, 0.99):.2f} ms" + (f" ({odd} were not misses!)" if odd else "") + ".",
        "",
        f"Target: llmemo >= {TARGET:.2f} of bare on every order (throughput; in brackets the "
        "server-CPU ratio, what each would reach on a core of its own): "
        + "; ".join(
            f"{label}, {'near on' if name == 'llmemo' else 'near off'}: {ratio:.2f} [{cpu:.2f}] "
            f"({'met' if ratio >= TARGET else 'not met'})"
            for label, name, ratio, cpu in verdicts
        ),
    ]
    if "nodash" in NAMES:
        overhead = [
            (label, sides["llmemo"].rps / sides["nodash"].rps,
             sides["nodash"].server_us / sides["llmemo"].server_us)
            for label, sides in rows
        ]  # fmt: skip
        lines += [
            "",
            "Dashboard rollups (hits/s with collection on / off; target >= 0.95; in brackets the "
            "server-CPU ratio off / on): "
            + "; ".join(
                f"{label}: {ratio:.3f} [{cpu:.3f}] ({'met' if ratio >= 0.95 else 'not met'})"
                for label, ratio, cpu in overhead
            ),
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
