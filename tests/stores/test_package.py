"""The stores, index and embed packages: public names, light imports, and generated sync twins."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import llmemo.embed
import llmemo.index
import llmemo.stores

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [llmemo.stores, llmemo.index, llmemo.embed]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_every_public_name_resolves(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert names and all(getattr(package, name) is not None for name in names)


def test_twins_are_exported_under_both_names() -> None:
    from llmemo.embed import AsyncCachedEmbedder, CachedEmbedder
    from llmemo.index import AsyncLocalIndex, LocalIndex
    from llmemo.stores import AsyncRedisStore, RedisStore

    pairs = [(RedisStore, AsyncRedisStore), (LocalIndex, AsyncLocalIndex)]
    pairs.append((CachedEmbedder, AsyncCachedEmbedder))
    for sync, async_ in pairs:
        assert sync.__module__.replace("._sync.", "._async.") == async_.__module__


def test_importing_the_packages_loads_no_extra() -> None:
    done = _python(
        "import sys, llmemo.stores, llmemo.index, llmemo.embed\n"
        "print(sorted(m for m in ('numpy', 'redis', 'upstash_redis', 'httpx', 'tokenizers')"
        " if m in sys.modules))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("name", "extra"), [("llmemo.stores.RedisStore", "redis"), ("llmemo.index.LocalIndex", "numpy")]
)
def test_a_missing_extra_fails_with_its_hint_when_the_name_is_used(name: str, extra: str) -> None:
    package, _, attribute = name.rpartition(".")
    done = _python(
        f"import sys; sys.modules[{extra!r}] = None\n"
        f"from llmemo.errors import MissingExtraError\n"
        f"try:\n    import {package}\n    {package}.{attribute}\n"
        f"except MissingExtraError as exc:\n    print(exc)\n"
    )
    assert done.returncode == 0, done.stderr
    assert f"{extra!r} is not installed: pip install 'llmemo[" in done.stdout


def test_the_generator_covers_every_async_directory_and_catches_stale_twins(
    tmp_path: Path,
) -> None:
    shutil.copytree(ROOT / "src" / "llmemo", tmp_path / "src" / "llmemo")
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    script = [sys.executable, str(tmp_path / "scripts" / "gen_sync.py")]

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run([*script, "--check"], capture_output=True, text=True)

    assert check().returncode == 0
    source = tmp_path / "src/llmemo/index/_async/local.py"
    source.write_text(source.read_text() + "\nLIMIT = 1\n")
    stale = check()
    assert stale.returncode == 1 and "src/llmemo/index/_sync/local.py" in stale.stdout
    new = tmp_path / "src/llmemo/stores/_async/extra.py"
    new.write_text(
        '"""A new async module."""\n\n\nasync def AsyncProbe() -> None:\n    return None\n'
    )
    assert "src/llmemo/stores/_sync/extra.py" in check().stdout
    subprocess.run(script, check=True, capture_output=True)
    assert check().returncode == 0
    twin = (tmp_path / "src/llmemo/stores/_sync/extra.py").read_text()
    assert twin.startswith("# GENERATED") and "def Probe() -> None:" in twin
    new.unlink()
    orphan = check()
    assert orphan.returncode == 1 and "src/llmemo/stores/_sync/extra.py" in orphan.stdout
