"""`llmemo serve --semantic` end to end with the openai SDK: a paraphrase answers
`X-LLMemo-Cache: semantic`, within one tenant only; the CLI as a user runs it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from devtools.redis_server import free_port
from llmemo.service import load_settings
from llmemo.testing.server import UpstreamServer
from tests.service.conftest import ALICE, BOB, ServiceServer
from tests.service.test_cli import clean_env

FRANCE = "What is the capital of France?"
PARAPHRASE = "Which city is the capital of France?"


@pytest.fixture
def serve_semantic(
    redis_stack_url: str, upstream: UpstreamServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., ServiceServer]]:
    """start(**settings) -> a semantic service on Redis Stack in front of the local upstream."""
    for name in ("LLMEMO_STORE", "REDIS_URL", "OPENAI_BASE_URL", "LLMEMO_SEMANTIC"):
        monkeypatch.delenv(name, raising=False)
    started: list[ServiceServer] = []

    def start(**options: object) -> ServiceServer:
        settings = load_settings(
            store=redis_stack_url,
            openai_base_url=upstream.openai_base_url,
            semantic=True,
            **options,
        )
        started.append(ServiceServer(settings).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def service(serve_semantic: Callable[..., ServiceServer]) -> ServiceServer:
    return serve_semantic(semantic_threshold=0.85)


def ask(client: openai.OpenAI, text: str, **options: object) -> tuple[str, str]:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}], **options
    )
    return raw.headers["x-llmemo-cache"], raw.parse().choices[0].message.content or ""


def test_a_paraphrase_is_a_semantic_hit(service: ServiceServer, upstream: UpstreamServer) -> None:
    with openai.OpenAI(api_key=ALICE, base_url=service.base_url, max_retries=0) as alice:
        status, first = ask(alice, FRANCE)
        assert status == "miss"
        assert ask(alice, PARAPHRASE) == ("semantic", first)
        assert ask(alice, PARAPHRASE) == ("hit", first)  # backfilled
        assert ask(alice, "Is 7 a prime number?")[0] == "miss"
    with openai.OpenAI(api_key=BOB, base_url=service.base_url, max_retries=0) as bob:
        assert ask(bob, PARAPHRASE)[0] == "miss"  # another tenant never shares answers
    assert upstream.stats().total == 3


def test_a_streamed_paraphrase_is_replayed(service: ServiceServer) -> None:
    with openai.OpenAI(api_key=ALICE, base_url=service.base_url, max_retries=0) as alice:
        _, first = ask(alice, FRANCE)
        with alice.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "What's the capital city of France?"}],
            stream=True,
        ) as response:
            assert response.headers["x-llmemo-cache"] == "semantic"
            text = "".join(
                chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices
            )
    assert text == first


def test_metrics_count_semantic_answers(service: ServiceServer) -> None:
    with openai.OpenAI(api_key=ALICE, base_url=service.base_url, max_retries=0) as alice:
        ask(alice, FRANCE)
        ask(alice, PARAPHRASE)
    metrics = httpx.get(service.url + "/metrics").text
    assert 'cache="semantic"' in metrics


def test_llmemo_serve_semantic_from_the_command_line() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llmemo", "serve", "--upstream", "demo", "--store", "memory://",
         "--semantic", "--semantic-threshold", "0.85", "--port", str(port)],
        env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "llmemo serve --semantic did not start"
            time.sleep(0.1)
        with openai.OpenAI(api_key="any", base_url=url + "/v1", max_retries=0) as client:
            statuses = [ask(client, text)[0] for text in (FRANCE, PARAPHRASE, PARAPHRASE)]
        assert statuses == ["miss", "semantic", "hit"]
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert "semantic (minilm, threshold 0.85)" in output
    assert "Traceback" not in output


def test_a_verifier_model_confirms_borderline_matches(
    serve_semantic: Callable[..., ServiceServer], upstream: UpstreamServer
) -> None:
    # the judge is the test upstream's fixed word-overlap rule
    server = serve_semantic(semantic_threshold=0.8, semantic_verifier="judge")
    with openai.OpenAI(api_key=ALICE, base_url=server.base_url, max_retries=0) as alice:
        assert ask(alice, FRANCE)[0] == "miss"
        assert ask(alice, PARAPHRASE)[0] == "semantic"  # cosine 0.94, the judge: yes
        assert ask(alice, "Which city is France's capital?")[0] == "miss"  # 0.93, judge: no
    calls = upstream.stats().calls["/v1/chat/completions"]
    assert calls == {"gpt-4o-mini": 2, "judge": 2}  # 2 answers upstream, 2 questions to the judge


def test_a_body_over_the_semantic_cap_is_looked_up_exactly_only(
    serve_semantic: Callable[..., ServiceServer],
) -> None:
    service = serve_semantic(semantic_threshold=0.85, semantic_max_body_bytes=1000)

    def post(text: str, padding: int = 0) -> str:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
        raw = json.dumps(body).encode() + b" " * padding  # the same request, a longer body
        answer = httpx.post(
            service.base_url + "/chat/completions",
            content=raw,
            headers={"authorization": f"Bearer {ALICE}", "content-type": "application/json"},
        )
        assert answer.status_code == 200
        status: str = answer.headers["x-llmemo-cache"]
        return status

    assert post(FRANCE) == "miss"
    assert post(PARAPHRASE, padding=2000) == "miss"  # over the cap: no semantic lookup
    assert post(PARAPHRASE, padding=2000) == "hit"  # exact lookups still work
    assert post("What's the capital city of France?", padding=10) == "semantic"
    counters = service.app.state.service.proxy.cache._stats.peek()
    assert counters["semantic_skipped:body_size"] == 1  # exact misses only


def test_semantic_max_error_sends_an_uncovered_paraphrase_upstream(
    serve_semantic: Callable[..., ServiceServer], upstream: UpstreamServer
) -> None:
    # nothing is known yet about this namespace: the paraphrase is refused by the bound
    server = serve_semantic(semantic_threshold=0.8, semantic_max_error=0.05)
    with openai.OpenAI(api_key=ALICE, base_url=server.base_url, max_retries=0) as alice:
        assert ask(alice, FRANCE)[0] == "miss"
        assert ask(alice, PARAPHRASE)[0] == "miss"
    assert upstream.stats().calls["/v1/chat/completions"] == {"gpt-4o-mini": 2}


def test_a_bad_semantic_max_error_flag_is_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "llmemo", "serve", "--semantic", "--semantic-max-error", "2"],
        env=clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "max_error must be the share of wrong semantic hits accepted" in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0
