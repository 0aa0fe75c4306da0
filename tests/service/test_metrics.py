"""Metrics counted on the request path and applied at the scrape (or when enough are waiting)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmemo.core.entry import Usage
from llmemo.core.facade import Hit, Result
from llmemo.service import metrics as metrics_module
from llmemo.service.metrics import Metrics

ROUTE = "/v1/chat/completions"
MODEL = "gpt-4o-mini"
RESPONSE = {"model": MODEL, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5}}


def hit_result() -> Result:
    hit = Hit(RESPONSE, "k", 0.0, 1.0, MODEL, Usage(10, 5))
    return Result(RESPONSE, "hit", hit)


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_a_scrape_sees_every_answer_recorded_before_it() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.record(ROUTE, MODEL, hit_result(), 0.0007)
    metrics.record(ROUTE, MODEL, Result(RESPONSE, "miss"), 0.5)
    got = samples(metrics)
    labels = (("cache", "hit"), ("model", MODEL), ("route", ROUTE))
    assert got[("llmemo_requests_total", labels)] == 3
    assert got[("llmemo_requests_total", (("cache", "miss"), *labels[1:]))] == 1
    assert got[("llmemo_tokens_saved_total", (("model", MODEL), ("route", ROUTE)))] == 45
    assert got[("llmemo_dollars_saved_total", (("model", MODEL), ("route", ROUTE)))] > 0
    assert got[("llmemo_hit_latency_seconds_count", (("route", ROUTE),))] == 3
    assert got[("llmemo_hit_latency_seconds_bucket", (("le", "0.001"), ("route", ROUTE)))] == 3
    assert got[("llmemo_hit_latency_seconds_bucket", (("le", "0.0005"), ("route", ROUTE)))] == 0
    metrics.record(ROUTE, MODEL, hit_result(), 0.0007)
    assert samples(metrics)[("llmemo_requests_total", labels)] == 4  # counted once each


def test_waiting_latencies_are_applied_without_a_scrape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_module, "DRAIN_EVERY", 5)
    metrics = Metrics()
    for _ in range(5):
        metrics.record(ROUTE, MODEL, hit_result(), 0.002)
    assert metrics._latencies == {} and metrics._counts == {}  # applied: nothing grows unbounded
    histogram = metrics.hit_latency.labels(ROUTE)
    assert histogram._sum.get() == pytest.approx(0.01)


def model_labels(metrics: Metrics) -> set[str]:
    return {
        dict(labels)["model"]
        for (name, labels), _ in samples(metrics).items()
        if name == "llmemo_requests_total"
    }


def test_model_labels_are_bounded_and_unknown_models_fold_into_other() -> None:
    metrics = Metrics(max_models=3)
    for n in range(5000):
        metrics.record(ROUTE, f"made-up-{n}", Result(RESPONSE, "miss"), 0.1)
    for known in ("gpt-4o-mini", "claude-haiku-4"):  # price table names always keep their label
        metrics.record(ROUTE, known, Result(RESPONSE, "miss"), 0.1)
    metrics.record(ROUTE, "made-up-1", Result(RESPONSE, "miss"), 0.1)  # seen early: kept
    labels = model_labels(metrics)
    assert labels == {"made-up-0", "made-up-1", "made-up-2", "other", "gpt-4o-mini",
                      "claude-haiku-4"}  # fmt: skip
    got = samples(metrics)
    other = (("cache", "miss"), ("model", "other"), ("route", ROUTE))
    assert got[("llmemo_requests_total", other)] == 4997
    assert len(metrics.render()) < 20_000  # was 1.2 MB for 5,000 names


def test_model_labels_carry_no_control_characters_and_are_cut() -> None:
    metrics = Metrics()
    metrics.record(ROUTE, "evil\x00model\n\x1b[31m", Result(RESPONSE, "miss"), 0.1)
    metrics.record(ROUTE, "x" * 500, Result(RESPONSE, "miss"), 0.1)
    metrics.record(ROUTE, None, Result(RESPONSE, "miss"), 0.1)
    assert model_labels(metrics) == {"evilmodel[31m", "x" * 100, "-"}
    assert b"\x00" not in metrics.render()


def test_answers_of_many_tenants_are_applied_before_they_pile_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics_module, "MAX_PENDING", 8)
    metrics = Metrics()
    for tenant in range(20):  # misses only: no hit latency triggers a drain
        metrics.record(ROUTE, MODEL, Result(RESPONSE, "miss"), 0.5, "ns", f"tenant-{tenant}")
    assert len(metrics._counts) < 8  # drained on the way, not kept per tenant until a scrape
    labels = (("cache", "miss"), ("model", MODEL), ("route", ROUTE))
    assert samples(metrics)[("llmemo_requests_total", labels)] == 20
