"""The ```python blocks of README.md and docs/*.md are run, as a user would paste them.

Each runnable block runs in a fresh interpreter against the local upstream and a real
redis-server, found through the variables a user would set: OPENAI_BASE_URL / OPENAI_API_KEY
(read by the OpenAI SDK), ANTHROPIC_BASE_URL / ANTHROPIC_API_KEY, REDIS_URL, LLMEMO_STORE.
A block that cannot run here (it needs a provider, a cloud account or a running service, or it
is an excerpt) has the line `<!-- fragment -->` just above its fence: it is only compiled.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmemo.testing.server import UpstreamServer

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
FRAGMENT = "<!-- fragment -->"


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    code: str
    fragment: bool

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            found.append(Block(page, line, match.group(1), before.strip() == FRAGMENT))
    return found


BLOCKS = blocks()
RUNNABLE = [b for b in BLOCKS if not b.fragment]


def run(block: Block, tmp_path: Path, redis_url: str, upstream: UpstreamServer) -> str:
    """Run the block in a fresh interpreter in tmp_path; its stdout (exit 0 asserted)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    env.update(
        OPENAI_BASE_URL=upstream.openai_base_url,
        OPENAI_API_KEY="demo",
        ANTHROPIC_BASE_URL=upstream.url,
        ANTHROPIC_API_KEY="demo",
        REDIS_URL=redis_url,
        LLMEMO_STORE=f"sqlite:///{tmp_path / 'cache.db'}",
    )
    # As from the checkout's root: the server launchers of devtools/ are importable.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", block.code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{block.id} exited {done.returncode}\n{done.stderr}"
    return done.stdout


def test_the_blocks_are_found() -> None:
    assert len(BLOCKS) >= 10
    assert RUNNABLE[0].page.name == "README.md"  # the quick-start is run


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_every_block_compiles(block: Block) -> None:
    compile(block.code, block.id, "exec")


@pytest.mark.slow
@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_runnable_blocks_run(
    block: Block, tmp_path: Path, redis_url: str, upstream: UpstreamServer
) -> None:
    run(block, tmp_path, redis_url, upstream)


def test_one_import_path_for_langchain() -> None:
    """The docs name the public module, `llmemo.langchain`, not where it is implemented."""
    for page in [*PAGES, *sorted((ROOT / "examples").glob("*.py"))]:
        assert "llmemo.integrations.langchain" not in page.read_text(), page.name


def test_the_quick_start_misses_then_hits(
    tmp_path: Path, redis_url: str, upstream: UpstreamServer
) -> None:
    """README's library example, as written: a dict from the provider, then a hit."""
    quick_start = next(b for b in RUNNABLE if "get_or_compute" in b.code)
    lines = run(quick_start, tmp_path, redis_url, upstream).splitlines()
    assert lines[0]  # the answer's text
    assert lines[1] == "hit"
    assert lines[2].startswith("CacheStats(hits=1, ") and " misses=1, " in lines[2]
    assert upstream.stats().count("/v1/chat/completions") == 1
