"""`llmemo top --once` as a user runs it: from the store, or from a service with the admin token."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from llmemo.service.rollups import Rollups
from llmemo.stores.sqlite import AsyncSQLiteStore, SQLiteStore
from tests.service.conftest import Serve, serve
from tests.service.test_cli import clean_env

__all__ = ["serve"]  # the fixture, used here
TOKEN = "admin-s3cret"


def llmemo_top(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmemo", "top", "--once", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(COLUMNS="120", **env),
    )


@pytest.fixture
def store_file(tmp_path: Path) -> str:
    """A SQLite store where one instance counted 3 hits and a miss that cost $0.25."""
    path = tmp_path / "cache.db"

    async def write() -> None:
        store = AsyncSQLiteStore(SQLiteStore(path))
        rollups = Rollups(namespace="faq")
        rollups.bind(store, "llmemo", lambda: "closed")
        for _ in range(3):
            rollups.answered("hit", None, "gpt-4o-mini", "t1", 0.0004, (120, 0.5))
        rollups.answered("miss", None, "gpt-4o-mini", "t1", 0.9, spent=0.25)
        assert await rollups.flush()
        await store.close()

    asyncio.run(write())
    return f"sqlite:///{path}"


def test_one_frame_from_the_store(store_file: str) -> None:
    done = llmemo_top("--store", store_file)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "llmemo top" in out and "last hour" in out and "instances 1" in out
    assert "75.0%" in out  # 3 hits of 4
    assert "360" in out and "$1.50" in out and "$0.2500" in out  # tokens and dollars saved, spent
    assert "faq" in out and "gpt-4o-mini" in out
    as_json = json.loads(llmemo_top("--store", store_file, "--json", "--window", "day").stdout)
    assert as_json["window"] == "day" and as_json["totals"]["requests"] == 4


def test_one_frame_from_a_service_with_the_admin_token(serve: Serve) -> None:
    service = serve(admin_token=TOKEN)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "top?"}]}
    for _ in range(2):
        httpx.post(
            f"{service.base_url}/chat/completions",
            json=body,
            headers={"authorization": "Bearer sk-a"},
        )
    done = llmemo_top("--url", service.url, "--json", LLMEMO_ADMIN_TOKEN=TOKEN)
    assert done.returncode == 0, done.stderr
    totals = json.loads(done.stdout)["totals"]
    assert (totals["exact"], totals["miss"]) == (1, 1)
    shown = llmemo_top("--url", service.url, LLMEMO_ADMIN_TOKEN=TOKEN)
    assert shown.returncode == 0 and "50.0%" in shown.stdout


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (("--url", "http://127.0.0.1:9"), {}, 2, "LLMEMO_ADMIN_TOKEN"),
        (("--window", "year", "--store", "memory://"), {}, 2, "hour, day or week"),
        (("--url", "http://127.0.0.1:9"), {"LLMEMO_ADMIN_TOKEN": "x"}, 1, "cannot reach"),
    ],
)
def test_bad_use_fails_in_one_line(
    args: tuple[str, ...], env: dict[str, str], code: int, message: str
) -> None:
    done = llmemo_top(*args, **env)
    assert done.returncode == code
    [line] = done.stderr.splitlines()
    assert line.startswith("llmemo: error:") and message in line


def test_a_wrong_token_is_refused(serve: Serve) -> None:
    service = serve(admin_token=TOKEN)
    done = llmemo_top("--url", service.url, LLMEMO_ADMIN_TOKEN="wrong")
    assert done.returncode == 1
    assert (
        "401" in done.stderr and "wrong admin token" in done.stderr and 'wrong"' not in done.stderr
    )
