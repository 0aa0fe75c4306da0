"""`llmemo doctor`: does the store work, how is it set up, does the semantic extra load."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer

from llmemo.cli.main import StoreOpt, app, emit
from llmemo.core import Cache
from llmemo.core.check import CheckReport
from llmemo.errors import LLMemoError
from llmemo.stores.base import store_url


def _layer(spec: str) -> tuple[Any, str | None]:
    """The semantic layer for `spec`, or None and why it does not load."""
    if spec == "none":
        return None, None
    try:
        from llmemo.core.semantic import SemanticLayer

        return SemanticLayer(spec, threshold=1.0), None
    except (LLMemoError, ImportError) as exc:
        return None, f"{spec}: {exc}"


def _yes(value: bool | None, yes: str = "yes", no: str = "no") -> str:
    return "unknown" if value is None else yes if value else no


def _table(report: CheckReport) -> dict[str, str]:
    rows = {"store": report.store}
    if not report.reachable:
        rows["reachable"] = f"NO: {report.error}"
        return rows
    rows["reachable"] = f"yes, {report.latency_ms:.2f} ms round trip"
    rows["write, read, delete"] = "ok" if report.ok else f"FAILED: {report.error}"
    if report.server is not None:
        rows["server"] = report.server
    if report.server is not None or report.search is not None:
        rows["search module"] = _yes(
            report.search, "yes (vector search in Redis)", "no (semantic uses a local index)"
        )
    if report.eviction is not None:
        rows["maxmemory-policy"] = report.eviction
    return rows


@app.command()
def doctor(
    store: StoreOpt = None,
    embedder: Annotated[
        str,
        typer.Option(
            metavar="SPEC",
            help="Embedder to try: minilm (default), openai:MODEL[@URL], ollama:MODEL[@URL], or "
            "none to skip the semantic check.",
        ),
    ] = "minilm",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check the store: connect, write, read back and delete a probe key; for Redis, its version,
    search module and maxmemory-policy. Also says whether the semantic extra and its embedder
    load. Exit code 1 when the store does not work."""
    layer, semantic_error = _layer(embedder)
    with Cache.from_url(store_url(store), semantic=layer or False) as cache:
        report = cache.check()
    if semantic_error is not None:
        report = _with(report, semantic=semantic_error, semantic_ok=False)
    if as_json:
        typer.echo(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        rows = _table(report)
        if report.semantic is not None:
            ok = "" if report.semantic_ok else "NOT AVAILABLE: "
            rows["semantic"] = ok + report.semantic
        emit(rows, False)
        for warning in report.warnings:
            typer.echo(f"llmemo: warning: {warning}", err=True)
    if not report.ok:
        raise typer.Exit(1)


def _with(report: CheckReport, **changes: Any) -> CheckReport:
    from dataclasses import replace

    return replace(report, **changes)
