"""`Cache.wipe`: whose entries go (a user, a tenant, both), what is reported, and how another
process sharing the store drops its in-process copies (two caches on one store)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmemo import AsyncCache, Cache
from llmemo.errors import ConfigError
from tests.core.helpers import Clock, Upstream, answer, chat


def fill(cache: Cache) -> None:
    for tenant in ("acme", "globex"):
        for user in ("alice", "bob"):
            fn = Upstream(answer(f"for {user} at {tenant}"))
            cache.compute(chat("hello"), fn, tenant=tenant, user=user)
    cache.compute(chat("hello"), Upstream(answer("for anyone")))


def owners(cache: Cache) -> set[tuple[str | None, str | None]]:
    left = set()
    for tenant in ("acme", "globex", None):
        for user in ("alice", "bob", None):
            if cache.lookup(chat("hello"), tenant=tenant, user=user) is not None:
                left.add((tenant, user))
    return left


def test_a_user_is_wiped_in_every_tenant_and_the_rest_stays(tmp_path: Path) -> None:
    with Cache.from_url(f"sqlite:///{tmp_path}/c.db") as cache:
        fill(cache)
        report = cache.wipe(user="alice")
        assert (report.entries, report.vectors, report.embeddings) == (2, 0, 0)
        assert report.to_dict()["deleted"] == 2
        assert owners(cache) == {("acme", "bob"), ("globex", "bob"), (None, None)}


def test_a_tenant_or_one_user_of_a_tenant(redis_url: str) -> None:
    with Cache.from_url(redis_url) as cache:
        fill(cache)
        assert cache.wipe(user="bob", tenant="globex").entries == 1
        assert cache.wipe(tenant="acme").entries == 2
        assert owners(cache) == {("globex", "alice"), (None, None)}


def test_one_namespace_or_every_one(redis_url: str) -> None:
    with Cache.from_url(redis_url) as cache:
        for namespace in ("a", "b"):
            cache.compute(chat("hi"), Upstream(), namespace=namespace, user="alice")
        assert cache.wipe(user="alice", namespace="a").entries == 1
        assert cache.lookup(chat("hi"), namespace="b", user="alice") is not None
        assert cache.wipe(user="alice").entries == 1  # every namespace by default


def test_a_wipe_needs_a_user_or_a_tenant(redis_url: str) -> None:
    with Cache.from_url(redis_url) as cache:
        with pytest.raises(ConfigError, match="needs a user or a tenant"):
            cache.wipe()
        with pytest.raises(ConfigError, match="non-empty"):
            cache.wipe(user="")


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_another_process_drops_its_near_copies_within_version_ttl(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path}/c.db" if store == "sqlite" else request.getfixturevalue("redis_url")
    )
    mono = Clock()
    # the near cache keeps entries a minute: only the notice can drop them sooner
    wiper = Cache.from_url(url)
    other = Cache.from_url(url, near=60, monotonic=mono, version_ttl=1.0)
    fn = Upstream(answer("secret of alice"))
    other.compute(chat("q"), fn, user="alice")
    other.compute(chat("q"), fn, user="bob")
    assert other.lookup(chat("q"), user="alice") is not None  # kept in its near cache
    assert wiper.wipe(user="alice").entries == 1
    mono.advance(1.5)  # past version_ttl: the namespace's meta is read again
    assert other.lookup(chat("q"), user="alice") is None
    assert other.lookup(chat("q"), user="bob") is not None
    assert fn.calls == 2
    wiper.close()
    other.close()


@pytest.mark.asyncio
async def test_the_async_twin(redis_url: str) -> None:
    mono = Clock()
    wiper = AsyncCache.from_url(redis_url)
    other = AsyncCache.from_url(redis_url, near=60, monotonic=mono)
    await other.compute(chat("q"), Upstream(), tenant="acme")
    assert await other.lookup(chat("q"), tenant="acme") is not None
    report = await wiper.wipe(tenant="acme")
    assert report.entries == 1 and report.namespaces == 1
    mono.advance(1.5)
    assert await other.lookup(chat("q"), tenant="acme") is None
    await wiper.close()
    await other.close()


def test_on_erase_callbacks_run_here_and_when_another_process_wiped(redis_url: str) -> None:
    mono = Clock()
    dropped: list[str] = []
    wiper = Cache.from_url(redis_url, monotonic=mono)
    other = Cache.from_url(redis_url, monotonic=mono)
    wiper.on_erase.append(lambda: dropped.append("wiper"))
    other.on_erase.append(lambda: dropped.append("other"))
    other.compute(chat("q"), Upstream(), user="alice")
    wiper.wipe(user="alice")
    assert dropped == ["wiper"]
    other.lookup(chat("q"), user="bob")  # within version_ttl: not read yet
    assert dropped == ["wiper"]
    mono.advance(1.5)
    other.lookup(chat("q"), user="bob")
    wiper.lookup(chat("q"), user="bob")  # the wiper knows the new counts: no second drop
    assert dropped == ["wiper", "other"]
    wiper.close()
    other.close()


def test_an_entry_whose_header_is_longer_than_a_head_read_is_wiped(redis_url: str) -> None:
    user = "u" * 3000  # the header no longer fits in the first HEAD_BYTES
    with Cache.from_url(redis_url) as cache:
        cache.compute(chat("hi"), Upstream(), user=user)
        cache.compute(chat("hi"), Upstream(), user="bob")
        assert cache.wipe(user=user).entries == 1
        assert cache.lookup(chat("hi"), user=user) is None
        assert cache.lookup(chat("hi"), user="bob") is not None


def test_an_entry_whose_header_is_longer_than_a_head_read_is_invalidated(redis_url: str) -> None:
    user = "u" * 3000
    with Cache.from_url(redis_url) as cache:
        cache.compute(chat("hi"), Upstream(), user=user)
        cache.compute(chat("hi"), Upstream(), user="bob")
        assert cache.invalidate(user=user) == 1
        assert cache.lookup(chat("hi"), user=user) is None
        assert cache.lookup(chat("hi"), user="bob") is not None
