"""`POST /v1/warm` and `GET /v1/warm/{id}`: warming the cache for a scheduler (QStash, cron, CI).

Each delivery is authenticated (auth.py), made idempotent, rate limited, then run with
`llmemo.warm.Warmer` through the service's own cache and upstream clients. Idempotency lives in
the store, so it holds across instances: a message id (or the signature's `jti`) that already ran
gets its recorded answer back; one still running is refused with 409 by a lease (`SET NX`).
Small batches answer when done (200); large ones answer 202 with a job whose progress and
results any instance can report.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llmemo.core import AsyncCache, keys
from llmemo.core.singleflight import AsyncRenewer
from llmemo.errors import ConfigError, StoreError, UnkeyableError
from llmemo.service.auth import AuthError, Caller, WarmAuth
from llmemo.service.controls import ANONYMOUS, tenant_id
from llmemo.service.errors import UpstreamError, error_body, json_response
from llmemo.service.metrics import Metrics
from llmemo.service.proxy import read_body
from llmemo.service.ratelimit import RateLimits
from llmemo.service.settings import Settings
from llmemo.service.upstream import Upstreams
from llmemo.stores.base import AsyncStore
from llmemo.warm import (
    Batch,
    ItemResult,
    Provider,
    Summary,
    Warmer,
    WarmError,
    WarmItem,
    auth_headers,
    parse_batch,
    upstream_body,
    warm_shared,
)

log = logging.getLogger("llmemo.service.warm")
LEASE_TTL = 30.0  # renewed while a run is under way; a crashed run frees its message this fast
PROGRESS_EVERY = 0.5  # seconds between job progress writes


def _secret(value: Any) -> str | None:
    """A SecretStr's value (or a plain string), None when unset or empty."""
    if value is None:
        return None
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return text or None


@dataclass(frozen=True)
class WarmConfig:
    """What /v1/warm needs from the settings, parsed once."""

    auth: WarmAuth
    warm_limit: str
    miss_limit: str | None
    concurrency: int
    background_from: int
    record_ttl: float
    api_keys: Mapping[Provider, str | None]
    namespace: str  # the service's own (an item's `namespace` wins)
    shares: Callable[[str], bool]  # is a namespace shared, as the proxy reads it
    max_body_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> WarmConfig:
        auth = WarmAuth(
            current_key=_secret(settings.qstash_current_signing_key),
            next_key=_secret(settings.qstash_next_signing_key),
            token=_secret(settings.warm_token),
            url=settings.warm_url,
        )
        return cls(
            auth=auth,
            warm_limit=settings.warm_rate_limit,
            miss_limit=settings.miss_rate_limit,
            concurrency=settings.warm_concurrency,
            background_from=settings.warm_background_from,
            record_ttl=settings.warm_record_ttl,
            api_keys={
                "openai": _secret(settings.warm_openai_api_key),
                "anthropic": _secret(settings.warm_anthropic_api_key),
            },
            namespace=settings.namespace,
            shares=settings.shares,
            max_body_bytes=settings.max_body_bytes,
        )


