"""Whose entry a warm item fills: the one `llmemo serve` reads with the same settings.

The service scopes a request by its namespace: a shared namespace (`--shared`, or one of
`shared_namespaces`) has no tenant, any other one has a tenant per API key. A warm item is stored
in the scope the service reads, so a warmed answer is served; an item whose entry the service
would never read is refused before anything is sent upstream.
"""

from __future__ import annotations

from collections.abc import Callable

from llmemo.errors import ConfigError
from llmemo.warm.items import WarmItem

Shares = Callable[[str], bool]  # is this namespace shared (`Settings.shares`)


def warm_shared(item: WarmItem, namespace: str, shares: Shares) -> bool:
    """True: the item's entry is shared; False: it is kept for the tenant of the warm API key
    (`"shared": false`). ConfigError when the service would never serve the entry.

    namespace: the default namespace (the item's own one wins).
    """
    name = item.namespace or namespace
    shared = shares(name)
    if item.shared is None and not shared:
        raise ConfigError(
            f"namespace {name!r} is isolated per API key, so `llmemo serve` would serve a warmed "
            "entry there to no caller: share the namespace (--shared-namespace "
            f"{name}, LLMEMO_SHARED_NAMESPACES or shared_namespaces in the config file, as the "
            'service has it), or set "shared": false (llmemo warm --isolated) to warm it for '
            "the callers of the warm API key only"
        )
    if item.shared is True and not shared:
        raise ConfigError(
            f'"shared": true, but namespace {name!r} is not shared in these settings (add it with '
            "--shared-namespace or LLMEMO_SHARED_NAMESPACES, as the service has it): the "
            "service would never serve the entry"
        )
    if item.shared is False and shared:
        raise ConfigError(
            f'"shared": false, but namespace {name!r} is shared: the service reads it without a '
            "tenant and would never serve an entry kept for one API key"
        )
    return shared
