"""Start Redis Stack (server + RediSearch + RedisJSON), as installed by `scripts/install-redis-stack`."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from devtools.redis_server import RedisServer
from llmemo.errors import ConfigError

PATHS_ENV = "LLMEMO_REDIS_STACK_PATHS"
_HINT = "run scripts/install-redis-stack"


@dataclass(frozen=True)
class StackPaths:
    """Where the installed stack lives: the server, its cli, module files, the private libssl."""

    server: str
    cli: str
    modules: dict[str, str]
    ld_library_path: str

    def env(self) -> dict[str, str]:
        """Environment additions the stack's binaries need (they link OpenSSL 1.1)."""
        if not self.ld_library_path:
            return {}
        inherited = os.environ.get("LD_LIBRARY_PATH", "")
        return {"LD_LIBRARY_PATH": ":".join(p for p in (self.ld_library_path, inherited) if p)}


def default_paths_file() -> Path:
    """`$LLMEMO_REDIS_STACK_PATHS`, else `<venv>/redis-stack/paths.json` of the running Python."""
    override = os.environ.get(PATHS_ENV)
    return Path(override) if override else Path(sys.prefix) / "redis-stack" / "paths.json"


def stack_paths(paths_file: Path | None = None) -> StackPaths:
    """Read the paths file; `ConfigError` with the fix when the stack is not installed."""
    path = paths_file or default_paths_file()
    try:
        raw = json.loads(path.read_text())
        paths = StackPaths(
            server=str(raw["server"]),
            cli=str(raw["cli"]),
            modules={str(k): str(v) for k, v in raw["modules"].items()},
            ld_library_path=str(raw.get("ld_library_path", "")),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"Redis Stack is not installed ({path}: {exc}): {_HINT}") from None
    missing = [f for f in (paths.server, *paths.modules.values()) if not Path(f).exists()]
    if missing or "search" not in paths.modules:
        raise ConfigError(f"Redis Stack install is incomplete ({path}): {_HINT}")
    return paths


def redis_stack_server(
    port: int | None = None,
    args: Sequence[str] = (),
    modules: Sequence[str] = ("search", "json"),
    paths_file: Path | None = None,
) -> RedisServer:
    """A not yet started `RedisServer` running Redis Stack with the named modules loaded."""
    paths = stack_paths(paths_file)
    unknown = [m for m in modules if m not in paths.modules]
    if unknown:
        raise ConfigError(f"Redis Stack has no module {unknown[0]!r}: {_HINT}")
    load: list[str] = []
    for name in modules:
        load += ["--loadmodule", paths.modules[name]]
    return RedisServer(binary=paths.server, args=[*load, *args], port=port, env=paths.env())