def _problem(
    status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    return json_response(error_body("openai", kind, message), status, headers)


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


class Warming:
    """The warm endpoints of one app: auth, limits, idempotency records and background jobs."""

    def __init__(self, settings: Settings, metrics: Metrics, store_url: str) -> None:
        self.config = WarmConfig.from_settings(settings)
        self.limits = RateLimits(
            self.config.warm_limit, self.config.miss_limit, store_url, metrics.registry
        )
        self.items = Counter(
            "llmemo_warm_items",
            "Items handled by /v1/warm, by result (stored, fresh, failed).",
            ["status"],
            registry=metrics.registry,
        )
        self._cache: AsyncCache | None = None
        self._upstreams: Upstreams | None = None
        self._jobs: set[asyncio.Task[None]] = set()

    # -- life cycle ---------------------------------------------------------------------------

    async def open(self, cache: AsyncCache, upstreams: Upstreams) -> None:
        """Start serving with the app's cache and upstream clients (in the lifespan)."""
        self._cache, self._upstreams = cache, upstreams
        await self.limits.open()

    async def aclose(self) -> None:
        """Stop background jobs (recorded as interrupted) and the limiter; before the cache closes."""
        for task in list(self._jobs):
            task.cancel()
        if self._jobs:
            await asyncio.gather(*self._jobs, return_exceptions=True)
        await self.limits.aclose()
        self._cache = self._upstreams = None

    def routes(self) -> list[Route]:
        return [
            Route("/v1/warm", self.post, methods=["POST"]),
            Route("/v1/warm/{job}", self.job, methods=["GET"]),
        ]

    @property
    def cache(self) -> AsyncCache:
        if self._cache is None:
            raise RuntimeError("the llmemo app is not started (run it with its lifespan)")
        return self._cache

    @property
    def store(self) -> AsyncStore:
        return self.cache.backend

    def _key(self, kind: str, ident: str) -> str:
        return keys.warm_key(self.cache.prefix, kind, ident)

    # -- handlers -----------------------------------------------------------------------------

    async def post(self, request: Request) -> Response:
        raw = await read_body(request, self.config.max_body_bytes)
        try:
            caller = self.config.auth.authenticate(request.headers, raw, str(request.url))
        except AuthError as exc:
            return _problem(401, "authentication_error", str(exc))
        try:
            return await self._post(request, caller, raw)
        except StoreError as exc:
            return _problem(
                503,
                "server_error",
                f"the store is unavailable ({exc}): warming needs it to record its work; "
                "retry later",
                {"retry-after": "10"},
            )

    async def job(self, request: Request) -> Response:
        try:
            self.config.auth.authenticate(request.headers, b"", str(request.url))
        except AuthError as exc:
            return _problem(401, "authentication_error", str(exc))
        job_id = request.path_params["job"]
        try:
            data = await self.store.get(self._key("job", _hash("job", job_id)))
        except StoreError as exc:
            return _problem(503, "server_error", f"the store is unavailable ({exc})")
        if data is None:
            return _problem(404, "not_found_error", f"no warm job {job_id!r} (or it expired)")
        return Response(data, 200, media_type="application/json")

    async def _post(self, request: Request, caller: Caller, raw: bytes) -> Response:
        run = await self._run_of(caller)
        digest = hashlib.sha256(raw).hexdigest()[:32]  # a run's key must come with its body
        if run is None:
            await self.store.ping()  # nothing could be stored: 503 now, so the caller retries
        else:
            recorded = await self.store.get(self._key("done", run))
            if recorded is not None:
                return _replay(recorded, digest)
        decision = await self.limits.check_warm(caller.name)
        limit_headers = decision.headers() if decision is not None else {}
        if decision is not None and not decision.allowed:
            return _problem(
                429,
                "rate_limit_exceeded",
                f"too many warm requests: the limit is {self.limits.warm_limit}; "
                "retry after Retry-After seconds",
                limit_headers,
            )
        try:
            batch = parse_batch(orjson.loads(raw))
        except orjson.JSONDecodeError as exc:
            return _problem(400, "invalid_request_error", f"the body is not valid JSON: {exc}")
        except (ConfigError, UnkeyableError) as exc:
            return _problem(400, "invalid_request_error", str(exc))
        for index, item in enumerate(batch.items):  # an entry the proxy never reads: refused
            if isinstance(item, WarmItem):
                try:
                    warm_shared(item, self.config.namespace, self.config.shares)
                except ConfigError as exc:
                    return _problem(400, "invalid_request_error", f"item {index}: {exc}")
        background = _wants_background(request, len(batch.items), self.config.background_from)
        if run is None:
            return await self._start(batch, background, limit_headers)
        lease, token = self._key("lease", run), f"{os.urandom(12).hex()}:{digest}".encode()
        if not await self.store.add(lease, token, LEASE_TTL):
            holder = await self.store.get(lease)
            if holder is not None and not holder.endswith(digest.encode()):
                return _other_body(limit_headers)
            return _problem(
                409,
                "conflict",
                "this message is already being warmed; its result is recorded when done",
                {"retry-after": "5", **limit_headers},
            )
        try:
            recorded = await self.store.get(self._key("done", run))  # finished while we asked
            if recorded is not None:
                return _replay(recorded, digest)
            async with AsyncRenewer(
                lambda: self.store.expire_if_equal(lease, token, LEASE_TTL), LEASE_TTL / 3
            ):
                response = await self._start(batch, background, limit_headers)
            record = {
                "status": response.status_code,
                "body": orjson.loads(response.body),
                "digest": digest,
            }
            await self.store.set(
                self._key("done", run), orjson.dumps(record), self.config.record_ttl
            )
            return response
        finally:
            await self.store.delete_if_equal(lease, token)

    async def _run_of(self, caller: Caller) -> str | None:
        """The run's record key, or None (a bearer call without `Idempotency-Key`).

        Every signature starts at most one run: its id (`jti`) is recorded until it expires, and
        a signature seen before, with another message id or none, is a replay that maps to the
        run it was first used for.
        """
        run_id = caller.run_id
        if run_id is None:
            return None
        run = _hash(caller.kind, run_id)
        if caller.jti is not None:
            key = self._key("jti", _hash(caller.jti))
            ttl = max(1.0, (caller.expires or time.time()) - time.time() + 60.0)
            if not await self.store.add(key, run.encode(), ttl):
                first = await self.store.get(key)
                if first is not None:
                    return first.decode()
        return run

    # -- running ------------------------------------------------------------------------------

    def _warmer(self, batch: Batch) -> Warmer:
        return Warmer(
            self.cache,
            self._call,
            concurrency=self.config.concurrency,
            refresh_before=batch.refresh_before,
            tenant=self._tenant,
        )

    def _tenant(self, item: WarmItem) -> str | None:
        """The scope the proxy reads the item's entry in: None in a shared namespace, else the
        tenant of the warm API key (`"shared": false`; checked by `warm_shared` before the run)."""
        if warm_shared(item, self.config.namespace, self.config.shares):
            return None
        key = self.config.api_keys[item.provider]
        return tenant_id(key) if key else ANONYMOUS

    async def _call(self, item: WarmItem) -> Mapping[str, Any]:
        if self._upstreams is None:
            raise RuntimeError("the llmemo app is not started")
        headers = auth_headers(item.provider, self.config.api_keys[item.provider])
        try:
            data, _ = await self._upstreams.post(
                item.provider, item.path, upstream_body(item), headers
            )
        except UpstreamError as exc:
            raise WarmError(f"the upstream answered {exc.status}: {_message(exc.body)}") from None
        return data

    def _count(self, result: ItemResult) -> None:
        self.items.labels(result.status).inc()

    async def _start(self, batch: Batch, background: bool, headers: Mapping[str, str]) -> Response:
        """Run the batch now (200 with results), or as a job (202 with its id)."""
        if not background:
            report = await self._warmer(batch).run(enumerate(batch.items), self._count)
            body = {
                "status": "done",
                "summary": report.summary.as_dict(),
                "results": [r.as_dict() for r in report.results],
            }
            return json_response(body, 200, headers)
        job_id = "wj_" + os.urandom(12).hex()
        job = Job(self, job_id, batch)
        await job.save()
        task = asyncio.ensure_future(job.run())
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)
        body = {"status": "accepted", "job": job_id, "url": f"/v1/warm/{job_id}", **job.state()}
        return json_response(body, 202, {**headers, "location": f"/v1/warm/{job_id}"})


