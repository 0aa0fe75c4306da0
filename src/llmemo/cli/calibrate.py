"""`llmemo calibrate PAIRS.jsonl`: choose a semantic threshold on labelled pairs."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from llmemo.cli.main import StoreOpt, app, columns, fail, open_cache


@app.command()
def calibrate(
    pairs_file: Annotated[
        Path | None,
        typer.Argument(metavar="[PAIRS.jsonl]", help='Lines of {"a", "b", "duplicate"}.'),
    ] = None,
    embedder: Annotated[
        str, typer.Option(help="minilm (offline), openai:MODEL[@URL] or ollama:MODEL[@URL].")
    ] = "minilm",
    precision: Annotated[
        float, typer.Option(help="Target precision: the lowest threshold reaching it is chosen.")
    ] = 0.98,
    start: Annotated[float, typer.Option("--from", help="Lowest threshold shown.")] = 0.70,
    stop: Annotated[float, typer.Option("--to", help="Highest threshold shown.")] = 0.99,
    step: Annotated[float, typer.Option(help="Threshold step.")] = 0.01,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Write the histogram PNG here (default PAIRS.png; skipped with a note when "
            "matplotlib, the calibrate extra, is not installed)."
        ),
    ] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Do not draw the histogram.")] = False,
    embedding_cache: Annotated[
        str | None,
        typer.Option(
            help="Store URL to cache embeddings in (e.g. sqlite:///emb.db): a rerun embeds nothing."
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N pairs.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    from_feedback: Annotated[
        bool,
        typer.Option(
            "--from-feedback",
            help="Recommend a threshold per namespace from the store's served semantic hits and "
            "wrong-hit reports instead of a pairs file.",
        ),
    ] = False,
    feedback_store: StoreOpt = None,
    min_hits: Annotated[
        int, typer.Option(min=1, help="With --from-feedback: logged hits a namespace needs.")
    ] = 30,
) -> None:
    """Precision/recall/F1 by threshold, with and without the guard; recommend a threshold.

    With --from-feedback: a threshold per namespace from the reports and the hits served."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from llmemo import calibrate as cal
    from llmemo.core.guard import Guard
    from llmemo.embed.base import from_spec

    if not 0.0 < precision <= 1.0:
        fail(f"--precision must be in (0, 1], got {precision}", 2)
    if from_feedback:
        if pairs_file is not None:
            fail("give a pairs file or --from-feedback, not both", 2)
        _from_feedback(feedback_store, embedder, precision, min_hits, as_json)
        return
    if pairs_file is None:
        fail("give a pairs file (PAIRS.jsonl) or --from-feedback", 2)
    grid = cal.thresholds(start, stop, step)
    pairs = cal.read_pairs(pairs_file, limit)
    model: Any = from_spec(embedder)
    store = None
    if embedding_cache is not None:
        from llmemo.embed import CachedEmbedder
        from llmemo.stores.base import from_url

        store = from_url(embedding_cache)
        model = CachedEmbedder(model, store, ttl=None)
    texts = len({t for p in pairs for t in (p.a, p.b)})
    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=as_json,
        transient=True,
    ) as progress:
        task = progress.add_task(f"embedding {len(pairs)} pairs", total=texts)
        similarity = cal.embed_pairs(model, pairs, progress=lambda n: progress.advance(task, n))
    if store is not None:
        store.close()
    labels = cal.labels_of(pairs)
    plain = cal.sweep(similarity, labels, grid)
    guarded = cal.sweep(similarity, labels, grid, cal.guard_passes(pairs, Guard()))
    chosen = {"guard": cal.recommend(guarded, precision), "plain": cal.recommend(plain, precision)}
    image = None
    if not no_plot and importlib.util.find_spec("matplotlib") is None:
        typer.echo(
            "llmemo: note: no histogram (matplotlib is not installed: pip install "
            "'llmemo[calibrate]'); the tables are complete without it",
            err=True,
        )
        no_plot = True
    if not no_plot:
        marked = chosen["guard"] or cal.best(guarded)
        image = cal.plot(
            similarity,
            labels,
            plot or pairs_file.with_suffix(".png"),
            marked.threshold,
            f"{pairs_file.name}: {embedder}, {len(pairs)} pairs (guard on at the marked threshold)",
        )
    if as_json:
        report = {
            "pairs": len(pairs),
            "duplicates": int(labels.sum()),
            "embedder": embedder,
            "target_precision": precision,
            "recommended": {k: None if v is None else v.threshold for k, v in chosen.items()},
            "plain": [vars(s) for s in plain],
            "guard": [vars(s) for s in guarded],
            "plot": None if image is None else str(image),
        }
        typer.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return
    _print(Console(), pairs_file, len(pairs), int(labels.sum()), plain, guarded)
    for name, label in (("guard", "with the guard (as shipped)"), ("plain", "cosine alone")):
        pick = chosen[name]
        scores = guarded if name == "guard" else plain
        if pick is None:
            top = cal.best(scores)
            typer.echo(
                f"{label}: no threshold in {start:g}..{stop:g} reaches precision {precision:g} "
                f"(best {top.precision:.3f} at {top.threshold:g}, recall {top.recall:.3f})"
            )
        else:
            typer.echo(
                f"{label}: threshold {pick.threshold:g} -> precision {pick.precision:.3f}, "
                f"recall {pick.recall:.3f}"
            )
    if image is not None:
        typer.echo(f"histogram: {image}")


def _print(
    console: Any, path: Path, pairs: int, duplicates: int, plain: list[Any], guarded: list[Any]
) -> None:
    from rich.table import Table

    table = Table(
        title=f"{path.name}: {pairs} pairs, {duplicates} duplicates", title_justify="left"
    )
    table.add_column("threshold", justify="right")
    for side in ("cosine", "guard"):
        for metric in ("P", "R", "F1"):
            table.add_column(f"{side} {metric}", justify="right")
    for p, g in zip(plain, guarded, strict=True):
        table.add_row(
            f"{p.threshold:.2f}",
            *(f"{v:.3f}" for v in (p.precision, p.recall, p.f1, g.precision, g.recall, g.f1)),
        )
    console.print(table)


def _from_feedback(
    store: str | None, embedder: str, precision: float, minimum: int, as_json: bool
) -> None:
    from llmemo import calibrate as cal
    from llmemo.core.semantic import default_threshold
    from llmemo.errors import ConfigError

    try:
        current: float | None = default_threshold(embedder)
    except ConfigError:
        current = None
    with open_cache(store, "default") as cache:
        hits = cache.semantic_hits(1_000_000)
        reports = cache.wrong_hits(1_000_000)
    found = cal.feedback_similarities(hits, reports)
    advice = [
        cal.advise(ns, served, wrong, current, precision, minimum)
        for ns, (served, wrong) in sorted(found.items())
    ]
    if as_json:
        typer.echo(orjson.dumps([vars(a) for a in advice], option=orjson.OPT_INDENT_2).decode())
        return
    if not advice:
        typer.echo("no served semantic hit or wrong-hit report logged: nothing to calibrate from")
        return
    rows = [["namespace", "served", "reported", "threshold", "precision", "hits kept", "advice"]]
    for a in advice:
        rows.append(
            [
                a.namespace,
                str(a.served),
                str(a.reported),
                "-" if a.threshold is None else f"{a.threshold:g}",
                "-" if a.precision is None else f"{a.precision:.3f}",
                str(a.kept),
                a.note,
            ]
        )
    columns(rows)
