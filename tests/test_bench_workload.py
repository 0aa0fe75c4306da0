"""bench/workload.py, the benchmarks' shared workload: distinct, deterministic, realistic sizes."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import orjson
import pytest

from llmemo.core.request import Scope, digest, to_request

BENCH = Path(__file__).resolve().parent.parent / "bench" / "workload.py"


@pytest.fixture(scope="module")
def workload() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_workload", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def questions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "questions.jsonl"
    rows = [{"a": f"How does question {i} work?", "b": f"Why is {i} a number?"} for i in range(150)]
    path.write_bytes(b"\n".join(orjson.dumps(row) for row in rows) + b"\n")
    return path


def test_requests_are_distinct_keys_and_deterministic(
    workload: ModuleType, questions: Path
) -> None:
    work = workload.Workload.build(500, seed=3, data=questions)  # more than the 300 questions
    again = workload.Workload.build(500, seed=3, data=questions)
    assert work.requests == again.requests and work.responses == again.responses
    shas = {digest(to_request(body), Scope()) for body in work.requests}
    assert len(shas) == 500  # distinct for the cache too, not only as JSON
    models = Counter(body["model"] for body in work.requests)
    assert len(models) == 3 and len({body["messages"][0]["content"] for body in work.requests}) > 1


def test_answer_sizes_span_the_compression_threshold(workload: ModuleType, questions: Path) -> None:
    work = workload.Workload.build(400, seed=1, data=questions)
    sizes = [len(r["choices"][0]["message"]["content"]) for r in work.responses]
    assert min(sizes) >= 150 and max(sizes) <= workload.ANSWER_MAX
    assert any(s < 1024 for s in sizes) and any(s >= 4096 for s in sizes)


def test_orders(workload: ModuleType, questions: Path) -> None:
    work = workload.Workload.build(200, seed=1, data=questions)
    uniform, zipf = work.order("uniform", 4000), work.order("zipf", 4000)
    assert uniform == work.order("uniform", 4000) and all(0 <= i < 200 for i in uniform + zipf)
    top = Counter(zipf).most_common(1)[0][1]
    assert top > 3 * Counter(uniform).most_common(1)[0][1]  # Zipf has a popular head
    with pytest.raises(ValueError, match="unknown order"):
        work.order("sorted", 10)
