"""Pre-warming: ask the upstream once per request and store the answer before anyone asks.

A warm item is an OpenAI or Anthropic request body, or the simple form `{"query": ..., "model": ...}`,
with optional `namespace`, `shared`, `ttl`, `tags` and `refresh`. `Warmer` runs items against an AsyncCache
and an upstream caller: an entry that exists is left alone (`fresh`) unless it is within
`refresh_before` (a fraction of its TTL) of expiring or `refresh` is set; otherwise the upstream is
called once (single-flight) and the answer stored (`stored`). Anything else is `failed`, with a reason.

Modules: `items` (parsing), `scope` (whose entry an item fills), `results` (what a run did),
`runner` (the Warmer), `runs` (idempotent runs), `upstream` (calling the providers).
"""

from llmemo.warm.items import (
    ANTHROPIC_MAX_TOKENS,
    UPSTREAM_PATHS,
    Batch,
    InvalidItem,
    Parsed,
    Provider,
    WarmItem,
    check_refresh_before,
    parse_batch,
    parse_item,
)
from llmemo.warm.results import ItemResult, Report, Status, Summary
from llmemo.warm.runner import Caller, TenantOf, Warmer, refresh_due
from llmemo.warm.scope import Shares, warm_shared
from llmemo.warm.upstream import (
    ANTHROPIC_VERSION,
    HttpUpstream,
    WarmError,
    auth_headers,
    post_item,
    upstream_body,
)

__all__ = [
    "ANTHROPIC_MAX_TOKENS",
    "ANTHROPIC_VERSION",
    "UPSTREAM_PATHS",
    "Batch",
    "Caller",
    "HttpUpstream",
    "InvalidItem",
    "ItemResult",
    "Parsed",
    "Provider",
    "Report",
    "Shares",
    "Status",
    "Summary",
    "TenantOf",
    "WarmError",
    "WarmItem",
    "Warmer",
    "auth_headers",
    "check_refresh_before",
    "parse_batch",
    "parse_item",
    "post_item",
    "refresh_due",
    "upstream_body",
    "warm_shared",
]
