"""Redis Cluster stores on redis-py's cluster clients: every command stays within one slot.

Single-key commands (GET, SET NX, the lease scripts, the counters hash) are routed by redis-py.
Multi-key work is split here: UNLINK per slot, GETRANGE/EXISTS pipelined (one round trip per
node), SCAN on every primary. Nothing needs CONFIG, FLUSHALL or KEYS; `maxmemory-policy` is read
once where the server allows it, for a warning. MOVED/ASK are followed by redis-py; connection
errors, CLUSTERDOWN and uncovered slots are retried once (topology refreshed in between), then
raised as StoreError: the cache fails open rather than stall during a failover. A node that did
not answer is held for a moment (`NodeGate`), so its keys fail fast and the others never wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

from llmemo.errors import ConfigError, LLMemoError, StoreError, require
from llmemo.stores.base import Counters, redact

require("redis", "redis")

import redis  # noqa: E402
import redis.asyncio.cluster  # noqa: E402
import redis.asyncio.retry  # noqa: E402
import redis.cluster  # noqa: E402
import redis.retry  # noqa: E402
from redis.backoff import ExponentialWithJitterBackoff  # noqa: E402
from redis.crc import key_slot  # noqa: E402
from redis.exceptions import RedisClusterException  # noqa: E402

from llmemo.stores.redis import (  # noqa: E402
    _DELETE_IF_EQUAL,
    _EXPIRE_IF_EQUAL,
    DEFAULT_OPTIONS,
    _batches,
    _check,
    _heads,
    _ms,
    _scrub,
    _secrets,
    _text,
    _unseen,
)

SCHEMES = ("redis+cluster", "rediss+cluster")
# Retries after a connection error, CLUSTERDOWN or an uncovered slot, each after a topology
# refresh. Few on purpose: a cache that waits out a failover stalls its callers instead of
# answering from upstream. MOVED and ASK are followed apart from these.
RETRIES = 1
# The policies under which a full server refuses writes instead of making room.
_NON_EVICTING = frozenset({"noeviction"})
_warned: set[str] = set()  # clusters (redacted URL) already warned about, once per process
_unexpected: set[type[BaseException]] = set()  # non-redis errors from redis-py, logged once
log = logging.getLogger("llmemo.stores")
_ERRORS = (redis.RedisError, RedisClusterException, OSError)
_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, RedisClusterException, OSError)


def _nodes(hosts: str, url: str) -> list[tuple[str, int]]:
    nodes = []
    for item in hosts.split(","):
        host, port = item.strip(), "6379"
        if host.startswith("["):  # [IPv6]:port
            host, _, rest = host[1:].partition("]")
            port = rest.removeprefix(":") or port
        elif host.count(":") == 1:
            host, port = host.split(":")
        if not host or not port.isdigit():
            raise ConfigError(f"bad node {item!r} in Redis Cluster URL {redact(url)!r}")
        nodes.append((host, int(port)))
    return nodes


def cluster_options(
    url: str, options: Mapping[str, Any], retry: Any = None
) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    """redis-py keyword arguments and the startup nodes `(host, port)` for a cluster URL.

    `redis+cluster://[user:password@]host:port[,host:port...][?option=value...]`, or
    `rediss+cluster://` for TLS. Options and the URL query (which wins) go to redis-py;
    `retry` is the default `retry=` (the sync or the asyncio Retry class).
    """
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in SCHEMES or not rest:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise ConfigError(f"not a Redis Cluster URL: {redact(url)!r}; expected {known}")
    if options.get("decode_responses"):
        raise ConfigError("decode_responses=True is not supported: the store keeps bytes")
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    nodes = _nodes(hosts, url)
    if parts.path.strip("/") not in ("", "0"):
        raise ConfigError(f"a Redis Cluster has only database 0: {redact(url)!r}")
    tls = scheme.lower() == "rediss+cluster"
    single = f"{'rediss' if tls else 'redis'}://{credentials + '@' if credentials else ''}"
    single += f"{hosts.split(',')[0]}/{'?' + parts.query if parts.query else ''}"
    try:
        parsed = _parse_url(single)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad Redis Cluster URL {redact(url)!r}: {exc}") from None
    for name in ("host", "port", "db", "connection_class"):
        parsed.pop(name, None)
    kwargs: dict[str, Any] = {**DEFAULT_OPTIONS, **options, **parsed}
    if str(kwargs.get("decode_responses", "")).lower() in ("1", "true", "yes"):
        raise ConfigError("decode_responses=True is not supported: the store keeps bytes")
    if tls:
        kwargs["ssl"] = True
    if retry is not None:
        kwargs.setdefault("retry", retry)
    return kwargs, nodes


def _backoff() -> ExponentialWithJitterBackoff:
    return ExponentialWithJitterBackoff(base=0.01, cap=0.2)


# redis-py leaves these untyped; their shapes, for mypy.
_parse_url = cast("Callable[[str], dict[str, Any]]", redis.connection.parse_url)
_node_kwargs = cast("Callable[..., dict[str, Any]]", redis.cluster.cleanup_kwargs)


def _any(client: object) -> Any:
    """A cluster client seen untyped: its multi-node replies differ from the stubs' shapes."""
    return client


