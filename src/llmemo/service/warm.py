"""`POST /v1/warm` and `GET /v1/warm/{id}`: warming the cache for a scheduler (QStash, cron, CI).

Each delivery is authenticated (auth.py), made idempotent (`llmemo.warm.runs`), rate limited,
then run with `llmemo.warm.Warmer` through the service's own cache and upstream clients. A message
id (or the signature's `jti`) that already ran gets its recorded answer back; one still running is
refused with 409. Every error is answered through the one table (`service/errors.py`).
Small batches answer when done (200); large ones answer 202 with a job whose progress and
results any instance can report.
"""

from __future__ import annotations

import asyncio
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

from llmemo.core import AsyncCache
from llmemo.errors import ConfigError, StoreError, UnkeyableError
from llmemo.service.auth import Caller, WarmAuth
from llmemo.service.controls import ANONYMOUS, tenant_id
from llmemo.service.errors import (
    BadRequestError,
    NotFoundError,
    ServiceError,
    StoreUnavailableError,
    json_response,
    warm_error,
)
from llmemo.service.metrics import Metrics
from llmemo.service.proxy import read_body
from llmemo.service.ratelimit import RateLimitedError, RateLimits
from llmemo.service.settings import Settings
from llmemo.service.upstream import Upstreams
from llmemo.warm import (
    Batch,
    ItemResult,
    Provider,
    Summary,
    Warmer,
    WarmError,
    WarmItem,
    parse_batch,
    warm_shared,
)
from llmemo.warm.runs import Recorded, Runs, digest_of
from llmemo.warm.upstream import post_item

log = logging.getLogger("llmemo.service.warm")
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
        self.runs_done = Counter(
            "llmemo_warm_runs",
            "Batches /v1/warm ran (answered at once or as a job).",
            registry=metrics.registry,
        )
        self._cache: AsyncCache | None = None
        self._upstreams: Upstreams | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self._runs: Runs | None = None

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
    def runs(self) -> Runs:
        """The idempotent runs and job states, in the cache's store."""
        if self._runs is None or self._runs.store is not self.cache.backend:
            cache = self.cache
            self._runs = Runs(
                cache.backend, cache.prefix, self.config.record_ttl, keyring=cache.keyring
            )
        return self._runs

    # -- handlers -----------------------------------------------------------------------------

    async def post(self, request: Request) -> Response:
        raw = await read_body(request, self.config.max_body_bytes)
        headers: dict[str, str] = {}  # the rate limiter's, once it was asked
        try:
            caller = self.config.auth.authenticate(request.headers, raw, str(request.url))
            return await self._post(request, caller, raw, headers)
        except StoreError as exc:
            return warm_error(
                StoreUnavailableError(
                    f"the store is unavailable ({exc}): warming needs it to record its work; "
                    "retry later"
                )
            )
        except (ServiceError, WarmError, ConfigError, UnkeyableError) as exc:
            return warm_error(exc, headers)

    async def job(self, request: Request) -> Response:
        job_id = request.path_params["job"]
        try:
            self.config.auth.authenticate(request.headers, b"", str(request.url))
            data = await self.runs.job(job_id)
            if data is None:
                raise NotFoundError(f"no warm job {job_id!r} (or it expired)")
        except StoreError as exc:
            return warm_error(StoreUnavailableError(f"the store is unavailable ({exc})"))
        except ServiceError as exc:
            return warm_error(exc)
        return Response(data, 200, media_type="application/json")

    async def _post(
        self, request: Request, caller: Caller, raw: bytes, headers: dict[str, str]
    ) -> Response:
        runs, digest = self.runs, digest_of(raw)  # a run's key must come with its body
        run = None
        if caller.run_id is None:  # a bearer call without `Idempotency-Key`
            await runs.store.ping()  # nothing could be stored: 503 now, so the caller retries
        else:
            run = await runs.run_of(caller.kind, caller.run_id, caller.jti, caller.expires)
            recorded = await runs.recorded(run, digest)
            if recorded is not None:
                return _replayed(recorded)
        decision = await self.limits.check_warm(caller.name)
        if decision is not None:
            headers.update(decision.headers())
            if not decision.allowed:
                raise RateLimitedError(
                    decision,
                    "openai",
                    f"too many warm requests: the limit is {self.limits.warm_limit}; "
                    "retry after Retry-After seconds",
                )
        try:
            batch = parse_batch(orjson.loads(raw))
        except orjson.JSONDecodeError as exc:
            raise BadRequestError(f"the body is not valid JSON: {exc}") from None
        for index, item in enumerate(batch.items):  # an entry the proxy never reads: refused
            if isinstance(item, WarmItem):
                try:
                    warm_shared(item, self.config.namespace, self.config.shares)
                except ConfigError as exc:
                    raise BadRequestError(f"item {index}: {exc}") from None
        background = _wants_background(request, len(batch.items), self.config.background_from)
        if run is None:
            return await self._start(batch, background, headers)
        async with runs.claim(run, digest) as recorded:
            if recorded is not None:  # finished while we asked
                return _replayed(recorded)
            response = await self._start(batch, background, headers)
            await runs.record(run, digest, response.status_code, orjson.loads(response.body))
            return response

    # -- running ------------------------------------------------------------------------------

    def _warmer(self, batch: Batch) -> Warmer:
        self.runs_done.inc()
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
        return await post_item(self._upstreams, item, self.config.api_keys[item.provider])

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
        await self.warming.runs.save_job(self.id, orjson.dumps(self.state()))

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


def _replayed(recorded: Recorded) -> Response:
    """The recorded answer of a run that already happened (no upstream call)."""
    return json_response(recorded.body, recorded.status, {"x-llmemo-warm": "replayed"})
