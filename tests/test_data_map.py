"""docs/data-map.md covers every key shape: each function of stores/keys.py, and each kind of warm
record, has a row in its table of keys (a new shape without a row fails here)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEYS = ROOT / "src/llmemo/stores/keys.py"
DOC = ROOT / "docs/data-map.md"
COLUMNS = 6


def key_rows() -> list[list[str]]:
    """The cells of each row of the doc's table of keys (escaped pipes kept inside a cell)."""
    section = DOC.read_text().split("## Keys", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith("| ---"):
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        assert len(cells) == COLUMNS, line
        rows.append(cells)
    return rows[1:]  # the header row


def builders() -> set[str]:
    tree = ast.parse(KEYS.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_every_key_function_has_a_row() -> None:
    named = {name for row in key_rows() for name in re.findall(r"`(\w+)`", row[1])}
    missing = builders() - named
    assert not missing, f"add a row for each to docs/data-map.md: {sorted(missing)}"
    assert named <= builders(), f"the data map names functions keys.py lacks: {named - builders()}"


def test_every_warm_record_kind_has_a_row() -> None:
    runs = (ROOT / "src/llmemo/warm/runs.py").read_text()
    kinds = set(re.findall(r"_key\(\s*\"(\w+)\"", runs))
    assert kinds == {"jti", "done", "lease", "job"}
    patterns = [row[0] for row in key_rows()]
    for kind in kinds:
        assert any(f":~warm:{kind}:" in p for p in patterns), kind


def test_every_row_says_what_how_and_how_long() -> None:
    for pattern, _built, holds, plain, sealed, lifetime in key_rows():
        assert pattern.startswith("`{prefix}:"), pattern
        assert holds and plain and sealed and lifetime, pattern


def test_the_data_map_is_linked() -> None:
    assert "data-map.md" in (ROOT / "README.md").read_text()
    assert "data-map.md" in (ROOT / "docs/privacy.md").read_text()
