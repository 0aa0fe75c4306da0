"""The package's public surface, and the generated sync twin being current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import llmemo

ROOT = Path(__file__).resolve().parent.parent


def test_all_is_the_public_surface() -> None:
    public = {name for name in vars(llmemo) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(llmemo, name)).__name__ == "module"}
    assert set(llmemo.__all__) | {"__version__"} >= public - modules
    assert all(hasattr(llmemo, name) for name in llmemo.__all__)
    for name in ("Cache", "AsyncCache", "Hit", "CacheRequest", "Scope", "TtlPolicy", "LLMemoError"):
        assert name in llmemo.__all__


def test_cache_from_url_interface() -> None:
    cache = llmemo.Cache.from_url("memory://", namespace="app", ttl="1h")
    assert cache.namespace == "app"
    assert cache.policy.default == 3600


def test_generated_sync_cache_is_current() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_sync.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
