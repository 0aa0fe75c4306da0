"""`llmemo wipe`: real processes on a real SQLite file; the report, the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmemo import Cache
from llmemo.service.controls import tenant_id
from tests.cli.test_cli import run
from tests.core.helpers import Upstream, answer, chat


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/cache.db"
    with Cache.from_url(url) as cache:
        for user in ("alice", "bob"):
            for namespace in ("default", "faq"):
                fn = Upstream(answer(f"for {user}"))
                cache.compute(chat("hi"), fn, user=user, namespace=namespace)
        cache.compute(chat("hi"), Upstream(), tenant=tenant_id("sk-acme"))
    return url


def left(url: str) -> dict[str, bool]:
    with Cache.from_url(url) as cache:
        return {
            f"{user}/{ns}": cache.lookup(chat("hi"), user=user, namespace=ns) is not None
            for user in ("alice", "bob")
            for ns in ("default", "faq")
        } | {"acme": cache.lookup(chat("hi"), tenant=tenant_id("sk-acme")) is not None}


def test_a_user_in_every_namespace_then_a_tenant_by_its_api_key(store_url: str) -> None:
    done = run("wipe", "--user", "alice", "--yes", "--json", "--store", store_url)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["entries"] == 2 and report["deleted"] == 2
    assert left(store_url) == {
        "alice/default": False,
        "alice/faq": False,
        "bob/default": True,
        "bob/faq": True,
        "acme": True,
    }
    table = run("wipe", "--api-key", "sk-acme", "--yes", "--store", store_url)
    assert table.returncode == 0 and "entries" in table.stdout
    assert not left(store_url)["acme"]


def test_one_namespace(store_url: str) -> None:
    done = run("wipe", "--user", "bob", "-n", "faq", "--yes", "--json", "--store", store_url)
    assert json.loads(done.stdout)["entries"] == 1
    assert left(store_url)["bob/default"] and not left(store_url)["bob/faq"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "--user, --tenant or --api-key"),
        (("--user", "alice"), "Add --yes"),
        (("--user", "a", "-n", "faq", "--all-namespaces", "--yes"), "not both"),
        (("--tenant", "t", "--api-key", "k", "--yes"), "not both"),
        (("--user", "a", "-n", "bad name", "--yes"), "invalid namespace"),
    ],
)
def test_refusals_delete_nothing(store_url: str, args: tuple[str, ...], message: str) -> None:
    done = run("wipe", *args, "--store", store_url)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("llmemo: error:") and message in line
    assert all(left(store_url).values())
