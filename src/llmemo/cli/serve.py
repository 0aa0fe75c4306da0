"""`llmemo serve`: the caching service under uvicorn (`--upstream demo` needs no API key)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Annotated

import typer

from llmemo.cli.main import STORE_HELP, app, fail
from llmemo.errors import require

_NO_UPSTREAM = (
    "no upstream configured: set OPENAI_BASE_URL=https://api.openai.com/v1 and/or "
    "ANTHROPIC_BASE_URL=https://api.anthropic.com (or --openai-base-url/--anthropic-base-url, "
    "or --upstream openai|anthropic|providers), or try it offline with --upstream demo"
)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (env LLMEMO_HOST; default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (env LLMEMO_PORT; default 8000).")] = None,
    store: Annotated[str | None, typer.Option(metavar="URL", help=STORE_HELP)] = None,
    openai_base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible upstream, with /v1 (env OPENAI_BASE_URL).")
    ] = None,
    anthropic_base_url: Annotated[
        str | None, typer.Option(help="Anthropic upstream, without /v1 (env ANTHROPIC_BASE_URL).")
    ] = None,
    upstream: Annotated[
        str | None,
        typer.Option(
            help="Preset upstream: demo (a local fake, no API key), openai, anthropic or "
            "providers (both) (env LLMEMO_UPSTREAM)."
        ),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="Cache namespace (env LLMEMO_NAMESPACE).")
    ] = None,
    shared: Annotated[
        bool | None,
        typer.Option(
            "--shared/--isolated",
            help="Shared: all callers with an accepted key share answers (LLMEMO_CLIENT_KEYS, "
            "else keys the upstream accepts). Isolated (default): one scope per API key "
            "(env LLMEMO_SHARED).",
        ),
    ] = None,
    shared_namespace: Annotated[
        list[str] | None,
        typer.Option(
            help="A namespace every accepted caller shares, as --shared does for all of them "
            "(repeatable; env LLMEMO_SHARED_NAMESPACES, comma-separated). The others stay "
            "isolated per API key.",
        ),
    ] = None,
    ttl: Annotated[
        str | None, typer.Option(help="Entry lifetime, e.g. 24h (env LLMEMO_TTL).")
    ] = None,
    max_ttl: Annotated[
        str | None,
        typer.Option(
            help="Longest entry lifetime a caller or setting may ask for (env LLMEMO_MAX_TTL; "
            "default 30d).",
        ),
    ] = None,
    max_entry_bytes: Annotated[
        int | None,
        typer.Option(
            help="Answers whose entry is bigger are served but not stored (env "
            "LLMEMO_MAX_ENTRY_BYTES; default 1048576).",
        ),
    ] = None,
    near_ttl: Annotated[
        str | None,
        typer.Option(
            help="Keep a hit's entry in process this long, e.g. 1s (0: off) (env LLMEMO_NEAR_TTL; "
            "default 1s)."
        ),
    ] = None,
    semantic: Annotated[
        bool | None,
        typer.Option(
            "--semantic/--exact-only",
            help="Also answer paraphrases from the cache (semantic layer; env LLMEMO_SEMANTIC). "
            "Off by default. Needs the semantic extra: checked before the port is bound.",
        ),
    ] = None,
    semantic_threshold: Annotated[
        float | None,
        typer.Option(
            help="Cosine similarity in [0, 1] a semantic match needs (1.0 = exact only; default: "
            "the embedder's calibrated value) (env LLMEMO_SEMANTIC_THRESHOLD)."
        ),
    ] = None,
    semantic_embedder: Annotated[
        str | None,
        typer.Option(
            help="minilm (offline, default), openai:MODEL[@URL] or ollama:MODEL[@URL] "
            "(env LLMEMO_SEMANTIC_EMBEDDER)."
        ),
    ] = None,
    semantic_verifier: Annotated[
        str | None,
        typer.Option(
            help="A chat model that must confirm borderline semantic matches, asked at the OpenAI "
            "base URL with LLMEMO_SEMANTIC_VERIFIER_API_KEY (env LLMEMO_SEMANTIC_VERIFIER). Off "
            "by default."
        ),
    ] = None,
    semantic_hit_log: Annotated[
        int | None,
        typer.Option(
            help="Served semantic hits kept per namespace for feedback, 0 for none "
            "(env LLMEMO_SEMANTIC_HIT_LOG; default 1000)."
        ),
    ] = None,
    semantic_max_error: Annotated[
        float | None,
        typer.Option(
            help="Verified semantic hits: the largest share of wrong semantic hits accepted, in "
            "(0, 0.5], e.g. 0.02; candidates the learned bound does not cover go upstream "
            "(env LLMEMO_SEMANTIC_MAX_ERROR). Off by default."
        ),
    ] = None,
    semantic_judge: Annotated[
        str | None,
        typer.Option(
            help="How verified hits compare a fresh answer with the cached one: exact (default), "
            "embedding[:X] or llm (env LLMEMO_SEMANTIC_JUDGE)."
        ),
    ] = None,
    otel: Annotated[
        bool | None,
        typer.Option(
            "--otel/--no-otel",
            help="OpenTelemetry spans and metrics, exported over OTLP (OTEL_EXPORTER_OTLP_*) "
            "(env LLMEMO_OTEL). Off by default. Needs the otel extra.",
        ),
    ] = None,
    dashboard: Annotated[
        bool | None,
        typer.Option(
            "--dashboard/--no-dashboard",
            help="The operator's page at /dashboard, behind LLMEMO_ADMIN_TOKEN (env "
            "LLMEMO_DASHBOARD; default on).",
        ),
    ] = None,
    dashboard_show_prompts: Annotated[
        bool | None,
        typer.Option(
            "--dashboard-show-prompts/--dashboard-hide-prompts",
            help="Show the query and matched prompt of recent semantic hits on the dashboard "
            "(prompts may be sensitive; env LLMEMO_DASHBOARD_SHOW_PROMPTS; default hidden).",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML file of settings (env LLMEMO_CONFIG).")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="uvicorn log level (default info).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Server processes sharing the port (env LLMEMO_WORKERS; default 1)."),
    ] = None,
    max_header_bytes: Annotated[
        int | None,
        typer.Option(
            help="Bytes a request line and headers may take; more is answered 431 "
            "(env LLMEMO_MAX_HEADER_BYTES; default 65536)."
        ),
    ] = None,
    header_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds a request's headers may take to arrive; then 408, connection closed "
            "(env LLMEMO_HEADER_TIMEOUT; default 20)."
        ),
    ] = None,
    body_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds a request's body may take to arrive; then 408, connection closed "
            "(env LLMEMO_BODY_TIMEOUT; default 60)."
        ),
    ] = None,
    timeout_keep_alive: Annotated[
        int | None,
        typer.Option(
            help="Seconds an idle keep-alive connection stays open (env LLMEMO_TIMEOUT_KEEP_ALIVE; "
            "default 5)."
        ),
    ] = None,
    limit_concurrency: Annotated[
        int | None,
        typer.Option(
            help="Connections per server process before new requests get 503 "
            "(env LLMEMO_LIMIT_CONCURRENCY; default 1000)."
        ),
    ] = None,
) -> None:
    """Run the OpenAI- and Anthropic-compatible caching service."""
    require("uvicorn", "server")
    import uvicorn

    from llmemo.service import create_app, load_settings
    from llmemo.service.server import server_config, server_options
    from llmemo.stores.base import redact, store_url

    settings = load_settings(
        config,
        host=host,
        port=port,
        store=store,
        openai_base_url=openai_base_url,
        anthropic_base_url=anthropic_base_url,
        upstream=upstream,
        namespace=namespace,
        shared=shared,
        shared_namespaces=shared_namespace or None,
        ttl=ttl,
        max_ttl=max_ttl,
        max_entry_bytes=max_entry_bytes,
        near_ttl=near_ttl,
        semantic=semantic,
        semantic_threshold=semantic_threshold,
        semantic_embedder=semantic_embedder,
        semantic_verifier=semantic_verifier,
        semantic_hit_log=semantic_hit_log,
        semantic_max_error=semantic_max_error,
        semantic_judge=semantic_judge,
        otel=otel,
        dashboard=dashboard,
        dashboard_show_prompts=dashboard_show_prompts,
        log_level=log_level,
        workers=workers,
        max_header_bytes=max_header_bytes,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        timeout_keep_alive=timeout_keep_alive,
        limit_concurrency=limit_concurrency,
    )
    if (
        settings.upstream != "demo"
        and settings.openai_url is None
        and settings.anthropic_url is None
    ):
        fail(_NO_UPSTREAM, 2)
    _check_store(store_url(settings.store))
    mode = "isolated per API key"
    who = (  # who may use the shared answers (service/access.py)
        "for the LLMEMO_CLIENT_KEYS keys"
        if settings.client_keys is not None
        else "for the keys the upstream accepts"
    )
    if settings.shared:
        mode = f"shared, {who}"
    elif settings.shared_namespaces:
        names = ", ".join(settings.shared_namespaces)
        mode += f", except shared namespaces {names} ({who})"
    if settings.semantic:
        # One BLAS thread per process: a single-text embedding is 2x slower with several threads
        # on a busy machine (docs/benchmarks.md). Must be set before numpy is imported.
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, "1")
        from llmemo.core.semantic import default_threshold

        threshold = settings.semantic_threshold
        if threshold is None:  # ConfigError (exit 2) now, for an embedder without a default
            threshold = default_threshold(settings.semantic_embedder)
        mode += f", semantic ({settings.semantic_embedder}, threshold {threshold:g}"
        if settings.semantic_max_error is not None:
            mode += f", max_error {settings.semantic_max_error:g}, judge {settings.semantic_judge}"
        mode += ")"
        _check_embedder(settings.semantic_embedder)
    if settings.otel:
        mode += f", OpenTelemetry ({_install_otel()})"
    demo = None
    if settings.upstream == "demo":
        from llmemo.testing.server import UpstreamServer

        demo = UpstreamServer().start()
        settings = settings.model_copy(
            update={"openai_base_url": demo.openai_base_url, "anthropic_base_url": demo.url}
        )
        typer.echo(f"llmemo: demo upstream (deterministic fake answers) on {demo.url}", err=True)
    typer.echo(
        f"llmemo: serving on http://{settings.host}:{settings.port}/v1 "
        f"(store {redact(store_url(settings.store))}, namespace {settings.namespace}, {mode}"
        + (f", {settings.workers} workers)" if settings.workers > 1 else ")"),
        err=True,
    )
    if settings.dashboard:
        locked = "" if settings.admin_token is not None else " (locked: set LLMEMO_ADMIN_TOKEN)"
        typer.echo(
            f"llmemo: dashboard on http://{settings.host}:{settings.port}/dashboard{locked}",
            err=True,
        )
    try:
        if settings.workers == 1:
            server_settings = server_config(
                create_app(settings),
                settings,
                host=settings.host,
                port=settings.port,
                log_level=settings.log_level,
                lifespan="on",
            )
            server = uvicorn.Server(server_settings)
            with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run: Ctrl-C is a clean stop
                server.run()
            if not server.started:
                raise typer.Exit(3)  # uvicorn said why (a port in use, a failed start-up)
        else:  # each worker builds its app (and its protocol its limits) from these settings
            from llmemo.service.app import worker_environment

            os.environ.update(worker_environment(settings))
            uvicorn.run(
                "llmemo.service.app:worker_app",
                factory=True,
                workers=settings.workers,
                host=settings.host,
                port=settings.port,
                log_level=settings.log_level,
                lifespan="on",
                **server_options(settings),
            )
    finally:
        if demo is not None:
            demo.stop()


def _check_store(url: str) -> None:
    """Fail now on a store URL that cannot work; only warn when the store is down (fail-open)."""
    from llmemo.errors import StoreError
    from llmemo.stores.base import from_url, redact

    store = from_url(url)  # ConfigError (one line, exit 2) for a bad URL
    try:
        store.ping()
    except StoreError as exc:
        typer.echo(
            f"llmemo: warning: the store {redact(url)} does not answer ({exc}); "
            "serving anyway, every request goes upstream until it does",
            err=True,
        )
    finally:
        with contextlib.suppress(StoreError):
            store.close()


def _install_otel() -> str:
    """The global OpenTelemetry providers, before binding: a missing extra is one line (exit 2)."""
    from llmemo.errors import MissingExtraError

    try:
        from llmemo.service.telemetry import install_sdk

        return install_sdk()
    except MissingExtraError as exc:
        fail(f"--otel: {exc}", 2)


def _check_embedder(spec: str) -> None:
    """Build the embedder once before binding, so a missing extra or model is one line (exit 2)
    instead of a traceback from the app's start-up after "serving on"."""
    from llmemo.errors import LLMemoError

    try:
        from llmemo.embed.base import from_spec

        from_spec(spec)
    except LLMemoError as exc:
        fail(f"--semantic: {exc}", 2)
    except ImportError as exc:  # a dependency that is there but broken
        fail(f"--semantic: {exc}: pip install 'llmemo[semantic]'", 2)
