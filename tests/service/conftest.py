"""The service under test: `create_app` under a real uvicorn in a thread, in front of the local upstream."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
import pytest_asyncio
import uvicorn

from llmemo.service import Settings, create_app, load_settings
from llmemo.service.server import server_config
from llmemo.testing.server import UpstreamServer

ALICE = "sk-alice-0123456789"
BOB = "sk-bob-9876543210"


class ServiceServer:
    """One llmemo app (lifespan on) served by uvicorn on a free loopback port."""

    def __init__(self, settings: Settings, **app_options: Any) -> None:
        self.settings = settings
        self.app = create_app(settings, **app_options)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        config = server_config(  # as `llmemo serve` runs it: with its connection limits
            self.app,
            settings,
            lifespan="on",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> ServiceServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the llmemo service did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        # Wait for the lifespan's end (its last rollup write): a server still closing would
        # write into the next test's emptied store.
        self._thread.join(timeout=60)
        self._socket.close()
        assert not self._thread.is_alive(), "the llmemo service did not stop within 60 s"


Serve = Callable[..., ServiceServer]


SETTINGS_ENV = ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "REDIS_URL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test alone, never from the developer's environment."""
    import os

    for name in [*SETTINGS_ENV, *(n for n in os.environ if n.upper().startswith("LLMEMO_"))]:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def serve(upstream: UpstreamServer, redis_url: str) -> Iterator[Serve]:
    """Start a service (Redis store, the local upstream); keyword arguments override settings
    (None removes one)."""
    started: list[ServiceServer] = []

    def start(**overrides: Any) -> ServiceServer:
        options: dict[str, Any] = {
            "store": redis_url,
            "openai_base_url": upstream.openai_base_url,
            "anthropic_base_url": upstream.url,
            **overrides,
        }
        server = ServiceServer(load_settings(**options)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def service(serve: Serve) -> ServiceServer:
    return serve()


@pytest.fixture
def oai(service: ServiceServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key=ALICE, base_url=service.base_url, max_retries=0) as client:
        yield client


@pytest_asyncio.fixture
async def aoai(service: ServiceServer) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(api_key=ALICE, base_url=service.base_url, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
def claude(service: ServiceServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key=ALICE, base_url=service.url, max_retries=0) as client:
        yield client


@pytest_asyncio.fixture
async def aclaude(service: ServiceServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(api_key=ALICE, base_url=service.url, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
def http(service: ServiceServer) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {ALICE}"}
    with httpx.Client(base_url=service.url, headers=headers, timeout=30) as client:
        yield client
