"""The `llmemo` command line: inspect and manage a cache (`serve` and `warm` live in their modules)."""

from __future__ import annotations

import sys
from typing import Annotated, Any, NoReturn

import orjson
import typer

from llmemo.core._sync.cache import Cache
from llmemo.errors import ConfigError, LLMemoError, StoreError
from llmemo.stores.base import default_url, redact

app = typer.Typer(
    name="llmemo",
    help="An LLM response cache on Redis: inspect, invalidate and serve it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="LLMEMO_STORE",
        help="Store URL: sqlite:///path (default ~/.cache/llmemo/cache.db), redis://, rediss://, redis+cluster://, upstash://, memory://",
    ),
]
NamespaceOpt = Annotated[
    str, typer.Option("--namespace", "-n", envvar="LLMEMO_NAMESPACE", help="Namespace.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr, a non-zero exit, no traceback."""
    typer.echo(f"llmemo: error: {message}", err=True)
    raise typer.Exit(code)


def open_cache(store: str | None, namespace: str) -> Cache:
    url = store or default_url()
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
    """Delete entries (SCAN + UNLINK in batches), or bump the namespace version."""
    with open_cache(store, namespace) as cache:
        if bump:
            if any(v is not None for v in (version, model, tenant, user, tag)) or all_namespaces:
                fail("--bump takes no filter: it retires the whole namespace", 2)
            typer.echo(f"namespace {namespace!r} is now at version {cache.bump_version()}")
            return
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
def get(key: str, store: StoreOpt = None, as_json: JsonOpt = True) -> None:
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
            "tags": list(hit.tags),
            "usage": {
                "input_tokens": hit.usage.input_tokens,
                "output_tokens": hit.usage.output_tokens,
            },
            "response": hit.response,
        }
        typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


@app.command()
def keys(
    store: StoreOpt = None,
    namespace: NamespaceOpt = "default",
    limit: Annotated[int, typer.Option(help="Print at most this many keys.")] = 100,
) -> None:
    """List entry keys of a namespace (SCAN, never KEYS)."""
    from llmemo.core.request import entry_pattern

    with open_cache(store, namespace) as cache:
        shown = 0
        for batch in cache.backend.scan(entry_pattern(cache.prefix, namespace)):
            for key in batch:
                if shown >= limit:
                    return
                typer.echo(key)
                shown += 1


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
        code = app(args=argv, standalone_mode=False)
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
from llmemo.cli import serve as _serve  # noqa: E402, F401 - registers `llmemo serve`
from llmemo.cli import warm as _warm  # noqa: E402, F401 - registers `llmemo warm`