def _pipeline(client: Any) -> Any:
    """A non-transactional cluster pipeline: commands are grouped per node, one round trip each."""
    return client.pipeline(transaction=False)


def _primaries(client: Any) -> list[Any]:
    return list(client.get_primaries())


def _slot_groups(keys: Iterable[str]) -> list[list[str]]:
    """Keys grouped by cluster slot (first-seen order): one UNLINK per group cannot CROSSSLOT."""
    groups: dict[int, list[str]] = {}
    for key in keys:
        groups.setdefault(key_slot(key.encode()), []).append(key)
    return list(groups.values())


def _queue_unlinks(pipe: Any, keys: Sequence[str]) -> None:
    for group in _slot_groups(keys):
        for batch in _batches(group):
            pipe.execute_command("UNLINK", *batch)


def _queue_heads(pipe: Any, keys: Sequence[str], size: int) -> None:
    for key in keys:
        if size > 0:
            pipe.getrange(key, 0, size - 1)
        pipe.exists(key)


def _queue_incr(pipe: Any, key: str, amounts: Counters) -> None:
    for name, amount in amounts.items():  # HINCRBYFLOAT for ints too, as RedisStore does
        pipe.hincrbyfloat(key, name, amount)


def _policy_warning(replies: Any, url: str) -> None:
    """Warn once per cluster when a primary's `maxmemory-policy` never evicts."""
    if url in _warned or not isinstance(replies, Mapping):
        return
    for node, reply in replies.items():
        values = {_text(k): _text(v) for k, v in dict(reply).items()}
        policy = values.get("maxmemory-policy")
        if policy in _NON_EVICTING:
            _warned.add(url)
            log.warning(
                "Redis Cluster %s: node %s has maxmemory-policy %s, so a full node refuses new "
                "entries (llmemo then answers from upstream without caching); set allkeys-lru "
                "or volatile-lru",
                url,
                _text(node),
                policy,
            )
            return


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

    url: str
    _secrets: Sequence[str]
    gate: NodeGate

    def _errors(self, command: str, client: Any = None) -> _Command:
        """Translate redis-py errors into StoreError (password scrubbed)."""
        return _Command(self, command, None, client)

    def _gated(self, command: str, key: str, client: Any) -> _Command:
        """As `_errors`, for a command on one key: skipped while the key's node is known down."""
        return _Command(self, command, key, client)


