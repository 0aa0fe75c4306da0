"""The cache itself: requests, entries, policy and the Cache facade.

`Cache` and `AsyncCache` are imported from here (or from `llmemo`), never from the private
`_sync`/`_async` modules that hold them.
"""

from llmemo.core._async.cache import AsyncCache
from llmemo.core._sync.cache import Cache

__all__ = ["AsyncCache", "Cache"]
