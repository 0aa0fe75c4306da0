"""`GET /admin/stats`: the dashboard's figures over the last hour, day or week (docs/service.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter

from llmemo.errors import StoreError
from llmemo.service.errors import (
    BadRequestError,
    NotFoundError,
    StoreUnavailableError,
    json_response,
)
from llmemo.service.rollup_report import WINDOWS, Filter
from llmemo.service.rollups import Rollups, read_stats

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from llmemo.core import AsyncCache
    from llmemo.service.settings import Settings
    from llmemo.service.warm import Warming

FILTERS = ("namespace", "model", "tenant")


def rollups_for(settings: Settings, warming: Warming) -> Rollups:
    """The rollups of a service: its settings, and the rate-limit and warm counters it samples."""
    rollups = Rollups(
        namespace=settings.namespace,
        interval=settings.dashboard_flush,
        retention=settings.dashboard_retention,
        max_names=settings.dashboard_max_names,
        max_lanes=settings.dashboard_max_instances,
    )
    limited, items, runs = warming.limits.limited, warming.items, warming.runs_done

    def sampled() -> Mapping[str, float]:
        return {
            "rate_limited": _total(limited),
            "warm_ok": _total(items, {"stored", "fresh"}),
            "warm_failed": _total(items, {"failed"}),
            "warm_runs": _total(runs),
        }

    rollups.sources.append(sampled)
    return rollups


def _total(counter: Counter, statuses: set[str] | None = None) -> float:
    """A Prometheus counter's total over its labels (those whose `status` is in `statuses`)."""
    return sum(
        sample.value
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
        and (statuses is None or sample.labels.get("status") in statuses)
    )


def where_of(query: Mapping[str, str]) -> Filter:
    """The one namespace, model or tenant filter of a query (400 for more than one)."""
    given = [(name, query[name]) for name in FILTERS if query.get(name)]
    if len(given) > 1:
        raise BadRequestError(
            "give at most one of namespace, model and tenant (got "
            + ", ".join(name for name, _ in given)
            + ")"
        )
    return given[0] if given else None


async def answer(request: Request, rollups: Rollups | None, cache: AsyncCache) -> Response:
    """The figures of every instance sharing the store, this one's counted up to now."""
    if rollups is None:
        raise NotFoundError(
            "the dashboard's rollups are off: start llmemo serve with LLMEMO_DASHBOARD=true"
        )
    name = request.query_params.get("window") or "hour"
    window = WINDOWS.get(name)
    if window is None:
        raise BadRequestError(f"window must be hour, day or week, not {name[:40]!r}")
    where = where_of(request.query_params)
    await rollups.flush()
    now = rollups.clock()
    try:
        body: dict[str, Any] = await read_stats(
            cache.backend,
            rollups.prefix,
            window,
            now,
            where,
            live_for=max(30.0, 3 * rollups.interval),
        )
    except StoreError as exc:  # this instance keeps counting: its next write has it all
        raise StoreUnavailableError(f"the rollups cannot be read now: {exc}") from None
    return json_response(body)
