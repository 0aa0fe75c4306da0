"""`llmemo top`: the dashboard's headline figures, live in the terminal (docs/service.md).

It reads the rollups every `llmemo serve` instance keeps in the store (no service needed), or asks
a service's `GET /admin/stats` with `--url` and the admin token from `LLMEMO_ADMIN_TOKEN`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from llmemo.cli.main import STORE_HELP, app, fail
from llmemo.errors import LLMemoError
from llmemo.stores.base import async_from_url, redact, store_url

if TYPE_CHECKING:
    from rich.console import Group

BARS = " ▁▂▃▄▅▆▇█"
TOKEN_ENV = "LLMEMO_ADMIN_TOKEN"
Fetch = Callable[[], dict[str, Any]]


def sparkline(values: list[float]) -> str:
    """One character per value, its height relative to the largest."""
    top = max(values, default=0)
    if not top:
        return BARS[0] * len(values)
    return "".join(BARS[min(8, round(8 * v / top))] if v else BARS[0] for v in values)


def _money(value: float) -> str:
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _ms(pair: dict[str, float]) -> str:
    return f"{pair['p50']:.2f} / {pair['p99']:.2f}"


def frame(stats: dict[str, Any], source: str) -> Group:
    """One screen of figures from an /admin/stats answer."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    totals, health, semantic = stats["totals"], stats["health"], stats["semantic"]
    requests = totals["requests"]
    hits = totals["exact"] + totals["semantic"] + totals["stale"]
    at = time.strftime("%H:%M:%S", time.localtime(stats["now"]))
    title = Text.assemble(
        ("llmemo top", "bold"),
        f"  {source}  last {stats['window']}  instances {stats['instances']}  ",
        ("breaker ", ""),
        (health["breaker"], "green" if health["breaker"] == "closed" else "bold red"),
        f"  {at}",
    )
    answers = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    for name in ("requests", "hit ratio", "exact", "semantic", "stale", "miss", "bypass"):
        answers.add_column(name, justify="right")
    answers.add_row(
        str(requests),
        f"{hits / requests:.1%}" if requests else "-",
        *(str(totals[s]) for s in ("exact", "semantic", "stale", "miss", "bypass")),
    )
    money = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    for name in ("tokens saved", "$ saved", "$ spent"):
        money.add_column(name, justify="right")
    money.add_row(
        f"{totals['tokens_saved']:,}",
        _money(totals["dollars_saved"]),
        _money(totals["dollars_spent"]),
    )
    latency = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    latency.add_column("p50 / p99 ms")
    for name in ("hit", "miss", "upstream", "store"):
        latency.add_column(name, justify="right")
    latency.add_row(
        "",
        *(_ms(totals["latency_ms"][k]) for k in ("hit", "miss", "upstream")),
        _ms(health["store_ms"]),
    )
    series = [float(point["requests"]) for point in stats["series"]]
    trend = Text.assemble(("requests ", "bold"), sparkline(series))
    by = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    for name in ("top", "name", "requests", "hit ratio", "$ saved"):
        by.add_column(name, justify="left" if name in ("top", "name") else "right")
    for dimension, rows in stats["by"].items():
        for row in rows[:5]:
            by.add_row(
                dimension,
                str(row["name"])[:40],
                str(row["requests"]),
                f"{row['hit_ratio']:.1%}",
                _money(row["dollars_saved"]),
            )
    served = sum(b[2] for b in semantic["served"])
    near = sum(b[2] for b in semantic["near_miss"])
    refusals = ", ".join(f"{k} {v}" for k, v in semantic["guard_refusals"].items()) or "none"
    flight, warm = health["singleflight"], health["warm"]
    lines = [
        f"semantic: served {served}, near misses {near}, refused: {refusals}, "
        f"wrong-hit reports {semantic['wrong_hit_reports']}",
        f"single-flight: {flight['leaders']} leaders, {flight['followers']} followers   "
        f"rate-limited {health['rate_limited']}   warm: {warm['runs']} runs, "
        f"{warm['items_ok']} ok, {warm['items_failed']} failed",
    ]
    lines += [f"store error {_clock(e['at'])}: {e['error']}" for e in health["store_errors"][:3]]
    return Group(title, answers, money, latency, trend, by, Text("\n".join(lines)))


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def from_store(url: str, window: str) -> Fetch:
    """Read the rollups in the store at `url` (one connection per read)."""

    from llmemo.service.rollup_report import WINDOWS
    from llmemo.service.rollups import read_stats

    async def read() -> dict[str, Any]:
        store = async_from_url(url)
        try:
            return await read_stats(store, "llmemo", WINDOWS[window], time.time())
        finally:
            await store.close()

    return lambda: asyncio.run(read())


def from_service(url: str, window: str, token: str) -> Fetch:
    """Ask a service's GET /admin/stats."""
    import httpx

    def read() -> dict[str, Any]:
        try:
            answer = httpx.get(
                url.rstrip("/") + "/admin/stats",
                params={"window": window},
                headers={"authorization": f"Bearer {token}"},
                timeout=10,
            )
        except httpx.HTTPError as exc:
            fail(f"cannot reach {url}: {exc}")
        if answer.status_code != 200:
            try:
                message = answer.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = answer.text[:200]
            fail(f"{url} answered {answer.status_code}: {message}")
        body: dict[str, Any] = answer.json()
        return body

    return read


@app.command()
def top(
    store: Annotated[str | None, typer.Option(metavar="URL", help=STORE_HELP)] = None,
    url: Annotated[
        str | None,
        typer.Option(
            help=f"A service to ask instead of the store (its /admin/stats, with ${TOKEN_ENV})."
        ),
    ] = None,
    window: Annotated[str, typer.Option(help="hour, day or week.")] = "hour",
    interval: Annotated[float, typer.Option(help="Seconds between two refreshes.", min=0.2)] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --once: the JSON answer.")] = False,
) -> None:
    """Requests, hit ratio, savings, latency and health of every instance sharing the store, live."""
    from rich.console import Console
    from rich.live import Live

    if window not in ("hour", "day", "week"):
        fail(f"--window must be hour, day or week, not {window!r}", 2)
    if url is not None:
        token = os.environ.get(TOKEN_ENV)
        if not token:
            fail(f"--url needs the service's admin token in ${TOKEN_ENV}", 2)
        fetch, source = from_service(url, window, token), url
    else:
        where = store_url(store)
        fetch, source = from_store(where, window), redact(where)
    console = Console()
    try:
        if once:
            stats = fetch()
            if as_json:
                typer.echo(orjson.dumps(stats, option=orjson.OPT_INDENT_2).decode())
            else:
                console.print(frame(stats, source))
            return
        with Live(frame(fetch(), source), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(frame(fetch(), source), refresh=True)
    except LLMemoError as exc:
        fail(f"cannot read the rollups from {source}: {exc}")
    except KeyboardInterrupt:
        return
