"""Upstash URLs: `upstash://:TOKEN@HOST` (or the environment) read into an UpstashConfig."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from llmemo.errors import ConfigError, require

require("upstash_redis", "upstash")

import httpx  # noqa: E402

SCHEMES = ("upstash", "upstash+https", "upstash+http")
ENV_URL, ENV_TOKEN = "UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN"
DEFAULT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT = 1.0, 2.0
_OPTIONS = ("timeout", "connect_timeout", "retries")


@dataclass(frozen=True)
class UpstashConfig:
    """Where and how to reach one database; `url` is safe to show (the token is redacted)."""

    rest_url: str
    token: str = field(repr=False)
    url: str
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    retries: int = 0


def parse_url(url: str, environ: Mapping[str, str] | None = None, **options: Any) -> UpstashConfig:
    """Read an `upstash://` URL (see the module doc); options are keyword defaults the query overrides."""
    env = os.environ if environ is None else environ
    scheme = url.split("://", 1)[0].lower() if isinstance(url, str) and "://" in url else ""
    parts = urlsplit(url) if scheme in SCHEMES else None
    if parts is None:
        raise ConfigError(
            "not an Upstash URL; expected upstash://:TOKEN@HOST, upstash+http://:TOKEN@HOST:PORT"
            f" or upstash:// with ${ENV_URL} and ${ENV_TOKEN} set"
        )
    host = parts.netloc.rpartition("@")[2]
    if parts.username and parts.password is None:
        raise ConfigError(
            f"put the Upstash token after a colon, {scheme}://:***@{host}, so logs redact it"
        )
    token = unquote(parts.password or "") or env.get(ENV_TOKEN, "")
    if host:
        rest_url = f"{'http' if scheme == 'upstash+http' else 'https'}://{host}{parts.path}"
    elif parts.path.strip("/"):
        raise ConfigError(f"an Upstash URL with a path needs a host: {scheme}://:***@HOST/path")
    else:
        rest_url = env.get(ENV_URL, "").strip()
    rest_url = rest_url.rstrip("/")
    if not rest_url:
        raise ConfigError(f"no Upstash REST URL: give upstash://:TOKEN@HOST or set ${ENV_URL}")
    if not token:
        raise ConfigError(f"no Upstash REST token: give upstash://:TOKEN@HOST or set ${ENV_TOKEN}")
    try:
        target = httpx.URL(rest_url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"bad Upstash REST URL {rest_url!r}: {exc}") from None
    if target.scheme not in ("http", "https") or not target.host:
        raise ConfigError(f"the Upstash REST URL must be http(s)://HOST, not {rest_url!r}")
    shown = "upstash+http" if target.scheme == "http" else "upstash"
    where = rest_url.split("://", 1)[1]
    return UpstashConfig(
        rest_url, token, f"{shown}://:***@{where}", **_options(parts.query, options)
    )


def _options(query: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
    given = {**{k: v for k, v in defaults.items() if v is not None}, **dict(parse_qsl(query))}
    unknown = sorted(set(given) - set(_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown Upstash option(s) {unknown}; known: {', '.join(_OPTIONS)}")
    out: dict[str, Any] = {}
    for name, value in given.items():
        kind = int if name == "retries" else float
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"Upstash option {name}={value!r} is not a number") from None
        if number < 0 or (number == 0 and kind is float):
            raise ConfigError(f"Upstash option {name}={value!r} must be positive")
        out[name] = number
    return out
