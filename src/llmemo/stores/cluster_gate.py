"""The error boundary of the cluster stores: redis-py errors become StoreError, and a node that
did not answer is held for a moment (`NodeGate`), so its keys fail fast and the others never wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, cast

from llmemo.errors import LLMemoError, StoreError, require
from llmemo.stores.urls import redact

require("redis", "redis")

import redis  # noqa: E402
from redis.exceptions import RedisClusterException  # noqa: E402

from llmemo.stores.redis_base import _scrub  # noqa: E402

_unexpected: set[type[BaseException]] = set()  # non-redis errors from redis-py, logged once
log = logging.getLogger("llmemo.stores")
_ERRORS = (redis.RedisError, RedisClusterException, OSError)
_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, RedisClusterException, OSError)


class NodeDownError(StoreError):
    """A cluster node did not answer moments ago, so its keys were not tried (the rest work)."""

    partial = True


class NodeGate:
    """A circuit per cluster node, so one dead primary does not cost its timeouts on every call.

    After a node fails to answer, calls for its slots fail at once (StoreError, so the cache
    fails open) for `cooldown` seconds; then one call probes it, and redis-py's topology refresh
    on that call's error finds the promoted replica. Calls for other nodes are never held up.
    """

    def __init__(self, cooldown: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown = cooldown
        self.clock = clock
        self._down: dict[str, float] = {}  # node name -> when it may be probed
        self._probing: set[str] = set()
        self._lock = threading.Lock()

    @property
    def closed(self) -> bool:
        """No node is down: the common case, checked without a lock or a slot lookup."""
        return not self._down

    def allow(self, node: str | None) -> bool:
        if node is None or not self._down:
            return True
        with self._lock:
            until = self._down.get(node)
            if until is None:
                return True
            if node in self._probing or self.clock() < until:
                return False
            self._probing.add(node)
            return True

    def failed(self, node: str | None) -> None:
        if node is not None:
            with self._lock:
                self._down[node] = self.clock() + self.cooldown
                self._probing.discard(node)

    def ok(self, node: str | None) -> None:
        if node is not None and node in self._down:
            with self._lock:
                self._down.pop(node, None)
                self._probing.discard(node)


def _node_of(client: Any, key: str) -> str | None:
    """The name of the primary serving `key`'s slot, as the client knows it (no I/O)."""
    try:
        return cast(str, client.get_node_from_key(key).name)
    except (RedisClusterException, redis.RedisError, AttributeError):
        return None  # slot map not loaded yet or slot uncovered: let redis-py sort it out


class _Command:
    """The error boundary (and, given a key, the node gate) around one command.

    A class rather than a generator-based context manager: it is on every hit's path.
    """

    __slots__ = ("client", "command", "key", "node", "store")

    def __init__(self, store: _Boundary, command: str, key: str | None, client: Any) -> None:
        self.store, self.command, self.key, self.client = store, command, key, client
        self.node: str | None = None

    def __enter__(self) -> Any:
        gate = self.store.gate
        if self.key is not None and not gate.closed:
            self.node = _node_of(self.client, self.key)
            if not gate.allow(self.node):
                raise NodeDownError(
                    f"redis cluster {self.command} skipped on {self.store.url}: node {self.node} "
                    f"did not answer less than {gate.cooldown:g}s ago"
                )
        return self.client

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        gate, key = self.store.gate, self.key
        if key is not None:
            if isinstance(exc, _UNREACHABLE):
                gate.failed(self.node or _node_of(self.client, key))
            else:  # done, or an error reply: the node answered (and a probe is over)
                gate.ok(self.node)
        if exc is None or isinstance(exc, LLMemoError) or not isinstance(exc, Exception):
            return  # ours (ConfigError, NodeDownError), or cancellation: as it is
        if not isinstance(exc, _ERRORS) and type(exc) not in _unexpected:
            # redis-py's own bug (e.g. a connection closed under a command during a topology
            # refresh): still a failed store call, so the cache fails open. Logged once a type.
            _unexpected.add(type(exc))
            log.warning(
                "redis-py raised %s on %s", type(exc).__name__, self.store.url, exc_info=exc
            )
        text = _scrub(str(exc), self.store._secrets) or "no detail"
        where = f"redis cluster {self.command} failed on {self.store.url}"
        raise StoreError(f"{where}: {type(exc).__name__}: {text}") from exc


class _Boundary:
    """What both twins share: the redacted URL, the node gate, and `_Command` to use them."""

    def __init__(self, url: str, secrets: Sequence[str]) -> None:
        self.url = redact(url)
        self._secrets = secrets
        self.gate = NodeGate()

    def _errors(self, command: str, client: Any = None) -> _Command:
        """Translate redis-py errors into StoreError (password scrubbed)."""
        return _Command(self, command, None, client)

    def _gated(self, command: str, key: str, client: Any) -> _Command:
        """As `_errors`, for a command on one key: skipped while the key's node is known down."""
        return _Command(self, command, key, client)
