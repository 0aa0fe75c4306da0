"""`llmemo feedback`: list served semantic hits and wrong-hit reports, report a wrong hit."""

from __future__ import annotations

import datetime
from typing import Annotated, Any

import typer

from llmemo.cli.main import JsonOpt, StoreOpt, app, columns, emit, open_cache

feedback_app = typer.Typer(
    help="Feedback on semantic hits: list them, report a wrong one (docs/semantic.md).",
    no_args_is_help=True,
)
app.add_typer(feedback_app, name="feedback")

NamespaceFilter = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Only this namespace (default: every namespace)."),
]


def _when(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


@feedback_app.command("wrong-hit")
def wrong_hit(
    key: Annotated[str, typer.Argument(help="The key the hit was served under (x-llmemo-key).")],
    note: Annotated[
        str | None, typer.Option(help="Why it was wrong (kept with the report).")
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Report a semantic hit as wrong: its key is deleted, the pair kept as a negative example,
    and the matched entry no longer answers a query as similar."""
    with open_cache(store, "default") as cache:
        reported = cache.report_wrong_hit(key, note=note)
    emit(reported.as_dict(), as_json)


@feedback_app.command("list")
def list_feedback(
    store: StoreOpt = None,
    namespace: NamespaceFilter = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Rows at most.")] = 50,
    reports: Annotated[
        bool, typer.Option("--reports", help="Wrong-hit reports instead of served hits.")
    ] = False,
    show_prompts: Annotated[
        bool,
        typer.Option(
            "--show-prompts", help="Print the query and matched prompt texts (personal data)."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """The newest served semantic hits (or, with --reports, wrong-hit reports), newest first."""
    with open_cache(store, "default") as cache:
        if reports:
            rows: list[dict[str, Any]] = [
                r.as_dict(show_prompts) for r in cache.wrong_hits(limit, namespace)
            ]
        else:
            rows = [h.as_dict(show_prompts) for h in cache.semantic_hits(limit, namespace)]
    if as_json:
        import orjson

        typer.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    if not rows:
        typer.echo("no wrong-hit report" if reports else "no served semantic hit logged")
        return
    table = [_row(row, reports, show_prompts) for row in rows]
    head = ["at", "namespace", "similarity", "key"]
    if reports:
        head.append("note")
    if show_prompts:
        head += ["query", "matched"]
    columns([head, *table])


def _row(row: dict[str, Any], reports: bool, show_prompts: bool) -> list[str]:
    hit = row["hit"] if reports else row
    similarity = "-" if hit is None else f"{hit['similarity']:.3f}"
    cells = [_when(row["at"]), row["namespace"], similarity, row["key"]]
    if reports:
        cells.append(row["note"] or "-")
    if show_prompts:
        cells += [
            "-" if hit is None else str(hit["query"]),
            "-" if hit is None else str(hit["matched"]),
        ]
    return cells
