"""What the dashboard's rollups cost a cache hit: the service's app called in process (no sockets),
hits of the realistic workload (bench/workload.py) in Zipf and uniform order, rollups off and on,
rounds interleaved.

Both apps hold the same entries (each request stored once, as a miss would) in a memory:// store,
so the figure is the app's own CPU per hit: parsing, lookup, hot answers, metrics and, on the `on`
side, the rollups' counting on the request path plus their background flush (every 2 s, folded
and written to the store). Time is the process's CPU time per request (less sensitive to other
processes on a shared machine than wall time), median of the rounds.

Run: .venv/bin/python bench/rollups.py [--distinct 2000] [--requests 20000] [--rounds 7]
Not a test: nothing is asserted. Prints microseconds per request and the on/off ratio per order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workload import Workload, default_data

KEY = "sk-bench-rollups-0123456789"


@contextlib.asynccontextmanager
async def started(dashboard: bool, work: Workload) -> AsyncIterator[Any]:
    from llmemo.core.request import from_openai
    from llmemo.service import create_app, load_settings

    settings = load_settings(  # shared, with a known key: no upstream call checks the key
        store="memory://",
        openai_base_url="http://upstream.invalid/v1",
        shared=True,
        client_keys=KEY,
        dashboard=dashboard,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        cache = app.state.service.proxy.cache
        for request, response in zip(work.requests, work.responses, strict=True):
            assert await cache.store(from_openai(request, "chat"), response)
        yield app


def scope_of(body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"llmemo"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", b"Bearer " + KEY.encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
    }


async def per_request(app: Any, bodies: list[bytes], order: list[int]) -> float:
    """CPU microseconds per hit request through the whole app, over `order`."""
    statuses: set[str] = set()
    scopes = [scope_of(body) for body in bodies]
    messages = [{"type": "http.request", "body": body, "more_body": False} for body in bodies]

    async def send(event: dict[str, Any]) -> None:
        if event["type"] == "http.response.start":
            for name, value in event["headers"]:
                if name == b"x-llmemo-cache":
                    statuses.add(value.decode())

    begun = time.process_time()
    for i in order:
        message = messages[i]

        async def receive(message: dict[str, Any] = message) -> dict[str, Any]:
            return message

        await app(dict(scopes[i]), receive, send)
    elapsed = time.process_time() - begun
    if statuses != {"hit"}:
        raise RuntimeError(f"not all hits: {sorted(statuses)}")
    return elapsed / len(order) * 1e6


async def main(args: argparse.Namespace) -> None:
    work = Workload.build(args.distinct, seed=1, data=args.data or default_data())
    bodies = [orjson.dumps(r) for r in work.requests]
    print(f"workload: {work.describe()}")
    sides = ["off", "on"]
    orders = {kind: work.order(kind, args.requests) for kind in ("zipf", "uniform")}
    async with contextlib.AsyncExitStack() as stack:
        apps = {
            side: await stack.enter_async_context(started(side == "on", work)) for side in sides
        }
        for app in apps.values():
            await per_request(app, bodies, orders["uniform"][:4000])  # warm up
        figures: dict[tuple[str, str], list[float]] = {}
        for number in range(args.rounds):
            for kind, order in orders.items():
                for side in sides if number % 2 == 0 else sides[::-1]:
                    value = await per_request(apps[side], bodies, order)
                    figures.setdefault((kind, side), []).append(value)
                    await asyncio.sleep(0)  # the flush task may run between rounds too
    load = os.getloadavg()[0]
    print(
        f"Command: `.venv/bin/python bench/rollups.py --distinct {args.distinct} "
        f"--requests {args.requests} --rounds {args.rounds}`; {platform.python_version()}, "
        f"{os.cpu_count()} cores, load average {load:.1f} at the end"
    )
    for kind in orders:
        off, on = (statistics.median(figures[(kind, s)]) for s in sides)
        rounds = {s: ", ".join(f"{v:.1f}" for v in figures[(kind, s)]) for s in sides}
        print(
            f"{kind}: off {off:.1f} us/hit, on {on:.1f} us/hit: hits/s on/off {off / on:.3f} "
            f"(target >= 0.95: {'met' if off / on >= 0.95 else 'not met'}); "
            f"rounds off [{rounds['off']}], on [{rounds['on']}]"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--distinct", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--data", type=Path, default=None, help="JSONL of questions (a, b)")
    asyncio.run(main(parser.parse_args()))
