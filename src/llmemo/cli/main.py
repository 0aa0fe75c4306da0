"""The `llmemo` command line: inspect and manage a cache (`serve` and `warm` live in their modules)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Annotated, Any, NoReturn

import orjson
import typer

from llmemo import __version__
from llmemo.core import Cache
from llmemo.errors import ConfigError, LLMemoError, StoreError
from llmemo.stores.base import STORE_ORDER, redact, store_url


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"llmemo {__version__}")
        raise typer.Exit(0)


app = typer.Typer(
    name="llmemo",
    help="An LLM response cache on Redis: inspect, invalidate and serve it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain click help: flags shown as flags, not `<bool>`
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """An LLM response cache on Redis: inspect, invalidate and serve it."""


STORE_HELP = (
    "Store URL: sqlite:///relative.db or sqlite:////absolute.db, redis://[user:pass@]host:port/db, "
    f"rediss://, redis+cluster://, upstash://, memory://. Chosen from: {STORE_ORDER}."
)
StoreOpt = Annotated[str | None, typer.Option("--store", metavar="URL", help=STORE_HELP)]
NamespaceOpt = Annotated[
    str, typer.Option("--namespace", "-n", envvar="LLMEMO_NAMESPACE", help="Namespace.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr, a non-zero exit, no traceback."""
    typer.echo(f"llmemo: error: {message}", err=True)
    raise typer.Exit(code)


def open_cache(store: str | None, namespace: str) -> Cache:
    url = store_url(store)
    cache = Cache.from_url(url, namespace=namespace)
    try:
        cache.backend.ping()
    except StoreError as exc:
        fail(f"cannot reach the store {redact(url)}: {exc}")
    return cache


def emit(data: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for name, value in data.items():
        table.add_row(f"[bold]{name}[/bold]", str(value))
    Console().print(table)


def duration(seconds: float | None) -> str:
    """A short human duration, rounded: 42s, 5m, 3h, 2d; "-" for none."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"


def columns(rows: list[list[str]]) -> None:
    """Rows as plain aligned columns (two spaces apart): readable, and `awk` / `cut` friendly."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))] if rows else []
    for row in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@app.command()
def stats(
    store: StoreOpt = None, namespace: NamespaceOpt = "default", as_json: JsonOpt = False
) -> None:
    """Hits, misses, stores, skips, errors, tokens and dollars saved for a namespace."""
    with open_cache(store, namespace) as cache:
        data = cache.stats().as_dict()
        data["version"] = cache.version()
        emit({"store": cache.backend.url, "namespace": namespace, **data}, as_json)


@app.command()
def invalidate(
    store: StoreOpt = None,
    namespace: NamespaceOpt = "default",
    everything: Annotated[
        bool,
        typer.Option(
            "--all", help="Delete every entry of the namespace: needed when no filter is given."
        ),
    ] = False,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", help="Every namespace.")
    ] = False,
    version: Annotated[int | None, typer.Option(help="Only entries of this version.")] = None,
    model: Annotated[str | None, typer.Option(help="Only entries of this model.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only entries of this tenant.")] = None,
    user: Annotated[
        str | None, typer.Option(help="Only entries of this user (a GDPR wipe).")
    ] = None,
    tag: Annotated[str | None, typer.Option(help="Only entries with this tag.")] = None,
    bump: Annotated[
        bool,
        typer.Option(
            "--bump", help="Bump the namespace version instead: every entry at once, O(1)."
        ),
    ] = False,
) -> None:
    """Delete matching entries (SCAN + UNLINK in batches), or bump the namespace version.

    Without a filter (--version, --model, --tenant, --user, --tag) it deletes EVERY entry of the
    namespace (of every namespace with --all-namespaces): that takes --all, or a "y" when asked
    on a terminal.
    """
    filtered = any(v is not None for v in (version, model, tenant, user, tag))
    if bump and (filtered or all_namespaces or everything):
        fail("--bump takes no filter: it retires the whole namespace", 2)
    with open_cache(store, namespace) as cache:
        if bump:
            typer.echo(f"namespace {namespace!r} is now at version {cache.bump_version()}")
            return
        if not filtered and not everything:
            scope = "every namespace" if all_namespaces else f"namespace {namespace!r}"
            where = f"{scope} in {redact(cache.backend.url)}"
            if not sys.stdin.isatty():
                fail(f"no filter: this would delete every entry of {where}; add --all to do so", 2)
            if not typer.confirm(f"Delete every entry of {where}?", default=False):
                fail("nothing deleted", 1)
        deleted = cache.invalidate(
            namespace="*" if all_namespaces else namespace,
            version=version,
            model=model,
            tenant=tenant,
            user=user,
            tag=tag,
        )
        typer.echo(f"deleted {deleted} entr{'y' if deleted == 1 else 'ies'}")


