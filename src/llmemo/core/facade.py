"""What the Cache and AsyncCache share: options, results, and every decision that needs no I/O."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import orjson

from llmemo.core import entry as entries
from llmemo.core.alarm import StoreAlarm
from llmemo.core.breaker import CircuitBreaker
from llmemo.core.crypto import Keyring, keyring
from llmemo.core.durations import Duration, seconds
from llmemo.core.erase import ERASED
from llmemo.core.frozen import builder, built
from llmemo.core.near import NearCache, near_cache
from llmemo.core.policy import (
    SKIP_TOO_LARGE,
    SKIP_UNCACHEABLE,
    SKIP_UNENCODABLE,
    TtlArg,
    TtlPolicy,
    skip_reason,
)
from llmemo.core.pricing import DEFAULT_PRICES, Price, PriceMemo
from llmemo.core.request import (
    DEFAULT_NORMALISATION,
    MEMO_MAX_BYTES,
    CacheRequest,
    Normalisation,
    Scope,
    check_name,
    digest,
    exact_key,
    lock_key,
    to_request,
    to_request_cached,
)
from llmemo.core.sensitive import SKIP_SENSITIVE, SensitivePolicy, text_of
from llmemo.core.stats import CacheStats, StatsBuffer
from llmemo.errors import (
    ConfigError,
    CorruptEntryError,
    StoreError,
    UndecryptableError,
    UnkeyableError,
)
from llmemo.stores import keys
from llmemo.telemetry import library_tracer

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from llmemo.core.memoize import F, KeyFn
    from llmemo.core.semantic import SemanticBase

MAX_ENTRY_BYTES = 1024 * 1024
"""An encoded (compressed) entry bigger than this is not stored: the answer is returned, and the
skip is counted as `too_large`. `max_entry_bytes=None` lifts the limit."""
DEFAULT_SENSITIVE = SensitivePolicy()
"""Skip secrets and card numbers (core/sensitive.py)."""
NOTHING: frozenset[str] = frozenset()
PREPARED_MEMO = 1024  # request bodies (up to MEMO_MAX_BYTES each) whose key parts a cache remembers

Status = Literal["hit", "semantic", "stale", "miss", "bypass"]


@dataclass(frozen=True, slots=True)
class Hit:
    """A cached answer. `similarity` is set for semantic hits (cosine, 0..1)."""

    response: dict[str, Any]
    key: str
    created: float
    age: float
    model: str | None
    usage: entries.Usage
    tags: tuple[str, ...] = ()
    kind: Literal["exact", "semantic"] = "exact"
    similarity: float | None = None
    ttl: float | None = None  # the TTL the entry was stored with (None: no expiry)
    stale: bool = False  # past its soft TTL, within its grace period (stale-while-revalidate)

    @property
    def remaining(self) -> float | None:
        """Seconds left before the entry expires (None: never), as of this read."""
        return None if self.ttl is None else self.ttl - self.age


@dataclass(frozen=True, slots=True)
class Result:
    """What `compute` did: the response, and whether it came from the cache."""

    response: dict[str, Any]
    status: Status
    hit: Hit | None = None
    stored: bool = False
    skipped: str | None = None
    shared: bool = False  # a follower that got the leader's answer without calling fn
    value: bytes | None = None  # the stored value a hit was read from (`kept_answer`)

    @property
    def cached(self) -> bool:
        return self.status in ("hit", "semantic", "stale")


@dataclass(slots=True)
class Call:
    """One prepared call: the canonical request, its scope, and the sha its keys are made of."""

    request: CacheRequest
    scope: Scope
    sha: str
    ttl: TtlArg
    cacheable: bool
    grace: float | None = None  # stale-while-revalidate grace period, seconds
    sensitive: frozenset[str] | None = None  # skipped categories in the request, once checked


def response_dict(response: Any) -> dict[str, Any]:
    """A provider response as a plain dict (SDK objects through `model_dump`)."""
    if isinstance(response, Mapping):
        return dict(response)
    dump = getattr(response, "model_dump", None)
    if callable(dump):
        data = dump(mode="json", exclude_unset=False)
        if isinstance(data, dict):
            return data
    raise UnkeyableError(
        f"fn must return the provider's response as a dict or an SDK object with model_dump(), "
        f"got {type(response).__name__}"
    )


def head_matches(
    head: entries.EntryHead,
    model: str | None,
    tenant: str | None,
    user: str | None,
    tag: str | None,
) -> bool:
    """Does an entry's header match every given invalidation filter?"""
    return (
        (model is None or head.model == model)
        and (tenant is None or head.tenant == tenant)
        and (user is None or head.user == user)
        and (tag is None or tag in head.tags)
    )


