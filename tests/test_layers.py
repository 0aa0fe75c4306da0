"""The map of docs/layout.md, enforced: no lower layer imports a higher one, no private path is
imported from outside its package.

Every module under src/llmemo is parsed with `ast` (nothing is imported), so a new module is
checked the day it is added. The rules are written per package, not per file.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

# Package (first part under `llmemo`) -> its layer; a module may import its own layer and lower ones.
# "llmemo" is the package root (`llmemo/__init__.py`, the public API) and `llmemo.langchain`.
LAYERS: dict[str, int] = {
    "errors": 0,
    "_synchronization": 0,
    "_lazy": 0,
    "telemetry": 0,
    "stores": 1,
    "index": 2,
    "embed": 2,
    "core": 3,
    "calibrate": 3,
    "integrations": 4,
    "warm": 4,
    "service": 4,
    "llmemo": 4,
    "langchain": 4,
    "cli": 5,
    "__main__": 5,
}
# `llmemo.testing` (the fake LLM upstream) stands aside: it may use the layers up to the core,
# and only the CLI (`llmemo serve --upstream demo`) imports it.
TESTING = "testing"
TESTING_MAY_IMPORT = 3
TESTING_IMPORTED_BY = {"cli", TESTING}

# Known exceptions: (importing package, imported package) -> why. Remove an entry with its cause.
EXCEPTIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. llmemo.core._async.cache
    target: str  # the imported path, e.g. llmemo.core.facade.Hit or llmemo.core.entry
    line: int

    def __str__(self) -> str:
        return f"{self.module} (line {self.line}) imports {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports_of(path: Path) -> list[Import]:
    """Every llmemo import of one module, at any depth (functions, TYPE_CHECKING blocks too)."""
    module = module_name(path)
    here = module if is_package(path) else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [
            Import(module, t, node.lineno)
            for t in targets
            if t == "llmemo" or t.startswith("llmemo.")
        ]
    return found


def package_of(path: str) -> str:
    """The top package of a dotted llmemo path: llmemo.core.facade -> core, llmemo -> llmemo."""
    parts = path.split(".")
    return parts[1] if len(parts) > 1 else "llmemo"


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / "llmemo").rglob("*.py"))}


MODULES = modules()
IMPORTS = [i for path in MODULES.values() for i in imports_of(path)]


def target_package(target: str) -> str:
    """The package an imported path belongs to; a name of the root (`from llmemo import Cache`)
    belongs to the root, `llmemo`."""
    package = package_of(target)
    return package if f"llmemo.{package}" in MODULES else "llmemo"


def layer_violation(item: Import) -> str | None:
    source, target = package_of(item.module), target_package(item.target)
    if source == target or (source, target) in EXCEPTIONS:
        return None
    if target == TESTING:
        return None if source in TESTING_IMPORTED_BY else "only the CLI may import llmemo.testing"
    if source == TESTING:
        ok = LAYERS[target] <= TESTING_MAY_IMPORT
        return None if ok else f"llmemo.testing may import up to the core, not {target}"
    if source not in LAYERS or target not in LAYERS:
        return f"{source if source not in LAYERS else target} has no layer in tests/test_layers.py"
    if LAYERS[target] > LAYERS[source]:
        return f"{source} (layer {LAYERS[source]}) imports {target} (layer {LAYERS[target]})"
    return None


def private_owner(target: str) -> str | None:
    """The package a private path belongs to, or None for a public path.

    `llmemo.core._async.cache` belongs to `llmemo.core`; a private name of a module
    (`llmemo.stores.redis_base._scrub`) belongs to the module's package (`llmemo.stores`).
    """
    parts = target.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not (part.startswith("__") and part.endswith("__")):
            owner = ".".join(parts[:i])
            if owner not in MODULES or is_package(MODULES[owner]):
                return owner
            return owner.rpartition(".")[0]  # a private name of a module: its package's
    return None


def private_violation(item: Import) -> str | None:
    owner = private_owner(item.target)
    if owner is None or item.module == owner or item.module.startswith(owner + "."):
        return None
    return f"{item.target} is private to {owner}"


def test_every_package_has_a_layer() -> None:
    packages = {package_of(name) for name in MODULES}
    assert packages - {TESTING} <= LAYERS.keys(), "give it a layer here and in docs/layout.md"


def test_the_modules_are_found() -> None:
    assert "llmemo.core.facade" in MODULES
    assert len(IMPORTS) > 100


def test_no_lower_layer_imports_a_higher_one() -> None:
    problems = [f"{i}: {why}" for i in IMPORTS if (why := layer_violation(i))]
    assert not problems, "\n".join(problems)


def test_no_private_path_is_imported_from_outside_its_package() -> None:
    problems = [f"{i}: {why}" for i in IMPORTS if (why := private_violation(i))]
    assert not problems, "\n".join(problems)


def test_the_package_never_imports_the_checkout() -> None:
    """devtools/, tests/ and bench/ are not in the wheel: the package cannot import them."""
    outside = ("devtools", "tests", "bench")
    problems = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            problems += [f"{module} imports {n}" for n in names if n.split(".")[0] in outside]
    assert not problems, "\n".join(problems)


def test_every_exception_is_still_needed() -> None:
    used = {(package_of(i.module), target_package(i.target)) for i in IMPORTS}
    assert EXCEPTIONS.keys() <= used, "an exception no longer happens: remove it from EXCEPTIONS"


@pytest.mark.parametrize(
    ("module", "target", "why"),
    [
        (
            "llmemo.stores.redis",
            "llmemo.core.entry.Entry",
            "stores (layer 1) imports core (layer 3)",
        ),
        ("llmemo.index.local", "llmemo.service.app", "index (layer 2) imports service (layer 4)"),
        ("llmemo.core.facade", "llmemo.cli.main", "core (layer 3) imports cli (layer 5)"),
        ("llmemo.service.app", "llmemo.testing.server", "only the CLI may import llmemo.testing"),
        (
            "llmemo.testing.upstream",
            "llmemo.service.app",
            "llmemo.testing may import up to the core, not service",
        ),
    ],
)
def test_a_layer_violation_is_named(module: str, target: str, why: str) -> None:
    assert layer_violation(Import(module, target, 1)) == why


@pytest.mark.parametrize(
    ("module", "target", "owner"),
    [
        ("llmemo.service.hot", "llmemo.core._async.cache.AsyncCache", "llmemo.core"),
        ("llmemo.cli.main", "llmemo.core._sync", "llmemo.core"),
        ("llmemo.index.local", "llmemo.stores.redis_base._scrub", "llmemo.stores"),
        ("llmemo.warm.runner", "llmemo.core.facade._Memo", "llmemo.core"),
    ],
)
def test_a_private_import_from_outside_is_named(module: str, target: str, owner: str) -> None:
    assert private_violation(Import(module, target, 1)) == f"{target} is private to {owner}"


@pytest.mark.parametrize(
    ("module", "target"),
    [
        ("llmemo.core._sync.cache", "llmemo.core._sync.check.Checker"),
        ("llmemo.core", "llmemo.core._async.cache.AsyncCache"),
        ("llmemo.stores.cluster_gate", "llmemo.stores.redis_base._scrub"),
        ("llmemo.service.app", "llmemo.core.AsyncCache"),
        ("llmemo.cli.main", "llmemo.__version__"),
    ],
)
def test_allowed_imports_pass(module: str, target: str) -> None:
    assert layer_violation(Import(module, target, 1)) is None
    assert private_violation(Import(module, target, 1)) is None
