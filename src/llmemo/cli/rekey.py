"""`llmemo rekey`: re-encrypt what the store holds under the current encryption key."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Annotated

import typer

from llmemo.cli.main import JsonOpt, StoreOpt, app, emit, fail
from llmemo.core.crypto import Keyring
from llmemo.core.rekey import BATCH, RekeyReport, rekey
from llmemo.errors import StoreError
from llmemo.stores import from_url
from llmemo.stores.base import redact, store_url
from llmemo.stores.protocol import RewritableStore

REKEY_HELP = """Re-encrypt every cached entry and warm record under the current (first) key.

Walks the store with SCAN (every primary of a Redis Cluster) in pages: cache entries (answers and
the prompts of semantic entries), warm results and warm job states. Each one sealed with an older
key, or stored in clear, is rewritten under the first key of --keys, with its remaining TTL, and
only if it is unchanged since it was read (a value another process refreshed meanwhile is left as
it is: it is already current). A value that no key of --keys opens is left alone and counted as
undecryptable. Safe to run while services use the cache.

Resumable: the position is saved in the store (key PREFIX:~rekey, kept 7 days) after every page;
run the same command again after an interruption (Ctrl-C, a lost connection) and it continues
where it stopped, for as long as the first key is the same. --restart starts from the beginning.

Keys: --keys or LLMEMO_ENCRYPTION_KEYS, the same list the services use (id:base64key,...): put
the new key first and keep the old ones after it until this has finished."""


def _summary(report: RekeyReport) -> dict[str, object]:
    done = "finished" if report.done else "stopped"
    return {
        "key": report.key_id,
        "status": f"{done} (dry run: nothing written)" if report.dry_run else done,
        "resumed": "yes" if report.resumed else "no",
        "rewritten": report.rewritten,
        "already current": report.current,
        "undecryptable (left alone)": report.undecryptable,
        "skipped (gone, or changed meanwhile)": report.skipped,
    }


@app.command("rekey", help=REKEY_HELP)
def rekey_command(
    store: StoreOpt = None,
    keys: Annotated[
        str | None,
        typer.Option(
            "--keys",
            envvar="LLMEMO_ENCRYPTION_KEYS",
            metavar="ID:KEY,...",
            show_envvar=True,
            show_default=False,
            help="Encryption keys, the first one new writes use (default: LLMEMO_ENCRYPTION_KEYS).",
        ),
    ] = None,
    prefix: Annotated[
        str, typer.Option(metavar="PREFIX", help="The cache's key prefix.")
    ] = "llmemo",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be rewritten; write nothing.")
    ] = False,
    restart: Annotated[
        bool, typer.Option("--restart", help="Ignore a saved position: start from the beginning.")
    ] = False,
    batch: Annotated[
        int,
        typer.Option(
            metavar="N",
            min=1,
            max=10_000,
            help="Keys per SCAN page (the position is saved after each).",
        ),
    ] = BATCH,
    as_json: JsonOpt = False,
) -> None:
    if not keys:
        fail("no encryption keys: give --keys or set LLMEMO_ENCRYPTION_KEYS", 2)
    keyring = Keyring.parse(keys)
    url = store_url(store)
    backend = from_url(url)
    if not isinstance(backend, RewritableStore):
        fail(f"the store {redact(url)} cannot rewrite values in place", 2)
    try:
        backend.ping()
    except StoreError as exc:
        fail(f"cannot reach the store {redact(url)}: {exc}")
    try:
        report = _run(backend, keyring, prefix, dry_run, restart, batch, show=not as_json)
    except KeyboardInterrupt:
        fail("interrupted: run the same command again to continue where it stopped", 130)
    finally:
        backend.close()
    emit(_summary(report) if not as_json else report.as_dict(), as_json)


def _run(
    store: RewritableStore,
    keyring: Keyring,
    prefix: str,
    dry_run: bool,
    restart: bool,
    batch: int,
    *,
    show: bool,
) -> RekeyReport:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (
        SpinnerColumn(),
        TextColumn("rekey to {task.fields[key]}"),
        BarColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
    )
    with (
        Progress(*columns, console=Console(stderr=True), disable=not show) as bar,
        _stop_between_pages() as stopping,
    ):
        task = bar.add_task("rekey", total=None, key=keyring.current, counts="starting")

        def moved(report: RekeyReport) -> None:
            counts = (
                f"{report.seen} seen, {report.rewritten} rewritten, {report.current} current, "
                f"{report.undecryptable} undecryptable, {report.skipped} skipped"
            )
            bar.update(task, counts=counts)
            if stopping:  # the page is written and its position saved: a clean place to stop
                raise KeyboardInterrupt

        return rekey(
            store, keyring, prefix, dry_run=dry_run, restart=restart, batch=batch, progress=moved
        )


@contextlib.contextmanager
def _stop_between_pages() -> Iterator[list[int]]:
    """Ctrl-C asks the walk to stop after the page under way (never inside a store call, where an
    interrupt could leave a connection or a lock half used); a second Ctrl-C stops at once."""
    stopping: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield stopping
        return

    def ask(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, ask)
    try:
        yield stopping
    finally:
        signal.signal(signal.SIGINT, previous)
