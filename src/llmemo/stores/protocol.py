"""The Store protocol and its async twin (written once in `stores/_async/protocol.py`)."""

from llmemo.stores._async.protocol import AsyncRewritableStore, AsyncStore
from llmemo.stores._sync.protocol import Counters, RewritableStore, Store

__all__ = ["AsyncRewritableStore", "AsyncStore", "Counters", "RewritableStore", "Store"]
