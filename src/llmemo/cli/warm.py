"""`llmemo warm FILE.jsonl`: warm a batch, directly against a store and an upstream, or through a
running service's `/v1/warm` (`--service URL --token T`).

One JSON item per line (an OpenAI or Anthropic request body, or `{"query": ..., "model": ...}`).
Ctrl-C stops taking new items and lets those under way finish, so running the same command again
resumes: entries already stored are found by key and skipped (`--resume-file` also keeps a journal
of finished items, which saves even those lookups).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from llmemo.cli.main import StoreOpt, app, emit, fail
from llmemo.core.entry import Usage
from llmemo.errors import ConfigError, LLMemoError, StoreError
from llmemo.stores.base import redact, store_url
from llmemo.warm import (
    ItemResult,
    Provider,
    Summary,
    WarmItem,
    check_refresh_before,
    parse_item,
    warm_shared,
)

if TYPE_CHECKING:
    from llmemo.service.settings import Settings

OPENAI_URL = "https://api.openai.com/v1"
ANTHROPIC_URL = "https://api.anthropic.com"
_SHOWN_FAILURES = 10


def read_items(
    path: Path, defaults: dict[str, Any], check: Callable[[WarmItem], object] | None = None
) -> tuple[list[dict[str, Any]], list[WarmItem], list[int]]:
    """The file's items, raw and parsed (and `check`ed), and the line number of each; a bad line
    fails the whole command before any call."""
    raw: list[dict[str, Any]] = []
    parsed: list[WarmItem] = []
    lines: list[int] = []
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            data = orjson.loads(line)
            item = parse_item(data, defaults)
            if check is not None:
                check(item)
            parsed.append(item)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: not JSON: {exc}") from None
        except LLMemoError as exc:
            raise ConfigError(f"{path}:{number}: {exc}") from None
        raw.append(data)
        lines.append(number)
    if not parsed:
        raise ConfigError(f"{path}: no items (one JSON request per line)")
    return raw, parsed, lines


class Journal:
    """Keys of items already warm, one JSON line each, appended as items finish."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys: set[str] = set()
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(orjson.JSONDecodeError, TypeError, KeyError):
                    self.keys.add(orjson.loads(line)["key"])
        self._file = path.open("a", encoding="utf-8")

    def record(self, result: ItemResult) -> None:
        if result.key is not None and result.status in ("stored", "fresh"):
            self._file.write(orjson.dumps({"key": result.key, "status": result.status}).decode())
            self._file.write("\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


@contextlib.contextmanager
def _progress(total: int, quiet: bool) -> Iterator[Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("warming"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "stored {task.fields[stored]} · fresh {task.fields[fresh]} · failed {task.fields[failed]}"
        ),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=quiet,
    )
    with progress:
        task = progress.add_task("warm", total=total, stored=0, fresh=0, failed=0)

        def show(summary: Summary) -> None:
            progress.update(
                task,
                completed=summary.total,
                stored=summary.stored,
                fresh=summary.fresh,
                failed=summary.failed,
            )

        yield show


@contextlib.contextmanager
def _interruptible(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Iterator[None]:
    """The first Ctrl-C (or SIGTERM) sets `stop`; a second one aborts at once."""

    def first(signum: int) -> None:
        stop.set()
        loop.remove_signal_handler(signum)
        typer.echo("llmemo: stopping after the items under way (Ctrl-C again to abort)", err=True)

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, first, signum)
            installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


async def _direct(
    items: list[WarmItem],
    *,
    store: str,
    namespace: str,
    shares: Callable[[str], bool],
    bases: dict[Provider, str | None],
    keys: dict[Provider, str | None],
    concurrency: int,
    refresh_before: float | None,
    journal: Journal | None,
    quiet: bool,
) -> tuple[Summary, list[ItemResult], bool]:
    from llmemo.core import AsyncCache
    from llmemo.service.controls import ANONYMOUS, tenant_id
    from llmemo.warm import HttpUpstream, Warmer, warm_shared

    cache = AsyncCache.from_url(store, namespace=namespace)
    try:
        await cache.backend.ping()
    except StoreError as exc:
        await cache.close()
        raise StoreError(f"cannot reach the store {redact(store)}: {exc}") from None

    def tenant(item: WarmItem) -> str | None:
        """None in a shared namespace, else the API key's tenant (`"shared": false`)."""
        if warm_shared(item, namespace, shares):
            return None
        key = keys[item.provider]
        return tenant_id(key) if key else ANONYMOUS

    stop = asyncio.Event()
    summary = Summary()
    async with (
        cache,
        HttpUpstream(
            openai_base_url=bases["openai"],
            anthropic_base_url=bases["anthropic"],
            openai_api_key=keys["openai"],
            anthropic_api_key=keys["anthropic"],
        ) as upstream,
    ):
        warmer = Warmer(
            cache,
            upstream,
            concurrency=concurrency,
            refresh_before=refresh_before,
            tenant=tenant,
            skip_keys=journal.keys if journal is not None else (),
        )
        with _progress(len(items), quiet) as show, _interruptible(asyncio.get_running_loop(), stop):

            def done(result: ItemResult) -> None:
                summary.add(result)
                if journal is not None:
                    journal.record(result)
                show(summary)

            report = await warmer.run(enumerate(items), done, stop)
    return report.summary, report.results, stop.is_set()


async def _remote(
    raw: list[dict[str, Any]],
    *,
    service: str,
    token: str,
    batch: dict[str, Any],
    batch_size: int,
    quiet: bool,
) -> tuple[Summary, list[dict[str, Any]], bool]:
    """Send the items to a service's /v1/warm in chunks (each a job) and follow their progress."""
    from llmemo.errors import require

    require("httpx", "server")
    import httpx

    stop = asyncio.Event()
    summary, results = Summary(), []
    run = os.urandom(8).hex()  # one idempotency key per chunk: our own retries never run twice
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=service.rstrip("/"), headers=headers, timeout=60
    ) as client:
        with _progress(len(raw), quiet) as show, _interruptible(asyncio.get_running_loop(), stop):
            for start in range(0, len(raw), batch_size):
                if stop.is_set():
                    break
                body = orjson.dumps({"requests": raw[start : start + batch_size], **batch})
                job = await _submit(client, body, f"llmemo-cli-{run}-{start}")
                while job.get("status") in ("accepted", "running"):
                    await asyncio.sleep(0.2)
                    job = await _get(client, f"/v1/warm/{job['id']}")
                    show(_plus(summary, job.get("summary", {})))
                if job.get("status") != "done":
                    raise LLMemoError(
                        f"the service's warm job ended {job.get('status')}: {job.get('error', '')}"
                    )
                for item in job.get("results", []):
                    item["index"] += start
                    results.append(item)
                    _add(summary, item)
                show(summary)
    return summary, results, stop.is_set()