class Job:
    """A background warm run whose state is kept in the store (any instance can report it)."""

    def __init__(self, warming: Warming, job_id: str, batch: Batch) -> None:
        self.warming = warming
        self.id = job_id
        self.batch = batch
        self.status = "running"
        self.summary = Summary()
        self.results: list[ItemResult] | None = None
        self.created = time.time()
        self.error: str | None = None

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "total": len(self.batch.items),
            "done": self.summary.total,
            "summary": self.summary.as_dict(),
            "created": self.created,
            "updated": time.time(),
        }
        if self.error is not None:
            state["error"] = self.error
        if self.results is not None:
            state["results"] = [r.as_dict() for r in self.results]
        return state

    async def save(self) -> None:
        store, key = self.warming.store, self.warming._key("job", _hash("job", self.id))
        await store.set(key, orjson.dumps(self.state()), self.warming.config.record_ttl)

    def _done(self, result: ItemResult) -> None:
        self.summary.add(result)
        self.warming._count(result)

    async def run(self) -> None:
        warmer = self.warming._warmer(self.batch)
        work = asyncio.ensure_future(warmer.run(enumerate(self.batch.items), self._done))
        try:
            while not work.done():
                await asyncio.wait({work}, timeout=PROGRESS_EVERY)
                if not work.done():
                    await self._save_quietly()
            report = work.result()
            self.results, self.status = report.results, "done"
        except asyncio.CancelledError:
            work.cancel()
            self.status, self.error = "interrupted", "the service stopped during the job"
            await self._save_quietly()
            raise
        except Exception as exc:  # a bug, not an item's failure: record it, do not lose the job
            log.exception("warm job %s failed", self.id)
            self.status, self.error = "failed", f"{type(exc).__name__}: {exc}"
        await self._save_quietly()

    async def _save_quietly(self) -> None:
        try:
            await self.save()
        except StoreError as exc:  # progress is best effort; the entries are what matters
            log.warning("cannot record warm job %s: %s", self.id, exc)


def _wants_background(request: Request, size: int, background_from: int) -> bool:
    asked = request.query_params.get("background")
    if asked is not None:
        return asked.lower() in ("1", "true", "yes")
    return size > background_from


def _replay(recorded: bytes, digest: str) -> Response:
    """The recorded answer of a run that already happened (no upstream call); 422 when this
    request reuses the run's key with another body."""
    record = orjson.loads(recorded)
    if record.get("digest", digest) != digest:
        return _other_body({})
    return json_response(record["body"], int(record["status"]), {"x-llmemo-warm": "replayed"})


def _other_body(headers: Mapping[str, str]) -> Response:
    return _problem(
        422,
        "invalid_request_error",
        "this Idempotency-Key (or Upstash-Message-Id) was first used with a different body; "
        "send a new key for a different batch",
        headers,
    )


def _message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode(errors="replace")
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message[:300] if isinstance(message, str) else "error"