def decode_hit(head: dict[str, Any], doc: dict[str, Any], key: str, now: float) -> Hit:
    """The Hit of a decoded entry (`entries.decode_parts`) read at `now` (the cache's clock):
    its age, and whether it is past its soft TTL. CorruptEntryError if malformed."""
    return hit_of(entries.stored(head, doc), key, now)


_HitBuilder = builder(Hit)


def hit_of(found: entries.Stored, key: str, now: float) -> Hit:
    """The Hit of an entry the codec read (`entries.stored`), at `now` (the cache's clock)."""
    stale_after = found.stale_after
    hit = _HitBuilder(  # positional, and not through the frozen __init__: this is the hit path
        found.response,
        key,
        found.created,
        max(0.0, now - found.created),
        found.model,
        found.usage,
        found.tags,
        "exact",
        None,
        found.ttl,
        stale_after is not None and now >= stale_after,
    )
    return built(Hit, hit)


class BaseCache:
    """Options and pure decisions; the twins add the store I/O around them."""

    semantic: SemanticBase | None = None  # the twins set their semantic layer (core/semantic.py)

    def __init__(
        self,
        *,
        namespace: str = "default",
        ttl: TtlArg | TtlPolicy = None,
        prefix: str = "llmemo",
        tenant: str | None = None,
        user: str | None = None,
        tags: tuple[str, ...] = (),
        normalisation: Normalisation = DEFAULT_NORMALISATION,
        max_temperature: float | None = None,
        prices: Mapping[str, Price] = DEFAULT_PRICES,
        lock_ttl: Duration = 30.0,
        wait_timeout: Duration = 60.0,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        version_ttl: float = 1.0,
        flush_interval: float = 10.0,
        stale_grace: Duration | None = None,
        near: NearCache | Duration | None = None,
        max_ttl: Duration | None = None,
        max_entry_bytes: int | None = MAX_ENTRY_BYTES,
        sensitive: SensitivePolicy | None = DEFAULT_SENSITIVE,
        encryption: Keyring | str | Sequence[str] | None = None,
        encryption_required: bool = False,
    ) -> None:
        self.namespace = check_name("namespace", namespace)
        check_name("prefix", prefix)
        self.prefix = prefix
        if isinstance(ttl, TtlPolicy):
            self.policy = ttl if max_ttl is None else replace(ttl, max_ttl=seconds(max_ttl))
        else:
            self.policy = TtlPolicy.build(ttl, max_ttl=max_ttl)
        if max_entry_bytes is not None and max_entry_bytes <= 0:
            raise ConfigError(f"max_entry_bytes must be positive, got {max_entry_bytes!r}")
        self.max_entry_bytes = max_entry_bytes
        # Do-not-cache rules (core/sensitive.py): a request or answer holding a category the
        # namespace skips is served, never stored nor embedded. None: no check.
        self.sensitive = sensitive
        if encryption_required and encryption is None:
            raise ConfigError("encryption_required needs encryption keys (encryption=...)")
        # Encryption at rest (core/crypto.py, docs/privacy.md): entry bodies sealed with the
        # keyring's first key, read with any of them. None: entries are stored in clear.
        self.keyring = keyring(encryption, required=encryption_required)
        self.defaults = Scope(namespace, tenant, user, tuple(tags))
        self.normalisation = normalisation
        self.max_temperature = max_temperature
        self.prices = prices
        self.lock_ttl = seconds(lock_ttl)
        self.wait_timeout = seconds(wait_timeout)
        if self.lock_ttl <= 0 or self.wait_timeout <= 0:
            raise ConfigError("lock_ttl and wait_timeout must be positive")
        self.breaker = breaker or CircuitBreaker()
        # Warnings (logger "llmemo.cache") on store errors, rate-limited, and on the circuit
        # opening or closing: failing open must not be silent.
        self.alarm = StoreAlarm()
        if self.breaker.on_change is None:
            self.breaker.on_change = _circuit_log(self)
        self.clock = clock  # wall time: entries' created and stale-after times
        self.monotonic = monotonic  # intervals: version_ttl, flush_interval, the near cache
        self.version_ttl = version_ttl
        self.flush_interval = flush_interval
        # Stale-while-revalidate: entries live `grace` seconds past their TTL, served as stale
        # while one background call refreshes them. None (the default) turns it off.
        self.stale_grace = (
            self.policy.bound(seconds(stale_grace), "stale grace")
            if stale_grace is not None
            else None
        )
        # The near cache (core/near.py): recent entries kept in process for about a second.
        # Off by default; `near=1` keeps them 1 s.
        self.near = near_cache(near, monotonic)
        self._versions: dict[str, tuple[int, float]] = {}
        # Erasure (core/erase.py): the `erased` count last read in each namespace's meta; when
        # it moves, another process wiped a user or tenant, and every in-process copy goes.
        self._erasures: dict[str, float] = {}
        self.on_erase: list[Callable[[], None]] = []  # more in-process copies to drop then
        # body JSON -> (canonical request, sha) for calls in the default scope: a repeated
        # request skips normalising and hashing (bounded: emptied when full)
        self._prepared: dict[bytes, tuple[CacheRequest, str]] = {}
        self._scopes: dict[tuple[Any, ...], Scope] = {}  # per-call scope options -> Scope
        self._shas: dict[tuple[bytes, str | None, str | None], str] = {}  # see _sha
        self._pricing = PriceMemo(self.prices)
        self._stats = StatsBuffer()
        self._last_flush = monotonic()
        # OpenTelemetry (llmemo/telemetry.py): None unless tracing is configured, and then the
        # lookups build no span object.
        self._tracer: Tracer | None = library_tracer()

    @property
    def tracer(self) -> Tracer | None:
        """The OpenTelemetry tracer of this cache's spans (lookup, semantic layer); None: none."""
        return self._tracer

    @tracer.setter
    def tracer(self, tracer: Tracer | None) -> None:
        self._tracer = tracer
        if self.semantic is not None:
            self.semantic.tracer = tracer

    # -- keys -------------------------------------------------------------------------------

    def _prepare(
        self,
        request: CacheRequest | Mapping[str, Any],
        *,
        namespace: str | None = None,
        tenant: str | None = None,
        user: str | None = None,
        tags: tuple[str, ...] | list[str] = (),
        ttl: TtlArg = None,
        cacheable: bool = True,
        stale_grace: Duration | None = None,
    ) -> Call:
        """Normalise a request and resolve its scope (no I/O). A TTL or grace that is not a
        duration, or over the policy's maximum, raises ConfigError here: before any call."""
        base = self.defaults
        if ttl is not None:
            ttl = self.policy.check(ttl)
        grace = (
            self.stale_grace
            if stale_grace is None
            else self.policy.bound(seconds(stale_grace), "stale grace") or None
        )
        if namespace is None and tenant is None and user is None and not tags:
            # the common case: no per-call scope, nothing to validate again
            known = self._prepared_in_default_scope(request)
            if known is not None:
                return Call(known[0], base, known[1], ttl, cacheable, grace)
            scope = base
        else:
            scope = self._scope(namespace, tenant, user, tuple(tags))
        canonical = to_request_cached(request, self.normalisation)
        return Call(canonical, scope, self._sha(canonical, scope), ttl, cacheable, grace)

    def _scope(
        self, namespace: str | None, tenant: str | None, user: str | None, tags: tuple[str, ...]
    ) -> Scope:
        """The Scope of per-call options, validated once per distinct set (memoised, bounded)."""
        key = (namespace, tenant, user, tags)
        scope = self._scopes.get(key)
        if scope is None:
            base = self.defaults
            scope = Scope(
                namespace=namespace or base.namespace,
                tenant=tenant if tenant is not None else base.tenant,
                user=user if user is not None else base.user,
                tags=tuple(dict.fromkeys((*base.tags, *tags)))[: entries.MAX_TAGS],
            )
            if len(self._scopes) >= PREPARED_MEMO:
                self._scopes = {}
            self._scopes[key] = scope
        return scope

    def _sha(self, canonical: CacheRequest, scope: Scope) -> str:
        """`digest`, memoised on what it reads: the canonical bytes, the tenant and the user."""
        if len(canonical.canonical) > MEMO_MAX_BYTES:
            return digest(canonical, scope)
        key = (canonical.canonical, scope.tenant, scope.user)
        sha = self._shas.get(key)
        if sha is None:
            sha = digest(canonical, scope)
            if len(self._shas) >= PREPARED_MEMO:
                self._shas = {}
            self._shas[key] = sha
        return sha

    def _prepared_in_default_scope(
        self, request: CacheRequest | Mapping[str, Any]
    ) -> tuple[CacheRequest, str] | None:
        """(canonical request, sha) of a plain-JSON body in the default scope, memoised when the
        body is small; None for anything else (SDK objects inside, a CacheRequest)."""
        if type(request) is not dict:
            return None
        try:
            raw = orjson.dumps(request)
        except TypeError:  # SDK objects inside: not keyable by its JSON
            return None
        if len(raw) > MEMO_MAX_BYTES:  # normalised each time, never remembered
            canonical = to_request(request, self.normalisation)
            return canonical, self._sha(canonical, self.defaults)
        known = self._prepared.get(raw)
        if known is None:  # a body seen for the first time: normalised from the dict in hand
            canonical = to_request(request, self.normalisation)  # (no re-parse of `raw`)
            known = (canonical, digest(canonical, self.defaults))  # memoised here, per body
            if len(self._prepared) >= PREPARED_MEMO:
                self._prepared = {}  # rebinding, not clearing: safe under threads
            self._prepared[raw] = known
        return known

    def _key_of(self, call: Call, version: int) -> str:
        return exact_key(self.prefix, call.scope.namespace, version, call.sha)

    def _lock_of(self, call: Call, version: int) -> str:
        return lock_key(self.prefix, call.scope.namespace, version, call.sha)

    def _meta_key(self, namespace: str) -> str:
        return keys.meta_key(self.prefix, namespace)

    def _stats_key(self, namespace: str) -> str:
        return keys.stats_key(self.prefix, namespace)

    def _cached_version(self, namespace: str) -> int | None:
        known = self._versions.get(namespace)
        if known is not None and self.monotonic() - known[1] < self.version_ttl:
            return known[0]
        return None

    def _last_version(self, namespace: str) -> int | None:
        """The version read last, however old (used when the store cannot be asked now)."""
        known = self._versions.get(namespace)
        return None if known is None else known[0]

    def _remember_version(self, namespace: str, version: int) -> int:
        self._versions[namespace] = (version, self.monotonic())
        return version

    def _remember_meta(self, namespace: str, counters: Mapping[str, float]) -> int:
        """Remember a namespace's meta counters as read: its version (returned), and its
        erasure count, dropping every in-process copy when that moved (`drop_local`)."""
        erased = counters.get(ERASED, 0.0)
        seen = self._erasures.get(namespace)
        self._erasures[namespace] = erased
        if seen is not None and seen != erased:
            self.drop_local()
        return self._remember_version(namespace, int(counters.get("version", 0)))

    def drop_local(self) -> None:
        """Drop what this process keeps of past requests and answers: the near cache, the
        memoised request bodies and keys, and whatever `on_erase` callbacks hold (the
        service's hot answers). Called after a wipe, here or in another process."""
        if self.near is not None:
            self.near.clear()
        self._prepared = {}
        self._shas = {}
        self._scopes = {}
        for drop in self.on_erase:
            drop()

    # -- entries ----------------------------------------------------------------------------

    def _hit_from(self, data: bytes, key: str) -> Hit:
        """Decode a stored value into a Hit; raises CorruptEntryError for anything unreadable."""
        return hit_of(entries.read(data, key, self.keyring), key, self.clock())

    def _encode_entry(
        self, call: Call, response: dict[str, Any], key: str
    ) -> tuple[bytes | None, float | None, str | None]:
        """(value, ttl, None) to store at `key`, or (None, None, reason) when the response is
        not cacheable."""
        reason = (
            SKIP_UNCACHEABLE
            if not call.cacheable
            else skip_reason(
                response, call.request.temperature, self.max_temperature, call.request.endpoint
            )
        )
        if reason is not None:
            return None, None, reason
        found = self._sensitive_found(call, response)
        if found:
            self._count_sensitive(found)
            return None, None, SKIP_SENSITIVE
        ttl = self.policy.choose(call.ttl, call.scope.tags)
        now = self.clock()
        stale_after = None
        if call.grace is not None and ttl is not None:
            stale_after, ttl = now + ttl, ttl + call.grace
        entry = entries.Entry(
            response=response,
            model=call.request.model or _str(response.get("model")),
            created=now,
            usage=entries.usage_of(response),
            tags=call.scope.tags,
            tenant=call.scope.tenant,
            user=call.scope.user,
            provider=call.request.provider,
            ttl=ttl,
            stale_after=stale_after,
            prompt=self._prompt(call),
        )
        try:
            value = entries.encode(entry, self.keyring, key)
        except TypeError:  # orjson's JSONEncodeError: nested past its 254 levels, or not JSON
            return None, None, SKIP_UNENCODABLE
        if self.max_entry_bytes is not None and len(value) > self.max_entry_bytes:
            return None, None, SKIP_TOO_LARGE
        return value, ttl, None

    def _sensitive_request(self, call: Call) -> frozenset[str]:
        """The categories the namespace skips found in the request (all of its text, as keyed);
        checked once per call. Not on the exact-hit path: on a miss, before embedding or storing."""
        found = call.sensitive
        if found is None:
            policy = self.sensitive
            found = NOTHING
            if policy is not None and policy.skips(call.scope.namespace):
                # One JSON document a line: the request, then any answer-changing headers
                # (core/request.py with_answer_headers); JSON as orjson writes it has no raw newline.
                docs = [orjson.loads(part) for part in call.request.canonical.split(b"\n")]
                text = text_of(docs)
                found = policy.reasons(text, call.scope.namespace)
            call.sensitive = found
        return found

    def _sensitive_found(self, call: Call, response: dict[str, Any]) -> frozenset[str]:
        """The skipped categories in the request, else in its answer (empty: it may be stored)."""
        found = self._sensitive_request(call)
        policy = self.sensitive
        if found or policy is None or not policy.skips(call.scope.namespace):
            return found
        return policy.reasons(text_of(response), call.scope.namespace)

    def _may_embed(self, call: Call) -> bool:
        """May this request's text be embedded (no category the namespace skips in it)? One that
        may not is counted `semantic_skipped:sensitive`."""
        if self._sensitive_request(call):
            self.count("semantic_skipped:sensitive")
            return False
        return True

    def _count_sensitive(self, found: frozenset[str]) -> None:
        """Count an answer not stored for what it holds, once per category found."""
        self._stats.add_many(tuple((f"sensitive:{name}", 1) for name in sorted(found)))

    def _prompt(self, call: Call) -> str | None:
        """The prompt kept in a semantic entry (the guard compares it with later queries)."""
        layer = self.semantic
        return call.request.semantic_text if layer is not None and layer.applies(call) else None

    def _refresh_ttl(self) -> float | None:
        """The TTL a hit resets (rolling refresh), or None when hits do not touch the TTL."""
        if not self.policy.rolling:
            return None
        return self.policy.choose()

    def memoize(
        self,
        *,
        ttl: TtlArg = None,
        namespace: str | None = None,
        key: KeyFn | None = None,
        tags: tuple[str, ...] | list[str] = (),
    ) -> Callable[[F], F]:
        """Cache a function's JSON result by its name and arguments (see core/memoize.py)."""
        from llmemo.core.memoize import memoize

        return memoize(self, ttl=ttl, namespace=namespace, key=key, tags=tags)

    # -- counting ---------------------------------------------------------------------------

    def count(self, name: str, amount: float = 1) -> None:
        self._stats.add(name, amount)

    def _count_hit(self, hit: Hit, kind: str = "hits") -> None:
        self._stats.add_many(self._hit_counts(hit, kind))

    def _hit_counts(self, hit: Hit, kind: str = "hits") -> tuple[tuple[str, float], ...]:
        """What one such hit adds to the stats (`count_many` adds it again)."""
        dollars = self._pricing.cost(hit.model, hit.usage)
        return (kind, 1), ("tokens_saved", hit.usage.total), ("dollars_saved", dollars)

    def _count_many(self, counts: Iterable[tuple[str, float]]) -> None:
        self._stats.add_many(counts)

    def _store_name(self) -> str:
        """The store's URL with any password redacted (for logs)."""
        from llmemo.stores.base import redact

        url = getattr(getattr(self, "backend", None), "url", None)
        return redact(url) if isinstance(url, str) else "(no store)"

    def _count_store_error(self, error: StoreError) -> None:
        self._stats.add("store_errors")
        self.alarm.error(error, self._store_name)
        if not error.partial:  # one dead cluster node must not turn the healthy ones off
            self.breaker.failure()

    def _count_corrupt(self, error: CorruptEntryError) -> None:
        if isinstance(error, UndecryptableError):
            self._stats.add("undecryptable")
            self.alarm.undecryptable(error)
        else:
            self._stats.add("corrupt")

    def _flush_due(self) -> bool:
        return self.monotonic() - self._last_flush >= self.flush_interval

    def local_stats(self) -> CacheStats:
        return CacheStats.from_counters(self._stats.peek(), source="local")


def _circuit_log(cache: BaseCache) -> Callable[[bool], None]:
    """The breaker's `on_change` for a cache: logs through its alarm. A weak reference: a cache
    the breaker pointed back to would be freed only by a GC pass, its connections left open."""
    ref = weakref.ref(cache)

    def changed(opened: bool) -> None:
        owner = ref()
        if owner is not None:
            owner.alarm.circuit(opened, owner.breaker.reset, owner._store_name)

    return changed


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
