"""Store URLs: which one a command uses, and how one is shown without its password."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit


def default_url() -> str:
    """`$LLMEMO_STORE`, else the embedded SQLite file in the user's cache directory (created)."""
    url = os.environ.get("LLMEMO_STORE")
    if url:
        return url
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llmemo"
    base.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{base / 'cache.db'}"


STORE_ORDER = (
    "--store, else $LLMEMO_STORE, else $REDIS_URL, else the SQLite file ~/.cache/llmemo/cache.db"
)


def store_url(url: str | None = None) -> str:
    """The store a command uses: `url`, else `$LLMEMO_STORE`, else `$REDIS_URL`, else the embedded
    SQLite file (`default_url`). Every `llmemo` command, `serve` included, resolves it here."""
    return url or os.environ.get("LLMEMO_STORE") or os.environ.get("REDIS_URL") or default_url()


def redact(url: str) -> str:
    """The URL with any password replaced by `***` (safe to log and to show)."""
    parts = urlsplit(url)
    # redis-py also reads `?password=` (the only way to give one in a unix:// URL).
    query = "&".join(
        "password=***" if item.split("=", 1)[0] == "password" else item
        for item in parts.query.split("&")
    )
    if parts.password is None and query == parts.query:
        return url
    netloc = parts.netloc
    if parts.password is not None:
        host = netloc.rpartition("@")[2]  # as written: keeps [IPv6] brackets and case
        netloc = f"{parts.username or ''}:***@{host}"
    redacted = f"{parts.scheme}://{netloc}{parts.path}"
    redacted += f"?{query}" if query else ""
    return redacted + (f"#{parts.fragment}" if parts.fragment else "")
