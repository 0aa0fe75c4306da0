"""`llmemo rekey` as a library call: re-encrypt what is stored under the current key.

`rekey(store, keyring, prefix)` (sync) and `async_rekey(...)` walk every cache entry, warm result
and warm job state of a prefix with SCAN, page by page, and rewrite each one not yet sealed with
the keyring's first key (plain ones included). A value is replaced only while it is unchanged
since it was read (another writer's newer value stays), with its remaining TTL. What no key of
the keyring opens is left alone and counted. The position is saved in the store after each page
(`{prefix}:~rekey`, kept 7 days), so an interrupted run continues where it stopped.
"""

from __future__ import annotations

from llmemo.core._async.rekey import async_rekey
from llmemo.core._sync.rekey import rekey
from llmemo.core.rekey_base import BATCH, STATE_TTL, RekeyReport, targets

__all__ = ["BATCH", "STATE_TTL", "RekeyReport", "async_rekey", "rekey", "targets"]
