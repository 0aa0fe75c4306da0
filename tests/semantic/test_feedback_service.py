"""The service's feedback endpoints: a semantic answer carries `x-llmemo-key`; `GET
/admin/semantic-hits` lists it; `POST /admin/feedback` reports it (by key or by request), behind
the admin token, with bad input refused in OpenAI's error shape."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from llmemo.service import load_settings
from llmemo.testing.server import UpstreamServer
from tests.service.conftest import ALICE, ServiceServer

FRANCE = "What is the capital of France?"
PARAPHRASE = "Which city is the capital of France?"
TOKEN = "admin-s3cret"
ADMIN = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def serve(
    redis_url: str, upstream: UpstreamServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., ServiceServer]]:
    for name in ("LLMEMO_STORE", "REDIS_URL", "OPENAI_BASE_URL", "LLMEMO_SEMANTIC"):
        monkeypatch.delenv(name, raising=False)
    started: list[ServiceServer] = []

    def start(**options: object) -> ServiceServer:
        settings = load_settings(
            store=redis_url,
            openai_base_url=upstream.openai_base_url,
            semantic=True,
            semantic_threshold=0.85,
            admin_token=TOKEN,
            **options,
        )
        started.append(ServiceServer(settings).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()


def ask(client: openai.OpenAI, text: str) -> httpx.Headers:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
    )
    return raw.headers


def test_a_semantic_hit_is_listed_reported_and_not_served_again(
    serve: Callable[..., ServiceServer], upstream: UpstreamServer
) -> None:
    service = serve()
    with openai.OpenAI(api_key=ALICE, base_url=service.base_url, max_retries=0) as alice:
        assert "x-llmemo-key" not in ask(alice, FRANCE)  # a miss has nothing to report
        headers = ask(alice, PARAPHRASE)
        assert headers["x-llmemo-cache"] == "semantic"
        key = headers["x-llmemo-key"]
        listed = httpx.get(service.url + "/admin/semantic-hits?limit=5", headers=ADMIN).json()
        (hit,) = listed["hits"]
        assert hit["key"] == key and hit["namespace"] == "default"
        assert hit["model"] == "gpt-4o-mini" and 0.85 <= hit["similarity"] < 1
        assert (hit["query"], hit["matched"]) == (None, None)  # prompts hidden by default
        answer = httpx.post(
            service.url + "/admin/feedback", json={"key": key, "note": "wrong"}, headers=ADMIN
        )
        assert answer.status_code == 200
        body = answer.json()
        assert (body["deleted"], body["recorded"], body["key"]) == (1, True, key)
        assert ask(alice, PARAPHRASE)["x-llmemo-cache"] == "miss"
    assert upstream.stats().total == 2
    metrics = httpx.get(service.url + "/metrics").text
    assert "llmemo_feedback_wrong_hit_total 1.0" in metrics


def test_a_hit_is_reported_by_its_request_body(serve: Callable[..., ServiceServer]) -> None:
    service = serve(shared=True)  # one tenant for every caller: the request alone names the key
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PARAPHRASE}]}
    with openai.OpenAI(api_key=ALICE, base_url=service.base_url, max_retries=0) as alice:
        ask(alice, FRANCE)
        key = ask(alice, PARAPHRASE)["x-llmemo-key"]
        answer = httpx.post(
            service.url + "/admin/feedback", json={"request": request}, headers=ADMIN
        ).json()
        assert (answer["key"], answer["deleted"], answer["recorded"]) == (key, 1, True)
        assert ask(alice, PARAPHRASE)["x-llmemo-cache"] == "miss"


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("GET", "/admin/semantic-hits?limit=0", None, "'limit' must be an integer"),
        ("GET", "/admin/semantic-hits?limit=x", None, "'limit' must be an integer"),
        ("POST", "/admin/feedback", {}, 'with "key"'),
        ("POST", "/admin/feedback", {"key": "a", "request": {}}, 'with "key"'),
        ("POST", "/admin/feedback", {"key": 3}, "'key' must be"),
        ("POST", "/admin/feedback", {"key": "nope"}, "not an entry key"),
        ("POST", "/admin/feedback", {"key": "llmemo:a:0:x:{b}", "note": 5}, "'note' must be"),
        ("POST", "/admin/feedback", {"request": {"model": "m"}, "path": "/v2"}, "'path' must"),
        ("POST", "/admin/feedback", {"request": {"messages": 3}}, ""),
    ],
)
def test_bad_input_is_a_400_in_openai_shape(
    serve: Callable[..., ServiceServer],
    upstream: UpstreamServer,
    method: str,
    path: str,
    body: object,
    message: str,
) -> None:
    service = serve()
    answer = httpx.request(method, service.url + path, json=body, headers=ADMIN)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and message in error["message"]
    assert upstream.stats().total == 0


def test_both_routes_need_the_admin_token(serve: Callable[..., ServiceServer]) -> None:
    service = serve()
    for answer in (
        httpx.get(service.url + "/admin/semantic-hits"),
        httpx.post(
            service.url + "/admin/feedback",
            json={"key": "k"},
            headers={"authorization": "Bearer no"},
        ),
    ):
        assert answer.status_code == 401
        assert "admin token" in answer.json()["error"]["message"]


def test_a_streamed_semantic_answer_carries_its_key(serve: Callable[..., ServiceServer]) -> None:
    service = serve()
    with openai.OpenAI(api_key=ALICE, base_url=service.base_url, max_retries=0) as alice:
        ask(alice, FRANCE)
        with alice.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": PARAPHRASE}],
            stream=True,
        ) as response:
            assert response.headers["x-llmemo-cache"] == "semantic"
            key = response.headers["x-llmemo-key"]
            assert "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    listed = httpx.get(service.url + "/admin/semantic-hits", headers=ADMIN).json()
    assert [hit["key"] for hit in listed["hits"]] == [key]


def test_the_hit_log_is_bounded_by_the_settings(serve: Callable[..., ServiceServer]) -> None:
    off = serve(semantic_hit_log=0)
    with openai.OpenAI(api_key=ALICE, base_url=off.base_url, max_retries=0) as alice:
        ask(alice, FRANCE)
        assert ask(alice, PARAPHRASE)["x-llmemo-cache"] == "semantic"
    assert httpx.get(off.url + "/admin/semantic-hits", headers=ADMIN).json() == {"hits": []}


def test_a_report_reaches_the_dashboard_figures(serve: Callable[..., ServiceServer]) -> None:
    service = serve()
    with openai.OpenAI(api_key=ALICE, base_url=service.base_url, max_retries=0) as alice:
        ask(alice, FRANCE)
        key = ask(alice, PARAPHRASE)["x-llmemo-key"]
    httpx.post(service.url + "/admin/feedback", json={"key": key}, headers=ADMIN)
    stats = httpx.get(service.url + "/admin/stats", headers=ADMIN).json()
    assert stats["semantic"]["wrong_hit_reports"] == 1
