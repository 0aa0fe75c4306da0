"""Serve the test upstream with uvicorn in a background thread on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Collection
from types import TracebackType

from llmemo.errors import require
from llmemo.testing.upstream import CallLog, UpstreamStats, create_app

require("uvicorn", "server")

import uvicorn  # noqa: E402


class UpstreamServer:
    """The fake OpenAI/Anthropic/Ollama upstream on 127.0.0.1; use as a context manager.

    The options are `create_app`'s. The listening socket is bound before the thread starts,
    so `url` is valid as soon as the object exists and no other process can take the port.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        require_auth: bool = False,
        embedding_dim: int = 384,
        api_keys: Collection[str] | None = None,
        port: int = 0,
    ) -> None:
        self.app = create_app(
            latency=latency,
            chunk_delay=chunk_delay,
            require_auth=require_auth,
            embedding_dim=embedding_dim,
            api_keys=api_keys,
        )
        self._calls: CallLog = self.app.state.calls
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets that say so, and
        # without it every response waits ~40 ms for the client's delayed ACK.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))
        self.port: int = self._socket.getsockname()[1]
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """For `OpenAI(base_url=...)`; Anthropic's SDK takes the bare `url`."""
        return f"{self.url}/v1"

    def stats(self) -> UpstreamStats:
        return self._calls.snapshot()

    def reset(self) -> None:
        self._calls.reset()

    def start(self, timeout: float = 10.0) -> UpstreamServer:
        if self._thread is not None:
            return self
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,  # leave the host's logging alone
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [self._socket]},
            name=f"upstream:{self.port}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the test upstream did not start on {self.url}")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None
        self._socket.close()

    def __enter__(self) -> UpstreamServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"UpstreamServer({self.url!r})"
