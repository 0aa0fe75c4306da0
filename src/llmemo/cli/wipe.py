"""`llmemo wipe`: erase one user's or one tenant's data from a store (`Cache.wipe`)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from llmemo.cli.main import JsonOpt, StoreOpt, app, emit, fail, open_cache
from llmemo.core.erase import ALL_NAMESPACES
from llmemo.errors import ConfigError, StoreError
from llmemo.stores.base import redact


@app.command()
def wipe(
    user: Annotated[
        str | None, typer.Option(help="The user whose data goes (in every tenant unless --tenant).")
    ] = None,
    tenant: Annotated[
        str | None, typer.Option(help="The tenant whose data goes (a tenant id, as stored).")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="LLMEMO_WIPE_API_KEY",
            help="The tenant of this API key, as `llmemo serve` names it (instead of --tenant).",
        ),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Only this namespace.")
    ] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", help="Every namespace (the default).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Erase a user's or a tenant's entries (with their stored prompts), vector records and
    embedding-cache rows, and tell every running process to drop its in-process copies.

    Prints what was deleted, per kind. Asks first on a terminal (--yes skips the question);
    elsewhere it takes --yes.
    """
    if namespace is not None and all_namespaces:
        fail("give --namespace or --all-namespaces, not both", 2)
    if tenant is not None and api_key is not None:
        fail("give --tenant or --api-key, not both", 2)
    if user is None and tenant is None and api_key is None:
        fail("say whose data to erase: --user, --tenant or --api-key", 2)
    if api_key is not None:
        from llmemo.service.controls import tenant_id

        tenant = tenant_id(api_key)
    with open_cache(store, "default") as cache:
        whose = " and ".join(
            f"{kind} {value!r}" for kind, value in (("user", user), ("tenant", tenant)) if value
        )
        where = f"namespace {namespace!r}" if namespace else "every namespace"
        if not yes:
            question = f"Erase every record of {whose} in {where} of {redact(cache.backend.url)}?"
            if not sys.stdin.isatty():
                fail(f"{question} Add --yes to do so.", 2)
            if not typer.confirm(question, default=False):
                fail("nothing deleted", 1)
        try:
            report = cache.wipe(user=user, tenant=tenant, namespace=namespace or ALL_NAMESPACES)
        except ConfigError as exc:
            fail(str(exc), 2)
        except StoreError as exc:
            fail(f"the wipe failed (run it again: it picks up what is left): {exc}")
        emit(report.to_dict(), as_json)
