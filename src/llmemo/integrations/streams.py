"""What a wrapped client returns for `stream=True`: `CacheStream`, or `AsyncCacheStream` for an
async client (written once in `integrations/_async/streams.py`, the sync one generated)."""

from llmemo.integrations._async.streams import AsyncCacheStream
from llmemo.integrations._sync.streams import CacheStream

__all__ = ["AsyncCacheStream", "CacheStream"]