@app.command()
def get(
    key: str,
    store: StoreOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json/--no-json", help="JSON (default), or a table of its fields.")
    ] = True,
) -> None:
    """Print one entry by its store key (as `llmemo keys` or the logs show it)."""
    with open_cache(store, "default") as cache:
        hit = cache.get_key(key)
        if hit is None:
            fail(f"no entry at {key!r}")
        data = {
            "key": hit.key,
            "model": hit.model,
            "created": hit.created,
            "age": round(hit.age, 3),
            "ttl": hit.ttl,
            "tags": list(hit.tags),
            "usage": {
                "input_tokens": hit.usage.input_tokens,
                "output_tokens": hit.usage.output_tokens,
            },
            "response": hit.response,
        }
        if not as_json:
            data["age"] = duration(hit.age)
            data["ttl"] = duration(hit.ttl)
            data["tags"] = ", ".join(hit.tags) or "-"
            data["usage"] = f"{hit.usage.input_tokens} in, {hit.usage.output_tokens} out"
            data["response"] = orjson.dumps(hit.response).decode()
        emit(data, as_json)


def _entries(cache: Cache, namespace: str) -> Iterator[tuple[str, Any]]:
    """(key, header or None) of each entry of a namespace, in SCAN order."""
    from llmemo.core.entry import HEAD_BYTES, decode_head
    from llmemo.core.request import entry_pattern
    from llmemo.errors import CorruptEntryError

    for batch in cache.backend.scan(entry_pattern(cache.prefix, namespace)):
        for key, head in zip(batch, cache.backend.heads(batch, HEAD_BYTES), strict=True):
            try:
                yield key, None if head is None else decode_head(head)
            except CorruptEntryError:
                yield key, None


@app.command()
def keys(
    store: StoreOpt = None,
    namespace: NamespaceOpt = "default",
    limit: Annotated[int, typer.Option(min=1, help="Print at most this many entries.")] = 100,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Keys only, one a line.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List the entries of a namespace (SCAN, never KEYS): key, model, age and TTL.

    Stops after --limit entries and says so on stderr when there are more.
    """
    now = time.time()
    rows: list[dict[str, Any]] = []
    more = False
    with open_cache(store, namespace) as cache:
        for key, head in _entries(cache, namespace):
            if len(rows) >= limit:
                more = True
                break
            rows.append(
                {
                    "key": key,
                    "model": None if head is None else head.model,
                    "age": None if head is None else round(now - head.created, 3),
                    "ttl": None if head is None else head.ttl,
                }
            )
    if as_json:
        typer.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
    elif quiet:
        for row in rows:
            typer.echo(row["key"])
    else:
        columns(
            [[r["key"], r["model"] or "-", duration(r["age"]), duration(r["ttl"])] for r in rows]
        )
    if more:
        typer.echo(f"llmemo: more than {limit} entries: use --limit N to see more", err=True)


@app.command()
def namespaces(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """List the namespaces found in the store (SCAN), with their entry counts and versions."""
    from llmemo.stores.keys import entry_pattern, stats_pattern

    counts: dict[str, int] = {}
    with open_cache(store, "default") as cache:
        prefix = cache.prefix
        for batch in cache.backend.scan(entry_pattern(prefix)):
            for key in batch:
                name = key[len(prefix) + 1 :].split(":", 1)[0]
                counts[name] = counts.get(name, 0) + 1
        for batch in cache.backend.scan(stats_pattern(prefix)):
            for key in batch:
                counts.setdefault(key[len(prefix) + 1 : -len(":stats")], 0)
        rows: list[dict[str, Any]] = [
            {"namespace": name, "entries": counts[name], "version": cache.version(name)}
            for name in sorted(counts)
        ]
    if as_json:
        typer.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
    else:
        columns([[r["namespace"], str(r["entries"]), f"v{r['version']}"] for r in rows])


@app.command()
def delete(key: str, store: StoreOpt = None) -> None:
    """Delete one entry by its store key."""
    with open_cache(store, "default") as cache:
        if not cache.delete_key(key):
            fail(f"no entry at {key!r}")
        typer.echo(f"deleted {key}")


def _exit(message: str, code: int) -> NoReturn:
    print(f"llmemo: error: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every error is one line on stderr and a non-zero exit code."""
    try:
        code = app(args=argv, prog_name="llmemo", standalone_mode=False)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        _exit("aborted", 130)
    except typer.TyperException as exc:  # usage errors: unknown command, bad option value, ...
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        ctx = getattr(exc, "ctx", None)
        hint = f" (try: {ctx.command_path} --help)" if ctx is not None else ""
        _exit(" ".join(f"{message}{hint}".split()), 2)
    except ConfigError as exc:
        _exit(str(exc), 2)
    except LLMemoError as exc:
        _exit(str(exc), 1)
    except KeyboardInterrupt:
        _exit("interrupted", 130)
    sys.exit(code if isinstance(code, int) else 0)


from llmemo.cli import calibrate as _calibrate  # noqa: E402, F401 - registers `llmemo calibrate`
from llmemo.cli import doctor as _doctor  # noqa: E402, F401 - registers `llmemo doctor`
from llmemo.cli import feedback as _feedback  # noqa: E402, F401 - registers `llmemo feedback`
from llmemo.cli import rekey as _rekey  # noqa: E402, F401 - registers `llmemo rekey`
from llmemo.cli import serve as _serve  # noqa: E402, F401 - registers `llmemo serve`
from llmemo.cli import top as _top  # noqa: E402, F401 - registers `llmemo top`
from llmemo.cli import warm as _warm  # noqa: E402, F401 - registers `llmemo warm`
