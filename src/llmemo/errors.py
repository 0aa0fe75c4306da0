"""The one exception root of llmemo and its few children."""

from __future__ import annotations


class LLMemoError(Exception):
    """Base class of every error llmemo raises on purpose."""


class ConfigError(LLMemoError, ValueError):
    """A setting, URL or argument that llmemo cannot use; the message says how to fix it."""


class MissingExtraError(LLMemoError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class StoreError(LLMemoError):
    """The store failed (unreachable, timed out, refused). The cache fails open on it.

    `partial` is True when only part of the store failed (one cluster node): the cache still fails
    open for that call, but does not open its circuit breaker for the healthy rest.
    """

    partial: bool = False


class UnkeyableError(LLMemoError, TypeError):
    """A request or argument that cannot be turned into a cache key."""


class CorruptEntryError(LLMemoError):
    """A stored value that is not a readable llmemo entry (treated as a miss and deleted)."""


class UndecryptableError(CorruptEntryError):
    """An encrypted entry this cache cannot open (no key, wrong key, tampered, moved), or a plain
    one where encryption is required: a counted miss, left in place for a reader that can."""


def require(module: str, extra: str) -> None:
    """Fail with a one-line hint naming the extra when an optional module is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(f"{module!r} is not installed: pip install 'llmemo[{extra}]'")
