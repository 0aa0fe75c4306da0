"""What the test upstream counts: calls by route and model, the credentials seen (hashed), and the
W3C `traceparent` headers received (to check that a proxy propagates the trace)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from llmemo.testing.answers import JSON


def credential_hash(credential: str) -> str:
    """How the stats name a credential (the API key, without `Bearer `): never the secret itself."""
    return hashlib.sha256(credential.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class UpstreamStats:
    """Calls served, by route and model, and the credentials seen (hashed), since the last reset."""

    calls: Mapping[str, Mapping[str, int]]
    credentials: Mapping[str, Mapping[str, int]]
    traceparents: tuple[str, ...] = ()
    """The `traceparent` header of each call that had one, in order (the last 1000)."""

    @property
    def total(self) -> int:
        return sum(sum(models.values()) for models in self.calls.values())

    def count(self, route: str | None = None, model: str | None = None) -> int:
        """Calls to `route` (e.g. `/v1/chat/completions`) with `model`; None matches any."""
        return sum(n for r, models in self.calls.items() if route in (None, r)
                   for m, n in models.items() if model in (None, m))  # fmt: skip

    def saw(self, credential: str, header: str | None = None) -> bool:
        """Whether a call carried this API key (in `header`, `authorization` or `x-api-key`)."""
        return any(credential_hash(credential) in seen for name, seen in self.credentials.items()
                   if header in (None, name))  # fmt: skip

    def as_json(self) -> JSON:
        return {"total": self.total, "calls": self.calls, "credentials": self.credentials}


class CallLog:
    """The mutable counters behind `UpstreamStats`; safe to read from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, dict[str, int]] = {}
        self._credentials: dict[str, dict[str, int]] = {}
        self._traceparents: list[str] = []

    def record(
        self,
        route: str,
        model: str,
        credentials: Mapping[str, str],
        traceparent: str | None = None,
    ) -> None:
        with self._lock:
            if traceparent is not None:
                self._traceparents = [*self._traceparents[-999:], traceparent]
            models = self._calls.setdefault(route, {})
            models[model] = models.get(model, 0) + 1
            for header, credential in credentials.items():
                seen = self._credentials.setdefault(header, {})
                seen[credential_hash(credential)] = seen.get(credential_hash(credential), 0) + 1

    def snapshot(self) -> UpstreamStats:
        with self._lock:
            return UpstreamStats(
                {route: dict(models) for route, models in self._calls.items()},
                {header: dict(seen) for header, seen in self._credentials.items()},
                tuple(self._traceparents),
            )

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._credentials.clear()
            self._traceparents.clear()


def credentials_of(headers: Mapping[str, str]) -> dict[str, str]:
    found = {name: headers[name] for name in ("authorization", "x-api-key") if headers.get(name)}
    if found.get("authorization", "").lower().startswith("bearer "):
        found["authorization"] = found["authorization"][7:].strip()
    return found