def _plus(summary: Summary, other: dict[str, Any]) -> Summary:
    """The summary so far plus a running job's (for the progress bar)."""
    return Summary(
        total=summary.total + other.get("total", 0),
        stored=summary.stored + other.get("stored", 0),
        fresh=summary.fresh + other.get("skipped", 0),
        failed=summary.failed + other.get("failed", 0),
    )


def _add(summary: Summary, item: dict[str, Any]) -> None:
    usage = item.get("usage") or {}
    summary.add(
        ItemResult(
            item["index"],
            item["status"],
            usage=Usage(usage.get("input_tokens", 0), usage.get("output_tokens", 0)),
            cost=item.get("cost_usd", 0.0),
        )
    )


async def _submit(client: Any, body: bytes, key: str) -> dict[str, Any]:
    """POST a chunk as a job; waits out 429/409/503 (same idempotency key, so never twice)."""
    import httpx

    for attempt in range(30):
        try:
            response = await client.post(
                "/v1/warm?background=1",
                content=body,
                headers={"idempotency-key": key, "content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            if attempt >= 3:
                raise LLMemoError(
                    f"cannot reach the service: {type(exc).__name__}: {exc}"
                ) from None
            await asyncio.sleep(1 + attempt)
            continue
        if response.status_code in (409, 429, 503):
            await asyncio.sleep(min(30.0, float(response.headers.get("retry-after", "1"))))
            continue
        return _json(response)
    raise LLMemoError("the service kept refusing the batch (rate limited or busy)")


async def _get(client: Any, path: str) -> dict[str, Any]:
    return _json(await client.get(path))


def _json(response: Any) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code >= 400 or not isinstance(data, dict):
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else response.text[:200]
        raise LLMemoError(f"the service answered {response.status_code}: {message}")
    return data


def _settings(
    config: Path | None, namespace: str | None, shared: bool, names: list[str] | None
) -> Settings:
    """`llmemo serve`'s settings (flags > environment > config file): warm stores entries where
    a service with these settings reads them."""
    from llmemo.errors import require

    require("pydantic_settings", "server")
    from llmemo.service.settings import load_settings

    return load_settings(
        config, namespace=namespace, shared=shared or None, shared_namespaces=names or None
    )


@app.command()
def warm(
    file: Annotated[Path, typer.Argument(help="JSON lines: one request per line ('-': stdin).")],
    store: StoreOpt = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", envvar="LLMEMO_NAMESPACE", help="Namespace.")
    ] = None,
    openai_base_url: Annotated[
        str | None,
        typer.Option(envvar="OPENAI_BASE_URL", help="OpenAI-compatible upstream, with /v1."),
    ] = None,
    anthropic_base_url: Annotated[
        str | None,
        typer.Option(envvar="ANTHROPIC_BASE_URL", help="Anthropic upstream, without /v1."),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 8,
    refresh: Annotated[
        bool, typer.Option(help="Replace entries even when they are fresh.")
    ] = False,
    refresh_before: Annotated[
        float | None,
        typer.Option(help="Refresh entries within this fraction of their TTL of expiring (0-1)."),
    ] = None,
    ttl: Annotated[str | None, typer.Option(help="Entry lifetime, e.g. 24h.")] = None,
    shared: Annotated[
        bool,
        typer.Option(
            "--shared",
            help="Every namespace is shared, as with `llmemo serve --shared` (env LLMEMO_SHARED).",
        ),
    ] = False,
    shared_namespace: Annotated[
        list[str] | None,
        typer.Option(
            help="A namespace `llmemo serve` shares (repeatable; env LLMEMO_SHARED_NAMESPACES, "
            "comma-separated): items there are stored for every caller. Items in another "
            "namespace are refused unless --isolated.",
        ),
    ] = None,
    isolated: Annotated[
        bool,
        typer.Option(
            help='Store entries for the tenant of the API key (items\' "shared": false): only '
            "callers using that key are served them."
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(help="The service's TOML settings file (env LLMEMO_CONFIG)."),
    ] = None,
    resume_file: Annotated[
        Path | None,
        typer.Option(help="Journal of finished items: skipped without a lookup on resume."),
    ] = None,
    service: Annotated[
        str | None, typer.Option(help="Send the batch to a running service's /v1/warm instead.")
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="LLMEMO_WARM_TOKEN", help="The service's warm token.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Items per request with --service.")] = 100,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Warm the cache with a batch of requests: stored once, skipped when already fresh."""
    refresh_before = check_refresh_before(refresh_before)
    defaults: dict[str, Any] = {"refresh": refresh}
    if ttl is not None:
        defaults["ttl"] = ttl
    if namespace is not None:
        defaults["namespace"] = namespace
    if isolated:
        defaults["shared"] = False
    if service is not None:  # the service's own settings say which namespaces are shared
        if shared or shared_namespace or config is not None:
            fail(
                "--shared, --shared-namespace and --config describe `llmemo serve`: with "
                "--service, the service's own settings decide what is shared",
                2,
            )
        raw, items, lines = read_items(file, defaults)
    else:
        settings = _settings(config, namespace, shared, shared_namespace)

        def check(item: WarmItem) -> None:
            warm_shared(item, settings.namespace, settings.shares)

        raw, items, lines = read_items(file, defaults, check)
    if service is not None:
        if not token:
            fail("--service needs --token (or LLMEMO_WARM_TOKEN)", 2)
        batch = {
            **defaults,
            **({"refresh_before": refresh_before} if refresh_before is not None else {}),
        }
        summary, results, stopped = asyncio.run(
            _remote(
                raw, service=service, token=token, batch=batch, batch_size=batch_size, quiet=quiet
            )
        )
        where = {"service": service}
    else:
        keys: dict[Provider, str | None] = {
            "openai": os.environ.get("OPENAI_API_KEY") or None,
            "anthropic": os.environ.get("ANTHROPIC_API_KEY") or None,
        }
        bases: dict[Provider, str | None] = {
            "openai": openai_base_url or (OPENAI_URL if keys["openai"] else None),
            "anthropic": anthropic_base_url or (ANTHROPIC_URL if keys["anthropic"] else None),
        }
        for provider in sorted({item.provider for item in items}):
            if bases[provider] is None:
                fail(
                    f"the file has {provider} requests but no {provider} upstream: pass --{provider}-base-url",
                    2,
                )
        url = store_url(store)
        journal = Journal(resume_file) if resume_file is not None else None
        try:
            summary, done, stopped = asyncio.run(
                _direct(
                    items,
                    store=url,
                    namespace=settings.namespace,
                    shares=settings.shares,
                    bases=bases,
                    keys=keys,
                    concurrency=concurrency,
                    refresh_before=refresh_before,
                    journal=journal,
                    quiet=quiet,
                )
            )
        finally:
            if journal is not None:
                journal.close()
        results = [r.as_dict() for r in done]
        where = {"store": redact(url)}
    for item in [r for r in results if r["status"] == "failed"][:_SHOWN_FAILURES]:
        typer.echo(f"failed: {file}:{lines[item['index']]}: {item.get('reason')}", err=True)
    emit({**where, **summary.as_dict()}, as_json)
    if stopped:
        fail(
            f"interrupted after {summary.total} of {len(items)} items: run the same command again to resume",
            130,
        )
    if summary.failed:
        fail(f"{summary.failed} of {summary.total} items failed", 1)
