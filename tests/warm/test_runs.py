"""llmemo.warm.runs: idempotent runs on a real redis-server (claim once, record, replay)."""

from __future__ import annotations

import pytest

from llmemo.service.errors import problem_of
from llmemo.stores.base import async_from_url
from llmemo.warm.runs import Recorded, RunBusyError, RunConflictError, Runs, digest_of


@pytest.mark.asyncio
async def test_a_run_is_claimed_once_recorded_and_replayed(redis_url: str) -> None:
    store = async_from_url(redis_url)
    runs, other = Runs(store, "p", record_ttl=60), Runs(store, "p", record_ttl=60)
    digest = digest_of(b'{"query": "hi"}')
    run = await runs.run_of("qstash", "msg-1")
    assert await runs.recorded(run, digest) is None
    async with runs.claim(run, digest) as done:
        assert done is None
        with pytest.raises(RunBusyError):  # another instance, same body: under way
            async with other.claim(run, digest):
                pass
        with pytest.raises(RunConflictError):  # the same run id with another body
            async with other.claim(run, digest_of(b"other")):
                pass
        await runs.record(run, digest, 200, {"status": "done"})
    assert await other.recorded(run, digest) == Recorded(200, {"status": "done"})
    with pytest.raises(RunConflictError):
        await other.recorded(run, digest_of(b"other"))
    async with other.claim(run, digest) as done:  # the lease was released; the record stays
        assert done == Recorded(200, {"status": "done"})
    assert await store.get(f"p:~warm:done:{run}") is not None
    await store.close()


@pytest.mark.asyncio
async def test_a_signature_starts_at_most_one_run(redis_url: str) -> None:
    store = async_from_url(redis_url)
    runs = Runs(store, "p", record_ttl=60)
    first = await runs.run_of("qstash", "msg-1", jti="sig-1", expires=None)
    assert await runs.run_of("qstash", "msg-2", jti="sig-1", expires=None) == first
    assert await runs.run_of("qstash", "msg-2") != first
    await store.close()


def test_run_errors_are_in_the_one_table() -> None:
    busy, conflict = problem_of(RunBusyError()), problem_of(RunConflictError())
    assert (busy.status, busy.retry_after) == (409, 5)
    assert conflict.status == 422
