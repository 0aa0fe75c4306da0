"""The Store protocol and its async twin (written once in `stores/_async/protocol.py`)."""

from llmemo.stores._async.protocol import AsyncStore
from llmemo.stores._sync.protocol import Counters, Store

__all__ = ["AsyncStore", "Counters", "Store"]
