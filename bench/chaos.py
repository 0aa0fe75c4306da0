"""Chaos: `llmemo serve` on Redis under load while Redis is paused, killed and restarted, and while
the upstream drops streams mid-way.

Mixed load (hits on a hot set of prompts, misses on fresh ones, some streams) runs over N
keep-alive connections for the whole run. On a fixed timeline Redis is paused (SIGSTOP for 5 s),
later killed (SIGKILL) and restarted 5 s after on the same port (empty: no persistence), and for
a while a share of the requests ask for a stream that the upstream cuts half-way (the test
upstream's `fail-midstream` model).

Every 200 answer is checked against what the test upstream answers for that prompt (a pure
function of the request): a different text is an answer wrongly cached or mixed up. Printed:
client-visible errors by cause (target: none caused by Redis), answers lost or wrong (target 0),
p99 latency during and after each fault, the time until hits resume, and whether a cut stream
was ever stored.

Run: .venv/bin/python bench/chaos.py [--seconds 60] [--connections 64]
A private redis-server, the test upstream and `llmemo serve` are started as child processes.
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import checkout  # noqa: F401 - the repository root on sys.path, for devtools/
import httpx
import orjson

from devtools.redis_server import RedisServer, free_port
from llmemo.testing.openai_api import openai_chat

KEY = "sk-chaos-0123456789"
HOT = 200  # prompts asked again and again: hits once stored
MODEL = "gpt-4o-mini"
DROPPING = "fail-midstream"  # the test upstream cuts these streams half-way


def body_of(prompt: str, model: str = MODEL, stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "temperature": 0,
        "messages": [{"role": "user", "content": prompt}],
    }
    if stream:
        body["stream"] = True
    return body


def expected(prompt: str) -> str:
    """The text the test upstream answers for this prompt (stream or not: the same)."""
    content: str = openai_chat(body_of(prompt), "x", 0)["choices"][0]["message"]["content"]
    return content


@dataclass
class Sample:
    at: float  # seconds since the start
    latency: float
    kind: str  # hot, fresh, stream, drop
    status: int  # HTTP status; 0: the connection failed
    cache: str
    ok: bool  # the answer is what it should be (a cut stream: broken with an error event)
    note: str = ""


@dataclass
class Timeline:
    """When each fault starts and ends (seconds since the start)."""

    pause: tuple[float, float]
    kill: tuple[float, float]
    drops: tuple[float, float]

    @classmethod
    def of(cls, seconds: float) -> Timeline:
        unit = seconds / 60
        return cls((10 * unit, 10 * unit + 5), (25 * unit, 25 * unit + 5), (40 * unit, 50 * unit))


@dataclass
class Run:
    start: float
    timeline: Timeline
    samples: list[Sample] = field(default_factory=list)
    drop_prompts: set[str] = field(default_factory=set)

    def now(self) -> float:
        return time.perf_counter() - self.start


async def ask(client: httpx.AsyncClient, run: Run, kind: str, prompt: str) -> None:
    model = DROPPING if kind == "drop" else MODEL
    stream = kind in ("stream", "drop")
    body = orjson.dumps(body_of(prompt, model, stream))
    started = run.now()
    status, cache, ok, note = 0, "", False, ""
    try:
        if not stream:
            answer = await client.post("/v1/chat/completions", content=body)
            status, cache = answer.status_code, answer.headers.get("x-llmemo-cache", "")
            if status == 200:
                text = answer.json()["choices"][0]["message"]["content"]
                ok = text == expected(prompt)
                note = "" if ok else f"wrong answer: {text[:80]!r}"
            else:
                note = answer.text[:200]
        else:
            async with client.stream("POST", "/v1/chat/completions", content=body) as answer:
                status, cache = answer.status_code, answer.headers.get("x-llmemo-cache", "")
                raw = b"".join([part async for part in answer.aiter_bytes()])
            text, error = read_stream(raw)
            if kind == "drop":
                ok, note = error, "" if error else "a cut stream ended without an error event"
            else:
                ok = status == 200 and not error and text == expected(prompt)
                note = "" if ok else f"stream: error={error} text={text[:60]!r}"
    except httpx.HTTPError as exc:
        note = f"{type(exc).__name__}: {exc}"
    run.samples.append(Sample(started, run.now() - started, kind, status, cache, ok, note))


def read_stream(raw: bytes) -> tuple[str, bool]:
    """The text of an OpenAI chat stream, and whether it carried an error event."""
    text, error = [], False
    for line in raw.split(b"\n"):
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        event = orjson.loads(line[6:])
        if "error" in event:
            error = True
            continue
        for choice in event.get("choices", ()):
            text.append(choice.get("delta", {}).get("content") or "")
    return "".join(text), error


async def connection(client: httpx.AsyncClient, run: Run, seconds: float, number: int) -> None:
    rng = random.Random(number)
    fresh = 0
    while (now := run.now()) < seconds:
        roll = rng.random()
        dropping = run.timeline.drops[0] <= now < run.timeline.drops[1]
        if dropping and roll < 0.1:
            prompt = f"chaos drop {number}-{fresh}"
            fresh += 1
            run.drop_prompts.add(prompt)
            await ask(client, run, "drop", prompt)
        elif roll < 0.8:
            await ask(client, run, "hot", f"chaos hot prompt {rng.randrange(HOT)}")
        elif roll < 0.9:
            await ask(client, run, "stream", f"chaos hot prompt {rng.randrange(HOT)}")
        else:
            fresh += 1
            await ask(client, run, "fresh", f"chaos fresh prompt {number}-{fresh}")


async def fault_driver(run: Run, redis: RedisServer) -> None:
    timeline = run.timeline
    assert redis.process is not None
    await asyncio.sleep(max(0.0, timeline.pause[0] - run.now()))
    os.kill(redis.process.pid, signal.SIGSTOP)
    await asyncio.sleep(max(0.0, timeline.pause[1] - run.now()))
    os.kill(redis.process.pid, signal.SIGCONT)
    await asyncio.sleep(max(0.0, timeline.kill[0] - run.now()))
    redis.process.kill()
    redis.process.wait()
    await asyncio.sleep(max(0.0, timeline.kill[1] - run.now()))
    await asyncio.to_thread(redis.start)


async def drive(
    url: str, redis: RedisServer, seconds: float, connections: int, faults: bool = True
) -> Run:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=30
    ) as client:
        # Store the hot set first, so the run starts with hits.
        warm = Run(time.perf_counter(), Timeline.of(seconds))
        for start in range(0, HOT, connections):
            prompts = [f"chaos hot prompt {i}" for i in range(start, min(HOT, start + connections))]
            await asyncio.gather(*(ask(client, warm, "hot", p) for p in prompts))
        run = Run(time.perf_counter(), Timeline.of(seconds if faults else 1e9))
        await asyncio.gather(
            fault_driver(run, redis) if faults else asyncio.sleep(0),
            *(connection(client, run, seconds, n) for n in range(connections)),
        )
        # A cut stream must never have been stored: ask each again, without a stream.
        for prompt in sorted(run.drop_prompts):
            answer = await client.post(
                "/v1/chat/completions", content=orjson.dumps(body_of(prompt, DROPPING))
            )
            if answer.headers.get("x-llmemo-cache") in ("hit", "semantic"):
                run.samples.append(
                    Sample(run.now(), 0, "drop-check", answer.status_code, "hit", False, prompt)
                )
    return run


# -- report -------------------------------------------------------------------------------------


def p99(samples: list[Sample]) -> str:
    values = sorted(s.latency for s in samples)
    return (
        f"{values[min(len(values) - 1, int(0.99 * len(values)))] * 1000:.0f} ms" if values else "-"
    )


def window(run: Run, start: float, end: float) -> list[Sample]:
    return [s for s in run.samples if start <= s.at < end]


def hits_resume(run: Run, after: float) -> str:
    """Seconds from `after` to the first hit, and to the first half second in which at least
    half of the hot-set requests hit."""
    hot = [s for s in run.samples if s.kind == "hot" and s.at >= after]
    first = min((s.at for s in hot if s.cache == "hit"), default=None)
    if first is None:
        return "never"
    step, start = 0.5, after
    while start < run.now():
        bucket = [s for s in hot if start <= s.at < start + step]
        if bucket and sum(s.cache == "hit" for s in bucket) * 2 >= len(bucket):
            return f"{first - after:.2f} s / {start + step - after:.1f} s"
        start += step
    return f"{first - after:.2f} s / never"


def report(run: Run, seconds: float, connections: int, log: str) -> str:
    samples = [s for s in run.samples if s.kind != "drop-check"]
    t = run.timeline
    redis_faults = [s for s in samples if s.kind != "drop" and not s.ok]
    by_cause: dict[str, int] = {}
    for s in redis_faults:
        cause = f"{s.status or 'no answer'} {s.note[:60]}"
        by_cause[cause] = by_cause.get(cause, 0) + 1
    drops = [s for s in samples if s.kind == "drop"]
    stored_drops = [s for s in run.samples if s.kind == "drop-check"]
    wrong = [s for s in samples if s.status == 200 and not s.ok and s.kind != "drop"]
    hot = [s for s in samples if s.kind == "hot"]
    lines = [
        f"{len(samples)} requests in {seconds:.0f} s over {connections} connections "
        f"({len(samples) / seconds:.0f}/s); hot-set hit ratio {sum(s.cache == 'hit' for s in hot) / max(1, len(hot)):.0%}",
        f"client-visible errors not caused by the upstream: {len(redis_faults)}",
        *(f"  {n} x {cause}" for cause, n in sorted(by_cause.items(), key=lambda kv: -kv[1])),
        f"answers wrong (200 with another text): {len(wrong)}",
        f"cut streams: {len(drops)}, each ended with an error event: "
        f"{sum(s.ok for s in drops)}; stored anyway (a later hit): {len(stored_drops)}",
        f"service log: {log.count('Traceback')} tracebacks",
        "",
        "| phase | window | requests | errors | hot hits | p99 during | p99 5 s after | first hit / half hits after |",
        "|---|---|---|---|---|---|---|---|",
        _row(run, "steady", (0.0, t.pause[0]), None),
        _row(run, "Redis paused (SIGSTOP)", t.pause, t.pause[1]),
        _row(run, "Redis killed, restarted empty", t.kill, t.kill[1]),
        _row(run, "upstream cuts 10 % of streams", t.drops, None),
    ]
    return "\n".join(lines)


def _row(run: Run, name: str, span: tuple[float, float], end: float | None) -> str:
    during = [s for s in window(run, *span) if s.kind != "drop"]
    after = [s for s in window(run, span[1], span[1] + 5) if s.kind != "drop"]
    errors = sum(not s.ok for s in during)
    hot = [s for s in during if s.kind == "hot"]
    hits = f"{sum(s.cache == 'hit' for s in hot) / max(1, len(hot)):.0%}"
    resume = hits_resume(run, end) if end is not None else "-"
    return (
        f"| {name} | {span[0]:.0f}-{span[1]:.0f} s | {len(during)} | {errors} | {hits} | {p99(during)} "
        f"| {p99(after)} | {resume} |"
    )


def machine() -> str:
    import redis
    import starlette
    import uvicorn

    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    server = version.split()[2].removeprefix("v=") if version else "?"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"nproc {os.cpu_count()}, load average {load} at the start, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, uvicorn {uvicorn.__version__}, "
        f"starlette {starlette.__version__}, redis-server {server}, redis-py {redis.__version__}"
    )


def wait_for(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.02, help="upstream seconds per call")
    parser.add_argument(
        "--log-level", default="warning", help="llmemo serve's (trace: each connection)"
    )
    parser.add_argument("--keep-log", help="copy the service log to this file")
    parser.add_argument("--no-faults", action="store_true", help="the same load, no fault")
    args = parser.parse_args()
    print(machine(), flush=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMEMO_")}
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as redis:
        upstream_port, port = free_port(), free_port()
        upstream = subprocess.Popen(
            [sys.executable, "-m", "llmemo.testing.upstream", "--port", str(upstream_port),
             "--latency", str(args.latency)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        log_path = Path(tmp) / "serve.log"
        upstream_url = f"http://127.0.0.1:{upstream_port}"
        env.update(REDIS_URL=redis.url, OPENAI_BASE_URL=upstream_url + "/v1")
        with log_path.open("wb") as log:
            service = subprocess.Popen(
                [sys.executable, "-m", "llmemo", "serve", "--port", str(port),
                 "--log-level", args.log_level],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            wait_for(upstream_url + "/_stats", upstream, "the test upstream")
            url = f"http://127.0.0.1:{port}"
            wait_for(url + "/healthz", service, "llmemo serve")
            run = asyncio.run(drive(url, redis, args.seconds, args.connections, not args.no_faults))
        finally:
            service.send_signal(signal.SIGINT)
            service.wait(timeout=30)
            upstream.terminate()
            upstream.wait(timeout=30)
        print(report(run, args.seconds, args.connections, log_path.read_text(errors="replace")))
        if args.keep_log:
            Path(args.keep_log).write_bytes(log_path.read_bytes())
        odd = [s for s in run.samples if not s.ok and s.kind != "drop"][:10]
        for s in odd:
            print(
                f"  e.g. at {s.at:.1f} s, after {s.latency:.2f} s: {s.kind} {s.status} {s.cache} {s.note}"
            )


if __name__ == "__main__":
    main()
