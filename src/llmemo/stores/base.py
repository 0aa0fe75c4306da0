"""The names `llmemo.stores.base` held before the package was split; new code imports them from
`llmemo.stores` (or from `protocol`, `urls`, `glob`, `registry`)."""

from llmemo.stores.glob import glob_regex
from llmemo.stores.protocol import AsyncStore, Counters, Store
from llmemo.stores.registry import (
    ASYNC_SCHEMES,
    SYNC_SCHEMES,
    AsyncFactory,
    SyncFactory,
    async_from_url,
    from_url,
    register_scheme,
)
from llmemo.stores.urls import STORE_ORDER, default_url, redact, store_url

__all__ = [
    "ASYNC_SCHEMES",
    "STORE_ORDER",
    "SYNC_SCHEMES",
    "AsyncFactory",
    "AsyncStore",
    "Counters",
    "Store",
    "SyncFactory",
    "async_from_url",
    "default_url",
    "from_url",
    "glob_regex",
    "redact",
    "register_scheme",
    "store_url",
]
