"""Who may read and refresh shared answers (`llmemo serve --shared`, or `--shared-namespace`).

An isolated namespace needs no check: a caller's tenant is derived from its own credential, so it
only reads answers the upstream gave that credential. In a shared namespace every caller reads
everyone's answers, so each request must carry a credential the service accepts before it is
looked up:

- `client_keys` set: the caller's key (`x-api-key`, else the `Authorization` token) must be one
  of them. The keys are kept only as SHA-256 digests and compared in constant time; the upstream
  is not asked.
- otherwise the upstream decides: the caller's credential headers are sent once to the route's
  provider (`GET /models`); 2xx accepts, 401/403 refuses. The verdict is kept in this process for
  `key_check_ttl` seconds under the SHA-256 of those headers (never the key itself); any other
  answer is passed back to the caller and not kept.

Refreshing (`Cache-Control: no-cache`) replaces what everyone gets, so only `shared_writers` keys
may do it; anyone else's no-cache is answered fresh from the upstream but not stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping

from pydantic import SecretStr

from llmemo.service.controls import credential_of
from llmemo.service.errors import AuthError, UpstreamError
from llmemo.service.settings import Settings
from llmemo.service.upstream import Provider, Upstreams

HASHED = "sha256:"  # a configured key given as the hex SHA-256 of the key
MAX_VERDICTS = 10_000  # verdicts kept per process (emptied when full)
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key")
_CHECK_PATH: dict[Provider, str] = {"openai": "/models", "anthropic": "/v1/models"}
_ANTHROPIC_VERSION = "2023-06-01"


def key_digest(key: str) -> bytes:
    """The SHA-256 of a key: all the service keeps of it."""
    return hashlib.sha256(key.strip().encode()).digest()


def digests(keys: SecretStr | None) -> tuple[bytes, ...]:
    """The digests of a comma-separated list of keys; an item `sha256:HEX` is a digest already."""
    if keys is None:
        return ()
    found = []
    for item in keys.get_secret_value().split(","):
        item = item.strip()
        if not item:
            continue
        if item.lower().startswith(HASHED):
            try:
                digest = bytes.fromhex(item[len(HASHED) :])
            except ValueError:
                digest = b""
            if len(digest) != 32:
                raise ValueError("a sha256: key must be 64 hex digits")  # no key in the message
            found.append(digest)
        else:
            found.append(key_digest(item))
    return tuple(found)


def _among(digest: bytes, known: tuple[bytes, ...]) -> bool:
    """Constant-time membership: every known digest is compared, whatever matches."""
    match = False
    for candidate in known:
        match |= hmac.compare_digest(digest, candidate)
    return match


class SharedAccess:
    """The access check of a shared-mode service: `check` says whether a caller may refresh
    entries, or raises AuthError (401) when it may not use the cache at all."""

    def __init__(
        self,
        settings: Settings,
        upstreams: Upstreams,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = digests(settings.client_keys)
        self.writers = digests(settings.shared_writers)
        self.upstreams = upstreams
        self.ttl = settings.key_check_ttl
        self.clock = clock
        self._verdicts: dict[bytes, tuple[bool, float]] = {}  # digest -> (accepted, until)
        self._checks: dict[bytes, asyncio.Future[bool]] = {}  # verifications in flight

    async def check(self, provider: Provider, headers: Mapping[str, str]) -> bool:
        """True for a writer, False for a reader; AuthError for a caller the service refuses."""
        credential = credential_of(headers)
        digest = None if credential is None else key_digest(credential)
        if digest is not None and self.writers and _among(digest, self.writers):
            return True
        if self.keys:
            if digest is None:
                raise AuthError(
                    "This shared llmemo service needs an API key it accepts: send "
                    "`Authorization: Bearer <key>` or `x-api-key`."
                )
            if not _among(digest, self.keys):
                raise AuthError(
                    "Incorrect API key provided: this llmemo service does not accept it."
                )
            return False
        if not await self._verified(provider, headers):
            raise AuthError(
                f"The {provider} upstream refused this API key (checked with GET /models), so "
                "this shared llmemo service does not answer it from the cache."
            )
        return False

    async def _verified(self, provider: Provider, headers: Mapping[str, str]) -> bool:
        """The upstream's verdict on the caller's credential headers (kept for `ttl` seconds)."""
        sent = {name: headers[name] for name in CREDENTIAL_HEADERS if name in headers}
        if provider == "anthropic":
            sent["anthropic-version"] = headers.get("anthropic-version", _ANTHROPIC_VERSION)
        h = hashlib.sha256(provider.encode())
        for name in CREDENTIAL_HEADERS:
            h.update(b"\0" + sent.get(name, "").encode("latin-1"))
        digest = h.digest()
        now = self.clock()
        kept = self._verdicts.get(digest)
        if kept is not None and now < kept[1]:
            return kept[0]
        flight = self._checks.get(digest)
        if flight is not None:  # the same credential is being checked: share the verdict
            try:
                return await asyncio.shield(flight)
            except asyncio.CancelledError:
                if not flight.cancelled():
                    raise  # this request was cancelled, not the check
                return await self._verified(provider, headers)  # its caller left: check again
        flight = self._checks[digest] = asyncio.get_running_loop().create_future()
        try:
            accepted = await self._ask(provider, sent)
        except asyncio.CancelledError:
            flight.cancel()
            raise
        except BaseException as exc:
            flight.set_exception(exc)
            flight.exception()  # retrieved here: the followers re-raise their own copy
            raise
        else:
            flight.set_result(accepted)
            if len(self._verdicts) >= MAX_VERDICTS:
                self._verdicts = {}
            self._verdicts[digest] = (accepted, self.clock() + self.ttl)
            return accepted
        finally:
            del self._checks[digest]

    async def _ask(self, provider: Provider, headers: Mapping[str, str]) -> bool:
        status, body, answer = await self.upstreams.get(
            provider, _CHECK_PATH[provider], "", headers
        )
        if 200 <= status < 300:
            return True
        if status in (401, 403):
            return False
        raise UpstreamError(status, body, answer)  # not a verdict: the caller gets it as is
