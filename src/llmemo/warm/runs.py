"""Idempotent runs in a store: claim a run id once, record its result, replay it.

A scheduler may deliver one message several times, to several instances. Each delivery names its
run (a message id, an `Idempotency-Key`); the first one to claim the run holds a lease (`SET NX`,
renewed while it works) and records its result; a later delivery of the same run gets the
recorded result back, and one that comes while the run is under way is refused (`RunBusyError`).
A run id reused with a different body is refused too (`RunConflictError`): the result of one
batch must never answer another. The state lives in the store, so it holds across instances.
With encryption keys, the records that hold answers (results, job states) are sealed with them
(core/crypto.py `seal_record`); one that cannot be decrypted reads as absent, and is logged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from llmemo.core.crypto import Keyring, open_record, seal_record
from llmemo.core.singleflight import AsyncRenewer
from llmemo.errors import UndecryptableError
from llmemo.stores import keys
from llmemo.stores.base import AsyncStore
from llmemo.warm.upstream import WarmError

log = logging.getLogger("llmemo.warm")
LEASE_TTL = 30.0  # renewed while a run is under way; a crashed run frees its id this fast


class RunBusyError(WarmError):
    """The run is under way (here or on another instance); its result is recorded when done."""

    def __init__(self) -> None:
        super().__init__("this message is already being warmed; its result is recorded when done")


class RunConflictError(WarmError):
    """The run id was first used with a different body."""

    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key (or Upstash-Message-Id) was first used with a different body; "
            "send a new key for a different batch"
        )


@dataclass(frozen=True)
class Recorded:
    """The result a run recorded: what to answer again."""

    status: int
    body: Any


def digest_of(body: bytes) -> str:
    """The digest that ties a run id to the body it was first used with."""
    return hashlib.sha256(body).hexdigest()[:32]


def run_hash(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


class Runs:
    """The idempotent runs (and background job states) of one cache prefix in one store."""

    def __init__(
        self,
        store: AsyncStore,
        prefix: str,
        record_ttl: float,
        lease_ttl: float = LEASE_TTL,
        keyring: Keyring | None = None,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.record_ttl = record_ttl
        self.lease_ttl = lease_ttl
        self.keyring = keyring  # seals results and job states (they hold answers)

    def _key(self, kind: str, ident: str) -> str:
        return keys.warm_key(self.prefix, kind, ident)

    async def run_of(
        self, kind: str, run_id: str, jti: str | None = None, expires: float | None = None
    ) -> str:
        """The run a delivery belongs to.

        A signed delivery (`jti`, valid until `expires`) starts at most one run: its jti is
        recorded until it expires, and a jti seen before, with another run id or none, maps to
        the run it was first used for.
        """
        run = run_hash(kind, run_id)
        if jti is not None:
            key = self._key("jti", run_hash(jti))
            ttl = max(1.0, (expires or time.time()) - time.time() + 60.0)
            if not await self.store.add(key, run.encode(), ttl):
                first = await self.store.get(key)
                if first is not None:
                    return first.decode()
        return run

    async def _read(self, key: str) -> bytes | None:
        """A sealed record's plaintext; None when absent or undecryptable (logged)."""
        data = await self.store.get(key)
        if data is None:
            return None
        try:
            return open_record(self.keyring, key, data)
        except UndecryptableError as exc:
            log.warning("warm record %s cannot be decrypted (%s): read as absent", key, exc)
            return None

    async def recorded(self, run: str, digest: str) -> Recorded | None:
        """The result `run` recorded, if any; RunConflictError when it ran another body."""
        data = await self._read(self._key("done", run))
        if data is None:
            return None
        record = orjson.loads(data)
        if record.get("digest", digest) != digest:
            raise RunConflictError()
        return Recorded(int(record["status"]), record["body"])

    @asynccontextmanager
    async def claim(self, run: str, digest: str) -> AsyncIterator[Recorded | None]:
        """Hold the run's lease (renewed) for the block; the block gets the run's recorded
        result if it finished meanwhile (then it should answer that). RunBusyError when another
        delivery holds it, RunConflictError when that one carries another body."""
        lease, token = self._key("lease", run), f"{os.urandom(12).hex()}:{digest}".encode()
        if not await self.store.add(lease, token, self.lease_ttl):
            holder = await self.store.get(lease)
            if holder is not None and not holder.endswith(digest.encode()):
                raise RunConflictError()
            raise RunBusyError()
        try:
            async with AsyncRenewer(
                lambda: self.store.expire_if_equal(lease, token, self.lease_ttl),
                self.lease_ttl / 3,
            ):
                yield await self.recorded(run, digest)
        finally:
            await self.store.delete_if_equal(lease, token)

    async def record(self, run: str, digest: str, status: int, body: Any) -> None:
        """Record a run's result, replayed to its later deliveries for `record_ttl` seconds."""
        record = {"status": status, "body": body, "digest": digest}
        key = self._key("done", run)
        sealed = seal_record(self.keyring, key, orjson.dumps(record))
        await self.store.set(key, sealed, self.record_ttl)

    async def save_job(self, job_id: str, state: bytes) -> None:
        """Keep a background job's state (any instance can report it)."""
        key = self._key("job", run_hash("job", job_id))
        await self.store.set(key, seal_record(self.keyring, key, state), self.record_ttl)

    async def job(self, job_id: str) -> bytes | None:
        """A background job's last saved state, or None (unknown, expired or undecryptable)."""
        return await self._read(self._key("job", run_hash("job", job_id)))