class RedisClusterStore(_Boundary):
    """A Store on a Redis Cluster (redis-py RedisCluster; it connects on first use)."""

    def __init__(
        self,
        kwargs: Mapping[str, Any],
        nodes: Sequence[tuple[str, int]],
        url: str = "redis+cluster://",
        secrets: Sequence[str] = (),
    ) -> None:
        self.url = redact(url)
        self._secrets = secrets
        self._kwargs = dict(kwargs)
        self._nodes = list(nodes)
        self._client: redis.cluster.RedisCluster | None = None
        self._connecting = threading.Lock()
        self.gate = NodeGate()
        self._delete_if_equal: Any = None
        self._expire_if_equal: Any = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisClusterStore:
        """`redis+cluster://[user:password@]host:port,host:port,...` (`rediss+cluster://` for TLS).

        Any node will do (the others are discovered); naming several survives one being down.
        Options (and URL query values, which win) go to redis-py, e.g. `socket_timeout`,
        `ssl_ca_certs`, `retry`, `require_full_coverage`. No connection is made here.
        """
        secrets = _secrets(url, dict(options))
        kwargs, nodes = cluster_options(url, options, redis.retry.Retry(_backoff(), RETRIES))
        connection = _node_kwargs(**kwargs)  # what each node's pool receives
        try:
            probe = redis.Redis(**connection)
        except (TypeError, ValueError, redis.RedisError) as exc:
            raise ConfigError(
                _scrub(f"bad Redis option in {redact(url)!r}: {exc}", secrets)
            ) from None
        _check(probe.connection_pool, url, secrets)
        return cls(kwargs, nodes, url, secrets)

    @property
    def client(self) -> redis.cluster.RedisCluster:
        """The redis-py cluster client, for advanced use (connects; raises StoreError if it cannot)."""
        return self._connect()

    def _connect(self) -> redis.cluster.RedisCluster:
        """The client, built on first use (it reads the topology); StoreError if it cannot."""
        client = self._client
        if client is not None:
            return client
        with self._connecting, self._errors("connect"):
            if self._client is None:
                nodes = [redis.cluster.ClusterNode(h, p) for h, p in self._nodes]  # type: ignore[no-untyped-call]
                try:
                    client = redis.cluster.RedisCluster(startup_nodes=nodes, **self._kwargs)
                except (TypeError, ValueError) as exc:
                    message = f"bad Redis option in {self.url!r}: {exc}"
                    raise ConfigError(_scrub(message, self._secrets)) from None
                self._delete_if_equal = client.register_script(_DELETE_IF_EQUAL)
                self._expire_if_equal = client.register_script(_EXPIRE_IF_EQUAL)
                self._check_policy(client)
                self._client = client
            return self._client

    def _check_policy(self, client: redis.cluster.RedisCluster) -> None:
        try:
            replies = client.config_get("maxmemory-policy", target_nodes=client.PRIMARIES)
        except _ERRORS as exc:  # managed clusters refuse CONFIG: nothing to check
            log.debug("cannot read maxmemory-policy on %s: %s", self.url, type(exc).__name__)
            return
        _policy_warning(replies, self.url)

    def get(self, key: str, refresh: float | None = None) -> bytes | None:
        with self._gated("GET", key, self._connect()) as client:
            if refresh is None:
                return cast("bytes | None", client.get(key))
            return cast("bytes | None", client.getex(key, px=_ms(refresh)))

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        with self._gated("SET", key, self._connect()) as client:
            client.set(key, value, px=None if ttl is None else _ms(ttl))

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        with self._gated("SET NX", key, self._connect()) as client:
            return bool(client.set(key, value, nx=True, px=_ms(ttl)))

    def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        with self._errors("UNLINK"):
            pipe = _pipeline(self._connect())
            _queue_unlinks(pipe, keys)
            return sum(pipe.execute())

    def delete_if_equal(self, key: str, value: bytes) -> bool:
        with self._gated("EVALSHA delete_if_equal", key, self._connect()):
            return bool(self._delete_if_equal(keys=[key], args=[value]))

    def expire_if_equal(self, key: str, value: bytes, ttl: float) -> bool:
        with self._gated("EVALSHA expire_if_equal", key, self._connect()):
            return bool(self._expire_if_equal(keys=[key], args=[value, _ms(ttl)]))

    def scan(self, pattern: str, count: int = 500) -> Iterator[list[str]]:
        """SCAN every primary in turn (the key space is split between them)."""
        seen: set[str] = set()
        with self._errors("SCAN"):
            client = self._connect()
            primaries = _primaries(client)
        for node in primaries:
            cursor = 0
            while True:
                with self._errors("SCAN"):
                    cursors, found = _any(client).scan(
                        cursor, match=pattern, count=count, target_nodes=node
                    )
                cursor = cursors[node.name]
                batch = _unseen(found, seen)
                if batch:
                    yield batch
                if cursor == 0:
                    break

    def heads(self, keys: Sequence[str], size: int) -> list[bytes | None]:
        if not keys:
            return []
        with self._errors("GETRANGE"):
            pipe = _pipeline(self._connect())
            _queue_heads(pipe, keys, size)
            return _heads(keys, size, pipe.execute(raise_on_error=False))

    def incr(self, key: str, amounts: Counters) -> dict[str, float]:
        if not amounts:
            return {}
        with self._gated("HINCRBYFLOAT", key, self._connect()) as client:
            pipe = _pipeline(client)
            _queue_incr(pipe, key, amounts)
            return {name: float(new) for name, new in zip(amounts, pipe.execute(), strict=True)}

    def counters(self, key: str) -> dict[str, float]:
        with self._gated("HGETALL", key, self._connect()) as client:
            found = client.hgetall(key)
        return {_text(name): float(value) for name, value in found.items()}

    def ping(self) -> None:
        """PING every primary: each one serves a part of the keys."""
        with self._errors("PING"):
            client = self._connect()
            client.ping(target_nodes=client.PRIMARIES)

    def close(self) -> None:
        with self._connecting:
            client, self._client = self._client, None
        if client is not None:
            with self._errors("close"):
                client.close()


