"""The semantic figures of the dashboard's rollups through `llmemo serve --semantic`: served
similarities, near misses and guard refusals (GET /admin/stats)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai

from tests.semantic.test_service import FRANCE, PARAPHRASE, ask, serve_semantic
from tests.service.conftest import ALICE, ServiceServer

__all__ = ["serve_semantic"]  # the fixture, used here
TOKEN = "admin-s3cret"


def test_served_similarities_near_misses_and_refusals_are_kept(
    serve_semantic: Callable[..., ServiceServer],
) -> None:
    service = serve_semantic(semantic_threshold=0.85, admin_token=TOKEN)
    with openai.OpenAI(api_key=ALICE, base_url=service.base_url, max_retries=0) as alice:
        assert ask(alice, FRANCE)[0] == "miss"
        assert ask(alice, PARAPHRASE)[0] == "semantic"
        assert ask(alice, "Can I eat eggs during Lent?")[0] == "miss"
        assert ask(alice, "Can't I eat eggs during Lent?")[0] == "miss"  # refused: a negation
    answer = httpx.get(
        f"{service.url}/admin/stats", headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    got = answer.json()
    assert got["totals"]["semantic"] == 1 and got["totals"]["miss"] == 3
    served = [bucket for bucket in got["semantic"]["served"] if bucket[2]]
    assert len(served) == 1 and served[0][2] == 1 and served[0][0] >= 0.85
    near = [bucket for bucket in got["semantic"]["near_miss"] if bucket[2]]
    assert sum(bucket[2] for bucket in near) == 1 and near[0][0] >= 0.85
    assert got["semantic"]["guard_refusals"] == {"negation": 1}
