"""The semantic layer's engine, without I/O: the shipped thresholds, the one similarity scale, and
the decisions (is a call semantic, its index scope, does a candidate pass, the backfill TTL, when
to renew a vector under a rolling TTL). A lookup's outcome is a `SemanticPlan` (the hit, counters,
the backfill write, the lease to renew) that the cache carries out: the layer never calls the
cache. The layer's I/O is written once, in core/_async/semantic.py (sync twin generated).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from llmemo.core import entry as entries
from llmemo.core.facade import Call, Hit, hit_of
from llmemo.core.guard import Guard
from llmemo.core.verified import Verified
from llmemo.errors import ConfigError, CorruptEntryError, StoreError, UndecryptableError

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from llmemo.core.crypto import Keyring
    from llmemo.core.verified import Probe
    from llmemo.core.verify import Verdict
    from llmemo.embed import Unsaved
    from llmemo.embed.base import AsyncEmbedder, Embedder, Spec
    from llmemo.index import Kind
    from llmemo.index.base import IndexScope, Match

log = logging.getLogger("llmemo.semantic")

DEFAULT_THRESHOLDS: dict[str, float] = {"minilm": 0.93, "minilm-f32": 0.93, "minilm-int8": 0.93}
"""Shipped thresholds per embedder name or spec, chosen with `llmemo calibrate` (docs/semantic.md;
all-MiniLM-L6-v2's int8 and float32 runtimes share it: docs/benchmarks.md, "Embedding runtimes")."""
EXACT_ONLY = 1.0
"""`threshold=1.0`: the semantic layer is off (only exact hits), whatever the vectors say."""
DEFAULT_K = 4
"""Neighbours fetched per lookup: if the nearest fails the guard, the next may pass."""
TOUCH_MEMO = 100_000
"""Entry keys whose last vector touch a layer remembers (rolling TTL; emptied when full)."""
MAX_CHARS = 8192
"""A last user message longer than this (in characters) is not matched semantically: it is looked
up and stored exactly, never embedded, guarded or kept as a prompt (`semantic_skipped:too_long`).
It bounds the CPU one request can cost (the tokenizer, the guard) and the prompt stored in an
entry; an embedding model reads only its first tokens (MiniLM: 256), so a longer text would be
matched on a part of it."""


LAYER_OPTIONS = (
    "embedder",
    "index",
    "threshold",
    "guard",
    "namespaces",
    "k",
    "backfill",
    "verifier",
    "max_chars",
    "max_error",
    "judge",
)
"""The options `Cache.from_url(..., semantic=True, **options)` hands to the semantic layer."""
L = TypeVar("L", bound="SemanticBase")
Counts = list[tuple[str, float]]
"""Counters to add to the cache's stats (name, amount), in the order they happened."""


@dataclass(slots=True)
class SemanticPlan:
    """What a semantic lookup decided, for the cache to carry out (the layer never calls it).

    hit: the semantic hit (None: a miss); counts: counters to add; errors: store errors to count
    (the cache's breaker and alarm); backfill: (value, TTL) to write at the request's exact key;
    renew: (the matched entry's key, its rolling TTL) to renew, entry and vector; unsaved: the
    query's vector, for the embedding cache unless the backfill answers that text from now on;
    matched: the matched entry's key and stored prompt (the served-hit log, core/feedback.py).
    probe: verified hits, a candidate not served, to judge against the miss's fresh answer.
    """

    hit: Hit | None = None
    counts: Counts = field(default_factory=list)
    errors: list[StoreError] = field(default_factory=list)
    backfill: tuple[bytes, float | None] | None = None
    renew: tuple[str, float] | None = None
    unsaved: Unsaved = ()
    matched: tuple[str, str | None] | None = None
    probe: Probe | None = None

    def count(self, name: str, amount: float = 1) -> None:
        self.counts.append((name, amount))


def check_threshold(value: float) -> float:
    """`value` as a float if it is a cosine similarity in [0, 1]; ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ConfigError(
            f"semantic threshold must be a cosine similarity in [0, 1] (1.0 = exact only), "
            f"got {value!r}"
        )
    return float(value)


def default_threshold(embedder: str) -> float:
    """The shipped threshold for an embedder name or spec ("minilm", "openai:MODEL@URL");
    ConfigError when there is none to trust."""
    name = embedder.partition("@")[0].partition(":")[0].strip().lower()
    threshold = DEFAULT_THRESHOLDS.get(name)
    if threshold is None:
        raise ConfigError(
            f"no default semantic threshold for the {name!r} embedder: pass a threshold "
            "(measure one with `llmemo calibrate PAIRS.jsonl`)"
        )
    return threshold


def embedding_space(embedder: Embedder | AsyncEmbedder) -> str:
    """The IndexScope `model`: vectors of two embedding spaces are never compared."""
    return f"{embedder.name}:{embedder.model}"


class SemanticBase:
    """Settings and the pure decisions both layers share."""

    tracer: Tracer | None = None  # the cache's (llmemo/telemetry.py): spans of embed and search
    near_misses: Callable[[str, float], None] | None = None
    """Told (reason, similarity) of each candidate refused (the service's dashboard rollups)."""

    def __init__(
        self,
        *,
        threshold: float | None,
        guard: Guard | None,
        namespaces: Sequence[str] | None,
        k: int,
        backfill: bool,
        max_chars: int = MAX_CHARS,
    ) -> None:
        if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
            raise ConfigError(f"max_chars must be an int >= 1, got {max_chars!r}")
        self.max_chars = max_chars
        self._threshold = None if threshold is None else check_threshold(threshold)
        self.guard = guard if guard is not None else Guard.off()
        self.namespaces = None if namespaces is None else frozenset(namespaces)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"k must be an int >= 1, got {k!r}")
        self.k = k
        self.backfill = backfill
        self._touched: dict[str, float] = {}  # entry key -> when its vector was last touched
        self._clock: Callable[[], float] = time.time  # the cache's clock, once bound
        self._monotonic: Callable[[], float] = time.monotonic
        self._keyring: Keyring | None = None  # the cache's encryption keys, once bound
        self.space = ""
        self.threshold = EXACT_ONLY if self._threshold is None else self._threshold

    @classmethod
    def from_options(cls: type[L], semantic: bool | L | None, options: dict[str, Any]) -> L | None:
        """The layer `from_url(semantic=..., **options)` asks for; its options are popped."""
        given = {name: options.pop(name) for name in LAYER_OPTIONS if name in options}
        if isinstance(semantic, cls):
            if given:
                raise ConfigError(f"pass {', '.join(given)} to the semantic layer, not from_url")
            return semantic
        if semantic is True:
            return cls(**given)
        if semantic is False or semantic is None:
            if given:
                raise ConfigError(f"{', '.join(given)} only apply with semantic=True")
            return None
        raise ConfigError(
            f"semantic must be True, False or a {cls.__name__}, got {type(semantic).__name__}"
        )

    def _settle(self, embedder: Embedder | AsyncEmbedder) -> None:
        """Once the embedder is known: its embedding space and (unless given) its threshold."""
        self.space = embedding_space(embedder)
        self.threshold = (
            self._threshold if self._threshold is not None else default_threshold(embedder.name)
        )

    def applies(self, call: Call) -> bool:
        """Does this call take part in semantic matching (lookup, and indexing its answer)?"""
        text = call.request.semantic_text
        return text is not None and len(text) <= self.max_chars and self._eligible(call)

    def _eligible(self, call: Call) -> bool:
        return (
            call.cacheable
            and self.threshold < EXACT_ONLY
            and (self.namespaces is None or call.scope.namespace in self.namespaces)
        )

    def skips(self, call: Call, counts: Counts) -> bool:
        """Does this call's lookup skip the layer? A text over `max_chars` is counted."""
        if self.applies(call):
            return False
        text = call.request.semantic_text
        if text is not None and self._eligible(call):
            counts.append(("semantic_skipped:too_long", 1))
        return True

    def scope(self, call: Call, version: int) -> IndexScope:
        """The index pre-filter of a call: same namespace, version, tenant, context and space."""
        from llmemo.core.request import context_fingerprint
        from llmemo.index.base import IndexScope

        return IndexScope(
            namespace=call.scope.namespace,
            version=version,
            tenant=call.scope.tenant,
            fingerprint=context_fingerprint(call.request, call.scope),
            model=self.space,
        )

    def judge(self, query: str, similarity: float, candidate: str | None) -> str | None:
        """None when a candidate may answer `query`; else why not (counted per reason)."""
        if similarity < self.threshold:
            return "threshold"
        if candidate is None:
            return "no_prompt"  # indexed without its prompt: the guard cannot vouch for it
        return self.guard.reject(query, candidate)

    def candidate(
        self, data: bytes, key: str, now: float, counts: Counts
    ) -> tuple[Hit, str | None] | None:
        """The entry a match points at, as (hit, its prompt); None if unreadable or stale."""
        try:
            found = entries.read(data, key, self._keyring)
            hit = hit_of(found, key, now)
        except CorruptEntryError as exc:
            counts.append(
                ("undecryptable" if isinstance(exc, UndecryptableError) else "corrupt", 1)
            )
            return None
        if hit.stale:  # its refresh needs its own request: let this one go upstream
            return None
        return hit, found.prompt

    def accept(
        self, call: Call, match: Match, data: bytes, counts: Counts
    ) -> tuple[Hit, str | None] | None:
        """The semantic hit `match` makes for `call` and the candidate's prompt, or None (the
        reason is counted). A borderline hit still goes to the verifier, if there is one."""
        found = self.candidate(data, match.key, self._clock(), counts)
        if found is None:
            return None
        hit, prompt = found
        assert call.request.semantic_text is not None
        reason = self.judge(call.request.semantic_text, match.similarity, prompt)
        if reason is not None:
            counts.append((f"semantic_rejected:{reason}", 1))
            if self.near_misses is not None:
                self.near_misses(reason, match.similarity)
            return None
        return replace(hit, kind="semantic", similarity=match.similarity), prompt

    def verified(self, verdict: Verdict, counts: Counts) -> bool:
        """Count a verifier's verdict; True only for a clear yes (anything else is a miss)."""
        if verdict.asked:
            counts.append(("verifier_calls", 1))
            counts.append(("verifier_tokens", verdict.usage.total))
            counts.append(("verifier_dollars", verdict.dollars))
        if verdict.error is not None:
            counts.append(("verifier_errors", 1))
            log.warning("llmemo: semantic verifier failed, treated as a miss: %s", verdict.error)
        if verdict.same is not True:
            counts.append(("semantic_rejected:verifier", 1))
            return False
        return True

    def decide(
        self,
        plan: SemanticPlan,
        hit: Hit,
        data: bytes,
        key: str,
        rolling: float | None,
        backfill: bool,
    ) -> SemanticPlan:
        """A candidate answers: the plan's hit, its backfill write and (rolling TTL) the lease
        the hit renews, the matched entry's and its vector's."""
        plan.hit = hit
        wanted, ttl = self.backfill_ttl(hit, rolling)
        if backfill and self.backfill and wanted:
            plan.backfill = (data, ttl)
        if rolling is not None:
            plan.renew = (key, rolling)
        return plan

    def touch_due(self, key: str, ttl: float) -> bool:
        """Rolling TTL: is it time to give this entry's vector its entry's new lease? At most once
        per quarter of the TTL per key and process, so a hot entry does not touch it on every hit."""
        now = self._monotonic()
        last = self._touched.get(key)
        if last is not None and now - last < ttl / 4:
            return False
        if len(self._touched) >= TOUCH_MEMO:
            self._touched = {}
        self._touched[key] = now
        return True

    def backfill_ttl(self, hit: Hit, rolling: float | None = None) -> tuple[bool, float | None]:
        """Whether to write this request's exact key, and its TTL: the answer's remaining life
        (None: no expiry), so the copy never outlives the original; with a rolling TTL, the
        lease the hit gave the original."""
        if rolling is not None:
            return True, rolling
        remaining = hit.remaining
        if remaining is None:
            return True, None
        return remaining > 0.001, remaining

    def failed(self, counts: Counts, action: str, exc: Exception) -> None:
        """An embedder or index failure: a counted, logged miss."""
        counts.append(("semantic_errors", 1))
        log.warning("llmemo: semantic %s failed, treated as a miss: %s", action, exc)


def owner_of(call: Call) -> str:
    """The embedding-cache owner of a call's text (its tenant and user, hashed)."""
    from llmemo.embed.cached_base import owner_tag

    return owner_tag(call.scope.tenant, call.scope.user)


V = TypeVar("V")


def verification(
    kind: Callable[[Verified], V], max_error: float | Verified | None, judge: str | None
) -> V | None:
    """A layer's verified mode (`max_error=`), or None when it is off."""
    if max_error is None:
        if judge is not None:
            raise ConfigError("judge only applies with max_error (verified semantic hits)")
        return None
    return kind(Verified.of(max_error, judge))


def misuse(layer: object, problem: str) -> ConfigError:
    """A layer used with the wrong kind of cache ("pairing") or a second cache ("shared")."""
    aio = inspect.iscoroutinefunction(getattr(layer, "lookup", None))
    this, owner = ("an AsyncSemanticLayer", "AsyncCache") if aio else ("a SemanticLayer", "Cache")
    if problem == "pairing":
        other = "a Cache takes SemanticLayer" if aio else "an AsyncCache takes AsyncSemanticLayer"
        return ConfigError(f"{this} is for {'an' if aio else 'a'} {owner}; {other}")
    if problem == "unbound":
        return ConfigError(
            f"this {this.split()[1]} is not attached to {'an' if aio else 'a'} {owner} yet"
        )
    return ConfigError(f"{this} belongs to one {owner}: make one per cache")


def close_embedder(embedder: object) -> None:
    """Close an embedder's client, if it has one."""
    close = getattr(embedder, "close", None)
    if callable(close):
        close()


async def aclose_embedder(embedder: object) -> None:
    """Close an embedder's client, if it has one (its close may be a coroutine)."""
    close = getattr(embedder, "close", None)
    if callable(close):
        result = close()
        if inspect.isawaitable(result):
            await result


def sync_embedder(spec: Embedder | Spec) -> Embedder:
    from llmemo.embed.base import from_spec

    if isinstance(spec, str) or (callable(spec) and not hasattr(spec, "embed")):
        return from_spec(spec)
    if inspect.iscoroutinefunction(getattr(spec, "embed", None)):
        raise ConfigError("an async embedder needs AsyncCache (or pass a sync one)")
    return spec  # type: ignore[return-value]


def async_embedder(spec: AsyncEmbedder | Embedder | Spec) -> AsyncEmbedder:
    from llmemo.embed.base import ThreadedEmbedder, async_from_spec

    if isinstance(spec, str) or (callable(spec) and not hasattr(spec, "embed")):
        return async_from_spec(spec)
    if inspect.iscoroutinefunction(getattr(spec, "embed", None)):
        return spec  # type: ignore[return-value]
    return ThreadedEmbedder(spec)  # type: ignore[arg-type]  # a CPU model: run in a thread


@contextlib.contextmanager
def opening_index() -> Iterator[None]:
    """Opening an index asks the server which kind it has: a client error there is an index
    failure (the cache fails open and asks again next time), a bad setting a ConfigError."""
    from llmemo.index.base import VectorIndexError

    try:
        yield
    except (ConfigError, StoreError):
        raise
    except Exception as exc:  # redis-py's connection errors, before any backend translates them
        raise VectorIndexError(
            f"cannot open the vector index: {type(exc).__name__}: {exc}"
        ) from exc


def index_kind(index: object) -> Kind:
    if index not in ("auto", "redisearch", "local"):
        raise ConfigError(f"index must be 'auto', 'redisearch', 'local' or an index, got {index!r}")
    return index


def check_index(index: object) -> None:
    if isinstance(index, str):
        index_kind(index)