class AsyncRedisClusterStore(_Boundary):
    """The asyncio twin of RedisClusterStore (redis.asyncio.cluster.RedisCluster)."""

    def __init__(
        self,
        client: redis.asyncio.cluster.RedisCluster,
        url: str = "redis+cluster://",
        secrets: Sequence[str] = (),
    ) -> None:
        self.client = client
        self.url = redact(url)
        self._secrets = secrets
        self._delete_if_equal = client.register_script(_DELETE_IF_EQUAL)
        self._expire_if_equal = client.register_script(_EXPIRE_IF_EQUAL)
        self._policy_checked = False
        self.gate = NodeGate()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> AsyncRedisClusterStore:
        """As RedisClusterStore.from_url; no connection is made until the first call."""
        secrets = _secrets(url, dict(options))
        retry = redis.asyncio.retry.Retry(_backoff(), RETRIES)
        kwargs, nodes = cluster_options(url, options, retry)
        startup = [redis.asyncio.cluster.ClusterNode(h, p) for h, p in nodes]
        try:
            client = redis.asyncio.cluster.RedisCluster(startup_nodes=startup, **kwargs)
        except (TypeError, ValueError, redis.RedisError, RedisClusterException) as exc:
            raise ConfigError(
                _scrub(f"bad Redis option in {redact(url)!r}: {exc}", secrets)
            ) from None
        return cls(client, url, secrets)

    async def _check_policy(self) -> None:
        """Read `maxmemory-policy` once, on the first call (best effort, never fails)."""
        self._policy_checked = True
        try:
            replies = await self.client.config_get(
                "maxmemory-policy", target_nodes=self.client.PRIMARIES
            )
        except _ERRORS as exc:
            log.debug("cannot read maxmemory-policy on %s: %s", self.url, type(exc).__name__)
            return
        _policy_warning(replies, self.url)

    async def get(self, key: str, refresh: float | None = None) -> bytes | None:
        if not self._policy_checked:
            await self._check_policy()
        with self._gated("GET", key, self.client) as client:
            if refresh is None:
                return cast("bytes | None", await client.get(key))
            return cast("bytes | None", await client.getex(key, px=_ms(refresh)))

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        if not self._policy_checked:
            await self._check_policy()
        with self._gated("SET", key, self.client) as client:
            await client.set(key, value, px=None if ttl is None else _ms(ttl))

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        with self._gated("SET NX", key, self.client) as client:
            return bool(await client.set(key, value, nx=True, px=_ms(ttl)))

    async def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        with self._errors("UNLINK"):
            pipe = _pipeline(self.client)
            _queue_unlinks(pipe, keys)
            return sum(await pipe.execute())

    async def delete_if_equal(self, key: str, value: bytes) -> bool:
        with self._gated("EVALSHA delete_if_equal", key, self.client):
            return bool(await self._delete_if_equal(keys=[key], args=[value]))

    async def expire_if_equal(self, key: str, value: bytes, ttl: float) -> bool:
        with self._gated("EVALSHA expire_if_equal", key, self.client):
            return bool(await self._expire_if_equal(keys=[key], args=[value, _ms(ttl)]))

    async def scan(self, pattern: str, count: int = 500) -> AsyncIterator[list[str]]:
        """SCAN every primary in turn (the key space is split between them)."""
        seen: set[str] = set()
        with self._errors("SCAN"):
            await self.client.initialize()
            primaries = _primaries(self.client)
        for node in primaries:
            cursor = 0
            while True:
                with self._errors("SCAN"):
                    cursors, found = await _any(self.client).scan(
                        cursor, match=pattern, count=count, target_nodes=node
                    )
                cursor = cursors[node.name]
                batch = _unseen(found, seen)
                if batch:
                    yield batch
                if cursor == 0:
                    break

    async def heads(self, keys: Sequence[str], size: int) -> list[bytes | None]:
        if not keys:
            return []
        with self._errors("GETRANGE"):
            pipe = _pipeline(self.client)
            _queue_heads(pipe, keys, size)
            return _heads(keys, size, await pipe.execute(raise_on_error=False))

    async def incr(self, key: str, amounts: Counters) -> dict[str, float]:
        if not amounts:
            return {}
        with self._gated("HINCRBYFLOAT", key, self.client) as client:
            pipe = _pipeline(client)
            _queue_incr(pipe, key, amounts)
            replies = await pipe.execute()
        return {name: float(new) for name, new in zip(amounts, replies, strict=True)}

    async def counters(self, key: str) -> dict[str, float]:
        if not self._policy_checked:
            await self._check_policy()
        with self._gated("HGETALL", key, self.client) as client:
            found = await client.hgetall(key)
        return {_text(name): float(value) for name, value in found.items()}

    async def ping(self) -> None:
        """PING every primary: each one serves a part of the keys."""
        with self._errors("PING"):
            await self.client.ping(target_nodes=self.client.PRIMARIES)

    async def close(self) -> None:
        with self._errors("close"):
            await self.client.aclose()
