"""Prometheus metrics of one app (its own registry, so two apps in a process never mix)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from llmemo.core import AsyncCache
from llmemo.core.entry import Usage, usage_of
from llmemo.core.facade import Result
from llmemo.core.pricing import DEFAULT_PRICES, Price, PriceMemo
from llmemo.core.streaming import IncompleteStreamError
from llmemo.errors import CorruptEntryError, StoreError, UndecryptableError
from llmemo.service.errors import (
    NoUpstreamError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnreachableError,
)
from llmemo.service.rollups import Rollups

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
WRONG_HIT = "feedback_wrong_hit"
"""The cache counter a wrong-hit report adds to (`cache.count(WRONG_HIT)`); the rollups count it."""
_REJECTED = "semantic_rejected:"
Labels = tuple[
    str, str, str, str | None, str | None
]  # route, model label, status, namespace, tenant
_HIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
DRAIN_EVERY = 1024  # hit latencies kept before they are applied without waiting for a scrape
MAX_PENDING = 4096  # label sets (with namespace and tenant) kept before they are applied
_UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
MAX_MODEL_LABELS = 100
"""Model names outside the price table that get their own `model` label (the first ones seen);
later ones are counted under `other`, so callers cannot grow /metrics without bound."""
OTHER_MODEL = "other"
_LABEL_CHARS = 100  # a model label is cut to this many characters
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Metrics:
    """Counters and histograms of the service; `render()` is the /metrics body."""

    def __init__(
        self, prices: Mapping[str, Price] = DEFAULT_PRICES, max_models: int = MAX_MODEL_LABELS
    ) -> None:
        self.registry = CollectorRegistry()
        self.prices = prices
        self.max_models = max_models
        self._labels: dict[str, str] = {}  # model name -> its label (known and first-seen ones)
        self._others = 0  # labels given to names outside the price table
        self._pricing = PriceMemo(prices)
        self._children: dict[tuple[str, ...], Any] = {}  # labelled children, looked up once
        # counted on the request path, applied to the metrics (and handed to the dashboard's
        # rollups, which also want the namespace and tenant) by drain(): see record
        self._counts: dict[Labels, int] = {}
        self._saved: dict[Labels, tuple[int, float]] = {}
        self._latencies: dict[str, list[float]] = {}
        self.rollups: Rollups | None = None  # the dashboard's rollups (None: not collected)
        r = self.registry
        self.requests = Counter(
            "llmemo_requests",
            "Answers by route, model and cache result (hit, semantic, miss, bypass).",
            ["route", "model", "cache"],
            registry=r,
        )
        self.hit_latency = Histogram(
            "llmemo_hit_latency_seconds",
            "Time to answer a request from the cache.",
            ["route"],
            buckets=_HIT_BUCKETS,
            registry=r,
        )
        self.upstream_latency = Histogram(
            "llmemo_upstream_latency_seconds",
            "Time the upstream took (to the end of the stream for streams).",
            ["route"],
            buckets=_UPSTREAM_BUCKETS,
            registry=r,
        )
        self.tokens_saved = Counter(
            "llmemo_tokens_saved", "Tokens answered from the cache.", ["route", "model"], registry=r
        )
        self.dollars_saved = Counter(
            "llmemo_dollars_saved",
            "List-price USD of the tokens answered from the cache.",
            ["route", "model"],
            registry=r,
        )
        self.store_errors = Counter(
            "llmemo_store_errors",
            "Store operations that failed (the cache failed open).",
            registry=r,
        )
        self.undecryptable = Counter(
            "llmemo_undecryptable",
            "Entries read that could not be decrypted (wrong or missing key, tampered): misses.",
            registry=r,
        )
        self.upstream_errors = Counter(
            "llmemo_upstream_errors",
            "Upstream failures by route and reason (HTTP status, timeout, unreachable, stream).",
            ["route", "reason"],
            registry=r,
        )
        self.skipped_sensitive = Counter(
            "llmemo_skipped_sensitive",
            "Answers served but not stored for sensitive content, by category found.",
            ["category"],
            registry=r,
        )
        self.circuit_open = Gauge(
            "llmemo_store_circuit_open",
            "1 while the store's circuit breaker is open (requests skip the store).",
            registry=r,
        )

    def render(self) -> bytes:
        self.drain()
        return generate_latest(self.registry)

    def drain(self) -> None:
        """Apply the answers counted since the last drain to the Prometheus metrics, and hand
        them to the rollups."""
        counts, self._counts = self._counts, {}
        saved, self._saved = self._saved, {}
        latencies, self._latencies = self._latencies, {}
        requests: dict[tuple[str, str, str], int] = {}
        for (route, name, status, _, _), n in counts.items():
            requests[(route, name, status)] = requests.get((route, name, status), 0) + n
        for labels, n in requests.items():
            self._child(self.requests, *labels).inc(n)
        money: dict[tuple[str, str], tuple[int, float]] = {}
        for (route, name, _, _, _), (tokens, dollars) in saved.items():
            was = money.get((route, name), (0, 0.0))
            money[(route, name)] = (was[0] + tokens, was[1] + dollars)
        for (route, name), (tokens, dollars) in money.items():
            self._child(self.tokens_saved, route, name).inc(tokens)
            if dollars:
                self._child(self.dollars_saved, route, name).inc(dollars)
        for route, seconds in latencies.items():
            histogram = self._child(self.hit_latency, route)
            for value in seconds:
                histogram.observe(value)
        if self.rollups is not None:
            self.rollups.take(counts, saved, latencies)

    def collect_into(self, rollups: Rollups) -> None:
        """Hand what is counted to these rollups too (they drain it before each of their writes)."""
        self.rollups = rollups
        rollups.before_fold = self.drain

    def watch_circuit(self, state: Callable[[], str]) -> None:
        self.circuit_open.set_function(lambda: 0.0 if state() == "closed" else 1.0)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def model_label(self, model: str | None) -> str:
        """The `model` label of a model name: itself (without control characters, cut to 100
        characters) for the price table's names and the first `max_models` others; `other` after
        that; `-` for none."""
        if not model:
            return "-"
        label = self._labels.get(model)
        if label is not None:
            return label
        label = _CONTROL.sub("", model)[:_LABEL_CHARS] or "-"
        if label not in self.prices:
            if self._others >= self.max_models:
                return OTHER_MODEL
            self._others += 1
        self._labels[model] = label
        return label

    def record(
        self,
        route: str,
        model: str | None,
        result: Result,
        seconds: float,
        namespace: str | None = None,
        tenant: str | None = None,
    ) -> None:
        """Count one answer; hits also add their latency and what they saved. `namespace` (None:
        the service's own) and `tenant` go to the dashboard's rollups only.

        Plain dict arithmetic on the request's path; the Prometheus metrics get it at the next
        scrape (`render`), or once DRAIN_EVERY hit latencies are waiting.
        """
        name = self.model_label(model)
        if not result.cached:
            labels = (route, name, result.status, namespace, tenant)
            self._counts[labels] = self._counts.get(labels, 0) + 1
            if len(self._counts) >= MAX_PENDING:  # many namespaces or tenants: keep it bounded
                self.drain()
            rollups = self.rollups
            if rollups is not None:  # what the upstream call cost, and its latency
                usage = usage_of(result.response)
                if usage.total:
                    spent = self._dollars(model or _model_of(result.response), usage)
                    rollups.spent(namespace, name, tenant, spent)
                if result.status == "miss":
                    rollups.missed(seconds)
            return
        hit = result.hit
        if self.rollups is not None and hit is not None and hit.similarity is not None:
            self.rollups.similar("served", hit.similarity)
        if result.shared and self.rollups is not None:
            self.rollups.count("followers")
        saved = self.saved_by(model, result)
        self.record_cached(route, name, result.status, saved, seconds, namespace, tenant)

    def saved_by(self, model: str | None, result: Result) -> tuple[int, float]:
        """(tokens, list-price dollars) a cached answer saved."""
        usage = result.hit.usage if result.hit is not None else usage_of(result.response)
        if not usage.total:
            return 0, 0.0
        return usage.total, self._dollars(model or _model_of(result.response), usage)

    def record_cached(
        self,
        route: str,
        name: str,
        status: str,
        saved: tuple[int, float],
        seconds: float,
        namespace: str | None = None,
        tenant: str | None = None,
    ) -> None:
        """Count one answer from the cache (`name`: the model label) that saved `saved`."""
        labels = (route, name, status, namespace, tenant)
        self._counts[labels] = self._counts.get(labels, 0) + 1
        waiting = self._latencies.get(route)
        if waiting is None:
            waiting = self._latencies[route] = []
        waiting.append(seconds)
        if saved[0]:
            tokens, spent = self._saved.get(labels, (0, 0.0))
            self._saved[labels] = (tokens + saved[0], spent + saved[1])
        if len(waiting) >= DRAIN_EVERY or len(self._counts) >= MAX_PENDING:
            self.drain()

    def _dollars(self, model: str | None, usage: Usage) -> float:
        return self._pricing.cost(model, usage)

    def upstream_took(self, route: str, seconds: float) -> None:
        """The time one upstream call took (to the end of the stream for streams)."""
        self._child(self.upstream_latency, route).observe(seconds)
        if self.rollups is not None:
            self.rollups.upstream_took(seconds)

    def upstream_failed(self, route: str, exc: BaseException) -> None:
        """Count an upstream failure (a client that went away is not one)."""
        if isinstance(exc, UpstreamError):
            self.upstream_errors.labels(route, str(exc.status)).inc()
            return
        for kind, reason in _REASONS:
            if isinstance(exc, kind):
                self.upstream_errors.labels(route, reason).inc()
                return


_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (UpstreamTimeoutError, "timeout"),
    (UpstreamUnreachableError, "unreachable"),
    (IncompleteStreamError, "stream"),
    (NoUpstreamError, "unconfigured"),
)


def _model_of(response: Mapping[str, Any]) -> str | None:
    model = response.get("model")
    return model if isinstance(model, str) else None


class MeteredCache(AsyncCache):
    """An AsyncCache that also counts its store errors in the service's metrics."""

    def __init__(self, *args: Any, metrics: Metrics, **options: Any) -> None:
        super().__init__(*args, **options)
        self.metrics = metrics

    def _count_store_error(self, error: StoreError) -> None:
        super()._count_store_error(error)
        self.metrics.store_errors.inc()
        if self.metrics.rollups is not None:
            self.metrics.rollups.store_error(error)

    def count(self, name: str, amount: float = 1) -> None:
        super().count(name, amount)
        if name == WRONG_HIT and self.metrics.rollups is not None:
            self.metrics.rollups.count("wrong_hit", amount)

    def _count_many(self, counts: Iterable[tuple[str, float]]) -> None:
        counts = tuple(counts)
        super()._count_many(counts)
        rollups = self.metrics.rollups
        if rollups is not None:
            for name, amount in counts:
                if name.startswith(_REJECTED):
                    rollups.refused(name[len(_REJECTED) :], int(amount))

    def _count_sensitive(self, found: frozenset[str]) -> None:
        super()._count_sensitive(found)
        for category in found:
            self.metrics.skipped_sensitive.labels(category).inc()

    def _count_corrupt(self, error: CorruptEntryError) -> None:
        super()._count_corrupt(error)
        if isinstance(error, UndecryptableError):
            self.metrics.undecryptable.inc()
