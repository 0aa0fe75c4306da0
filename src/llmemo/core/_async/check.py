"""The I/O of `AsyncCache.check()`: probe the store with a key of its own, ask a Redis server
what it runs, and embed one text when there is a semantic layer.

The sync twin in `core/_sync/check.py` is GENERATED from this file by `scripts/gen_sync.py`.
"""

from __future__ import annotations

import os
from typing import Any

from llmemo.core.check import (
    CheckReport,
    Stopwatch,
    eviction_warning,
    has_search,
    one_node,
    server_name,
    text,
)
from llmemo.core.semantic import AsyncSemanticLayer
from llmemo.errors import LLMemoError, StoreError
from llmemo.stores import keys
from llmemo.stores.base import AsyncStore, redact

PROBE_TTL = 60.0  # seconds: a probe key left behind by a crash expires on its own


async def check_store(
    store: AsyncStore, prefix: str, semantic: AsyncSemanticLayer | None = None
) -> CheckReport:
    """Connect, write, read back and delete a probe key; never raises for a store failure."""
    url = redact(store.url)
    try:
        await store.ping()  # connects
        watch = Stopwatch()
        await store.ping()  # one round trip on the open connection
    except StoreError as exc:
        return CheckReport(url, ok=False, reachable=False, error=str(exc))
    latency = watch.ms()
    error = await _round_trip(store, keys.check_key(prefix, os.urandom(8).hex()))
    warnings: list[str] = []
    server, search, eviction = await _server_facts(store, warnings)
    policy = eviction_warning(eviction)
    if policy is not None:
        warnings.append(policy)
    described, embeds = await _embedder(semantic)
    return CheckReport(
        url,
        ok=error is None,
        reachable=True,
        latency_ms=latency,
        error=error,
        server=server,
        search=search,
        eviction=eviction,
        semantic=described,
        semantic_ok=embeds,
        warnings=tuple(warnings),
    )


async def _round_trip(store: AsyncStore, key: str) -> str | None:
    """None when the probe key was written, read back and deleted; else what went wrong."""
    value = os.urandom(16)
    try:
        await store.set(key, value, PROBE_TTL)
        if await store.get(key) != value:
            return f"the probe key {key} did not read back as written"
        await store.delete([key])
        if await store.get(key) is not None:
            return f"the probe key {key} is still there after DELETE"
    except StoreError as exc:
        return str(exc)
    return None


async def _server_facts(
    store: AsyncStore, warnings: list[str]
) -> tuple[str | None, bool | None, str | None]:
    """(server and version, search module loaded, maxmemory-policy) of a Redis store; what
    cannot be read (a managed Redis may refuse CONFIG) is None, with a warning saying why."""
    client: Any = getattr(store, "client", None)
    if not type(client).__module__.startswith("redis."):
        return None, None, None
    import redis

    server = search = policy = None
    try:
        server = server_name(one_node(await client.info("server")))
    except redis.RedisError as exc:
        warnings.append(f"cannot read INFO: {type(exc).__name__}: {exc}")
    try:
        search = has_search(await client.module_list())
    except redis.RedisError as exc:
        warnings.append(f"cannot read MODULE LIST: {type(exc).__name__}: {exc}")
    try:
        values = one_node(await client.config_get("maxmemory-policy"))
        policy = next((text(v) for k, v in values.items() if text(k) == "maxmemory-policy"), None)
    except redis.RedisError as exc:
        warnings.append(f"cannot read maxmemory-policy: {type(exc).__name__}: {exc}")
    return server, search, policy


async def _embedder(semantic: AsyncSemanticLayer | None) -> tuple[str | None, bool | None]:
    """What the semantic layer's embedder is and whether it embeds a text; (None, None) without."""
    if semantic is None:
        return None, None
    embedder = semantic.raw_embedder
    name = f"{embedder.name} {embedder.model}"
    watch = Stopwatch()
    try:
        vectors = await embedder.embed(["llmemo check"])
    except LLMemoError as exc:
        return f"{name}: {exc}", False
    return f"{name}: {vectors.shape[1]} dims, {watch.ms():.0f} ms for one text", True
