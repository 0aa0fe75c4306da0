"""examples/grafana/llmemo.json: valid JSON whose PromQL names only what GET /metrics exports.

The app is started with its lifespan against the local upstream; a few requests (miss, hit, an
upstream error, an Anthropic call) give the metrics samples; the scrape is parsed with
prometheus_client's own parser.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from llmemo.service import create_app, load_settings
from llmemo.testing.server import UpstreamServer

DASHBOARD = Path(__file__).resolve().parents[2] / "examples" / "grafana" / "llmemo.json"
METRIC = re.compile(r"\bllmemo_[a-z_]+\b")
BY = re.compile(r"\bby \(([^)]*)\)\s*\(([^()]*\([^()]*\)[^()]*|[^()]*)")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


@pytest_asyncio.fixture
async def app(upstream: UpstreamServer) -> AsyncIterator[Starlette]:
    settings = load_settings(
        store="memory://", openai_base_url=upstream.openai_base_url, anthropic_base_url=upstream.url
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def scrape(app: Starlette) -> dict[str, set[str]]:
    """Exported series name -> the label names seen on its samples."""
    headers = {"authorization": "Bearer sk-grafana", "anthropic-version": "2023-06-01"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://llmemo") as http:
        chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "grafana"}]}
        for _ in range(2):  # a miss, then a hit
            assert (await http.post("/v1/chat/completions", json=chat, headers=headers)).is_success
        failing = {**chat, "model": "fail-429"}
        assert (
            await http.post("/v1/chat/completions", json=failing, headers=headers)
        ).status_code == 429
        claude = {**chat, "model": "claude-haiku-4-5", "max_tokens": 20}
        assert (await http.post("/v1/messages", json=claude, headers=headers)).is_success
        text = (await http.get("/metrics")).text
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for suffix in SUFFIXES.get(family.type, ("",)):
            series.setdefault(family.name + suffix, set())
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["panels"]
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert all(METRIC.search(e) for e in exprs)
    return exprs


@pytest.mark.asyncio
async def test_every_query_names_an_exported_metric(app: Starlette) -> None:
    series = await scrape(app)
    named = {m for e in expressions() for m in METRIC.findall(e)}
    assert named - set(series) == set()
    # The queries cover what a user looks at first.
    assert {"llmemo_requests_total", "llmemo_hit_latency_seconds_bucket"} <= named


@pytest.mark.asyncio
async def test_grouping_labels_exist_on_the_metrics(app: Starlette) -> None:
    """`sum by (cache) (rate(llmemo_requests_total...))`: `cache` is a label of that metric."""
    series = await scrape(app)
    checked = 0
    for expr in expressions():
        for labels, inner in BY.findall(expr):
            for metric in METRIC.findall(inner):
                if series[metric]:  # a metric with samples in this scrape
                    wanted = {label.strip() for label in labels.split(",")}
                    assert wanted <= series[metric] | {"le"}, (expr, series[metric])
                    checked += 1
    assert checked >= 5


def test_the_dashboard_is_importable_json() -> None:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] == "llmemo" and dashboard["uid"]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "job"}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
