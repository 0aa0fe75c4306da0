"""Feedback on semantic hits on every store and both indexes, both twins: the served-hit log, a
wrong-hit report (the key deleted, the pair kept, the same query never matched to that entry
again), by key and by request, the log's bound, texts sealed under encryption keys, erasure."""

from __future__ import annotations

import base64
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from devtools.redis_server import RedisServer
from devtools.upstash_gateway import UpstashGateway
from llmemo import AsyncCache, Cache
from llmemo.core.feedback import FeedbackLimits, ServedHit
from llmemo.errors import ConfigError
from llmemo.stores import keys
from tests.core.helpers import Upstream, answer, chat
from tests.semantic.conftest import CountingEmbedder, Twin

pytestmark = pytest.mark.asyncio

FRANCE = "What is the capital of France?"
PARAPHRASE = "Which city is the capital of France?"
CLOSER = "What's the capital of France?"
KEY = "k1:" + base64.b64encode(bytes(range(32))).decode()


async def maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@pytest.fixture
def upstash_url(redis_url: str, redis_server: RedisServer) -> Iterator[str]:
    with UpstashGateway(redis_server.url) as gateway:
        yield gateway.store_url


def store_url(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/cache.db"
    fixture = {
        "redis": "redis_url",  # LocalIndex (no search module)
        "stack": "redis_stack_url",  # RediSearch
        "cluster": "redis_cluster_url",  # LocalIndex
        "upstash": "upstash_url",  # LocalIndex
    }[kind]
    url: str = request.getfixturevalue(fixture)
    return url


Make = Callable[..., Twin]


def maker(url: str, face: str, embedder: CountingEmbedder, made: list[Twin]) -> Make:
    def build(**options: Any) -> Twin:
        options.setdefault("threshold", 0.85)
        kind = Cache if face == "sync" else AsyncCache
        twin = Twin(kind.from_url(url, semantic=True, embedder=embedder, **options))
        made.append(twin)
        return twin

    return build


@pytest_asyncio.fixture(
    params=[
        ("memory", "sync"),
        ("sqlite", "sync"),
        ("sqlite", "async"),
        ("redis", "sync"),
        ("redis", "async"),
        ("stack", "sync"),
        ("stack", "async"),
        ("cluster", "async"),
        ("upstash", "sync"),
    ],
    ids=lambda p: "-".join(p),
)
async def make(
    request: pytest.FixtureRequest, tmp_path: Path, embedder: CountingEmbedder
) -> AsyncIterator[Make]:
    kind, face = request.param
    made: list[Twin] = []
    yield maker(store_url(request, kind, tmp_path), face, embedder, made)
    for twin in made:
        await twin.close()


@pytest_asyncio.fixture(params=["sqlite", "redis", "stack"])
async def make_async(
    request: pytest.FixtureRequest, tmp_path: Path, embedder: CountingEmbedder
) -> AsyncIterator[Make]:
    """Async caches on SQLite, Redis (LocalIndex) and Redis Stack (RediSearch)."""
    made: list[Twin] = []
    yield maker(store_url(request, request.param, tmp_path), "async", embedder, made)
    for twin in made:
        await twin.close()


async def served(twin: Twin, text: str = PARAPHRASE) -> ServedHit:
    """Store FRANCE, ask `text`: a semantic hit, and its record, the newest in the log."""
    assert (await twin.compute(chat(FRANCE))).status == "miss"
    result = await twin.compute(chat(text))
    assert result.status == "semantic"
    hits = await maybe(twin.cache.semantic_hits(10))
    assert hits and hits[0].key == await maybe(twin.cache.entry_key(chat(text)))
    return hits[0]


async def test_a_served_hit_is_logged_and_a_report_stops_the_same_query_matching_it(
    make: Make,
) -> None:
    twin = make()
    hit = await served(twin)
    assert hit.matched_key == await maybe(twin.cache.entry_key(chat(FRANCE)))
    assert hit.namespace == "default" and hit.model == "gpt-4o-mini"
    assert 0.85 <= hit.similarity < 1.0
    assert (hit.query, hit.matched) == (PARAPHRASE, FRANCE)
    assert (await twin.compute(chat(PARAPHRASE))).status == "hit"  # backfilled

    reported = await maybe(twin.cache.report_wrong_hit(hit.key, note="Paris is right, but"))
    assert (reported.deleted, reported.recorded) == (1, True)
    assert reported.matched_key == hit.matched_key and reported.floor == hit.similarity
    fresh = Upstream(answer("Lyon?"))
    again = await twin.compute(chat(PARAPHRASE), upstream=fresh)
    assert again.status == "miss" and fresh.calls == 1  # neither the exact key nor the entry
    assert twin.counters()["semantic_rejected:feedback"] == 1
    reports = await maybe(twin.cache.wrong_hits())
    assert len(reports) == 1 and reports[0].note == "Paris is right, but"
    assert reports[0].hit == hit
    stats = await maybe(twin.cache.stats())
    assert stats.feedback_wrong_hit == 1 and stats.as_dict()["feedback_wrong_hit"] == 1


async def test_the_floor_refuses_less_similar_queries_and_lets_closer_ones_hit(
    make_async: Make, embedder: CountingEmbedder
) -> None:
    from tests.semantic.conftest import cosine

    twin = make_async(threshold=0.8)
    hit = await served(twin)
    await maybe(twin.cache.report_wrong_hit(hit.key))
    assert cosine(embedder, FRANCE, CLOSER) > hit.similarity  # this query is closer
    assert (await twin.compute(chat(CLOSER))).status == "semantic"
    farther = "Tell me which city is the capital of France"
    assert 0.8 <= cosine(embedder, FRANCE, farther) < hit.similarity
    assert (await twin.compute(chat(farther))).status == "miss"


async def test_a_hit_is_reported_by_its_request(make_async: Make) -> None:
    twin = make_async()
    hit = await served(twin)
    reported = await maybe(twin.cache.report_wrong_hit(chat(PARAPHRASE)))
    assert (reported.key, reported.deleted, reported.recorded) == (hit.key, 1, True)
    assert (await twin.compute(chat(PARAPHRASE))).status == "miss"


async def test_a_key_out_of_the_log_is_still_deleted_and_reported_unrecorded(
    make_async: Make,
) -> None:
    twin = make_async()
    assert (await twin.compute(chat(FRANCE))).status == "miss"
    key = await maybe(twin.cache.entry_key(chat(FRANCE)))  # an exact entry: never a semantic hit
    reported = await maybe(twin.cache.report_wrong_hit(key))
    assert (reported.deleted, reported.recorded, reported.floor) == (1, False, None)
    assert (await maybe(twin.cache.wrong_hits()))[0].hit is None


async def test_a_bad_key_is_refused_before_any_store_call(make_async: Make) -> None:
    twin = make_async()
    for key in ("nope", "llmemo:default:0:l:{ab}", "other:default:0:x:{ab}"):
        with pytest.raises(ConfigError, match="not an entry key"):
            await maybe(twin.cache.report_wrong_hit(key))


async def test_the_log_keeps_the_newest_records_up_to_its_bound(make_async: Make) -> None:
    twin = make_async(feedback=FeedbackLimits(hits=3), threshold=0.75)
    assert (await twin.compute(chat(FRANCE))).status == "miss"
    asked = [
        PARAPHRASE,
        CLOSER,
        "Tell me the capital of France.",
        "France's capital?",
        "Capital of France?",
    ]
    for text in asked:
        assert (await twin.compute(chat(text))).status == "semantic"
    hits = await maybe(twin.cache.semantic_hits(50))
    assert [h.query for h in hits] == asked[:1:-1]  # the newest 3, newest first
    log = twin.cache.feedback.log
    assert log is not None
    assert len(await maybe(log.recent(keys.hits_log("llmemo", "default"), 100))) == 3


async def test_texts_are_sealed_with_the_encryption_keys(make_async: Make) -> None:
    twin = make_async(encryption=KEY)
    hit = await served(twin)
    assert (hit.query, hit.matched) == (PARAPHRASE, FRANCE)
    log = twin.cache.feedback.log
    assert log is not None
    (raw,) = await maybe(log.recent(keys.hits_log("llmemo", "default"), 10))
    assert b"France" not in raw and b"capital" not in raw
    await maybe(twin.cache.report_wrong_hit(hit.key, note="secret note"))
    (report,) = await maybe(log.recent(keys.wrong_log("llmemo", "default"), 10))
    assert b"France" not in report and b"secret" not in report
    keyless = make_async()  # the same store without the keys: no text, the rest is readable
    (seen,) = await maybe(keyless.cache.semantic_hits(10))
    assert seen.key == hit.key and (seen.query, seen.matched) == (None, None)


async def test_records_are_erased_by_user_and_by_key(make_async: Make) -> None:
    twin = make_async()
    for user in (None, "ann"):  # a user's requests are matched within that user's scope
        assert (await twin.compute(chat(FRANCE), user=user)).status == "miss"
        assert (await twin.compute(chat(CLOSER), user=user)).status == "semantic"
    hits = await maybe(twin.cache.semantic_hits())
    assert sorted(h.user or "-" for h in hits) == ["-", "ann"]
    assert await maybe(twin.cache.forget_feedback(user="ann")) == 1
    (left,) = await maybe(twin.cache.semantic_hits())
    assert left.user is None
    assert await maybe(twin.cache.forget_feedback(key=left.matched_key)) == 1
    assert await maybe(twin.cache.semantic_hits()) == []


async def test_namespaces_have_their_own_logs(make_async: Make) -> None:
    twin = make_async()
    await served(twin)
    assert (await twin.compute(chat(FRANCE), namespace="faq")).status == "miss"
    assert (await twin.compute(chat(CLOSER), namespace="faq")).status == "semantic"
    every = await maybe(twin.cache.semantic_hits())
    assert [h.namespace for h in every] == ["faq", "default"]
    faq = await maybe(twin.cache.semantic_hits(namespace="faq"))
    assert [h.query for h in faq] == [CLOSER]


async def test_without_backfill_the_hit_is_logged_and_still_reportable(make_async: Make) -> None:
    twin = make_async(backfill=False)
    hit = await served(twin)
    reported = await maybe(twin.cache.report_wrong_hit(hit.key))
    assert (reported.deleted, reported.recorded) == (0, True)
    assert (await twin.compute(chat(PARAPHRASE))).status == "miss"
