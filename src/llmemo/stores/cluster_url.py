"""Redis Cluster URLs: `redis+cluster://host:port,...` read into redis-py's keyword arguments."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast
from urllib.parse import urlsplit

from llmemo.errors import ConfigError, require
from llmemo.stores.urls import redact

require("redis", "redis")

import redis  # noqa: E402
import redis.cluster  # noqa: E402
from redis.backoff import ExponentialWithJitterBackoff  # noqa: E402

from llmemo.stores.redis_base import DEFAULT_OPTIONS, _scrub  # noqa: E402

SCHEMES = ("redis+cluster", "rediss+cluster")
# Retries after a connection error, CLUSTERDOWN or an uncovered slot, each after a topology
# refresh. Few on purpose: a cache that waits out a failover stalls its callers instead of
# answering from upstream. MOVED and ASK are followed apart from these.
RETRIES = 1


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


def _bad_option(shown_url: str, exc: Exception, secrets: Sequence[str]) -> ConfigError:
    """The error for an option redis-py refused (secrets scrubbed from its message)."""
    return ConfigError(_scrub(f"bad Redis option in {shown_url!r}: {exc}", secrets))
