"""The package's public surface (docs/api.md), and the generated sync twin being current."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import llmemo

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "docs" / "api.md"
ROW = re.compile(r"^\| `(\w+)` \| (.+?) \| (.+?) \|$", re.MULTILINE)
# Extra -> a module it brings, hidden in the subprocess below to act out a missing extra.
EXTRA_MODULE = {"redis": "redis", "semantic": "numpy", "upstash": "upstash_redis"}


def documented() -> dict[str, set[str]]:
    """Name -> the extras docs/api.md says it needs (empty for the base install)."""
    rows = {}
    for name, _, extras in ROW.findall(API.read_text()):
        assert name not in rows, f"{name} is listed twice in docs/api.md"
        rows[name] = {e.strip(" `") for e in extras.split(",")} - {"—"}
    return rows


DOCUMENTED = documented()


def test_all_is_the_documented_list() -> None:
    assert len(DOCUMENTED) > 40
    assert len(llmemo.__all__) == len(set(llmemo.__all__))
    missing_from_docs = set(llmemo.__all__) - DOCUMENTED.keys()
    missing_from_all = DOCUMENTED.keys() - set(llmemo.__all__)
    assert not missing_from_docs, f"in llmemo.__all__, not in docs/api.md: {missing_from_docs}"
    assert not missing_from_all, f"in docs/api.md, not in llmemo.__all__: {missing_from_all}"
    assert set().union(*DOCUMENTED.values()) <= EXTRA_MODULE.keys()


def test_every_public_name_resolves() -> None:
    for name in llmemo.__all__:
        assert getattr(llmemo, name) is not None, name
    assert set(llmemo.__all__) <= set(dir(llmemo))


def test_nothing_public_is_left_out_of_all() -> None:
    public = {name for name in vars(llmemo) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(llmemo, name)).__name__ == "module"}
    assert public - modules - {"annotations", "importlib", "TYPE_CHECKING"} <= set(llmemo.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Cashe'"):
        _ = llmemo.Cashe


def python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_llmemo_is_light() -> None:
    """The base names load without any extra's modules; the others load them on first use."""
    base = [name for name, extras in DOCUMENTED.items() if not extras]
    heavy = sorted({"httpx", "starlette", "uvicorn", "usearch", *EXTRA_MODULE.values()})
    loaded = python(
        "import sys, llmemo\n"
        f"for name in {base!r}: getattr(llmemo, name)\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
        "llmemo.RedisStore\n"
        "print('redis' in sys.modules)\n"
    ).split("\n")
    assert loaded[:2] == ["[]", "True"]


def test_a_missing_extra_names_the_extra() -> None:
    """Each name that needs an extra fails with MissingExtraError naming it when it is missing."""
    checked = {
        name: sorted(extras)
        for name, extras in DOCUMENTED.items()
        if extras and not name.endswith(("SemanticLayer", "LLMVerifier"))  # they need it to run
    }
    code = (
        "import sys\n"
        f"for name, extras in {checked!r}.items():\n"
        "    for extra in extras:\n"
        f"        hidden = {EXTRA_MODULE!r}[extra]\n"
        "        saved = {k: v for k, v in sys.modules.items() if k.startswith('llmemo')}\n"
        "        for k in saved: del sys.modules[k]\n"
        "        original = sys.modules.get(hidden)\n"
        "        sys.modules[hidden] = None\n"
        "        import llmemo\n"
        "        from llmemo import MissingExtraError\n"
        "        try:\n"
        "            getattr(llmemo, name)\n"
        "        except MissingExtraError as exc:\n"
        '            assert f"llmemo[{extra}]" in str(exc), (name, exc)\n'
        "        else:\n"
        "            raise AssertionError(f'{name} loaded without {extra}')\n"
        "        if original is None:\n"
        "            del sys.modules[hidden]\n"
        "        else:\n"
        "            sys.modules[hidden] = original\n"
        "print('ok')\n"
    )
    assert python(code).strip() == "ok"


def test_cache_from_url_interface() -> None:
    cache = llmemo.Cache.from_url("memory://", namespace="app", ttl="1h")
    assert cache.namespace == "app"
    assert cache.policy.default == 3600
    assert isinstance(llmemo.from_url("memory://"), llmemo.Cache)
    assert isinstance(llmemo.async_from_url("memory://"), llmemo.AsyncCache)


def test_generated_sync_cache_is_current() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_sync.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
