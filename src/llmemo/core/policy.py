"""Decisions about entries, as pure functions: how long to keep one, and whether to keep it at all."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from llmemo.core.durations import Duration, seconds
from llmemo.errors import ConfigError


class _NoExpiry:
    """The explicit request for an entry that never expires."""

    _instance: _NoExpiry | None = None

    def __new__(cls) -> _NoExpiry:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_EXPIRY"


NO_EXPIRY: Final = _NoExpiry()
TtlArg = Duration | _NoExpiry | None

TTL_CEILING = 10 * 365 * 86400.0
"""No lifetime may exceed ten years, whatever `max_ttl` says: far beyond what a cache needs, and far
below what a store's millisecond expiry can hold (a larger one would overflow after the upstream
call was paid for)."""

DEFAULT_TIERS: Mapping[str, float] = {
    "static": 7 * 86400.0,
    "stable": 86400.0,
    "volatile": 1800.0,
}


@dataclass(frozen=True)
class TtlPolicy:
    """How long entries live.

    default: seconds, or NO_EXPIRY (only when asked explicitly). tiers: tag -> seconds; an entry
    with several tier tags gets the shortest. jitter: +-fraction applied to every TTL so a batch
    warmed together does not expire together. rolling: a hit resets the TTL (in the same round trip).
    max_ttl: the longest lifetime (and stale grace) a call may ask for, seconds; None: TTL_CEILING.
    A longer one, or NO_EXPIRY under a max_ttl, is refused with ConfigError before anything is
    called (`check`).
    """

    default: float | _NoExpiry = 86400.0
    tiers: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    jitter: float = 0.1
    rolling: bool = False
    max_ttl: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.jitter < 1.0:
            raise ConfigError(f"jitter must be in [0, 1), got {self.jitter}")
        if isinstance(self.default, int | float) and self.default <= 0:
            raise ConfigError("the default TTL must be positive (use NO_EXPIRY for none)")
        _check_max(self.max_ttl)
        self.check(self.default)

    @property
    def maximum(self) -> float:
        """The longest lifetime allowed, seconds."""
        return TTL_CEILING if self.max_ttl is None else self.max_ttl

    def check(self, ttl: TtlArg, what: str = "TTL") -> float | _NoExpiry | None:
        """A per-call lifetime in seconds (or NO_EXPIRY, or None for the default); ConfigError
        when it is not a duration, not positive, or over the maximum."""
        if ttl is None:
            return None
        value = _parse(ttl)
        if isinstance(value, _NoExpiry):
            if self.max_ttl is not None:
                raise ConfigError(f"NO_EXPIRY is over the maximum {what} of {self.max_ttl:.10g} s")
            return value
        return self.bound(value, what)

    def bound(self, value: float, what: str = "TTL") -> float:
        """`value` seconds when within the maximum, else ConfigError."""
        if value > self.maximum:
            raise ConfigError(
                f"a {what} of {value:.10g} s is over the maximum of {self.maximum:.10g} s"
                + (" (max_ttl)" if self.max_ttl is not None else "")
            )
        return value

    @classmethod
    def build(
        cls,
        default: TtlArg = None,
        tiers: Mapping[str, Duration] | None = None,
        jitter: float = 0.1,
        rolling: bool = False,
        max_ttl: Duration | None = None,
    ) -> TtlPolicy:
        """Build a policy from human values ("24h", 3600, timedelta, NO_EXPIRY)."""
        merged = dict(DEFAULT_TIERS)
        merged.update({k: seconds(v) for k, v in (tiers or {}).items()})
        most = _check_max(None if max_ttl is None else seconds(max_ttl))
        implicit = 86400.0 if most is None else min(86400.0, most)  # a given default must fit
        base: float | _NoExpiry = implicit if default is None else _parse(default)
        return cls(default=base, tiers=merged, jitter=jitter, rolling=rolling, max_ttl=most)

    def choose(
        self,
        ttl: TtlArg = None,
        tags: tuple[str, ...] = (),
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to keep an entry (jittered), or None for no expiry."""
        if ttl is not None:
            base = _parse(ttl)
        else:
            tiered = [self.tiers[t] for t in tags if t in self.tiers]
            base = min(tiered) if tiered else self.default
        if isinstance(base, float | int):
            base = min(base, self.maximum)  # a tier over max_ttl is cut to it
        if isinstance(base, _NoExpiry):
            return None
        spread = base * self.jitter
        return min(self.maximum, max(0.001, base + (2.0 * rand() - 1.0) * spread))


def _check_max(max_ttl: float | None) -> float | None:
    if max_ttl is not None and not 0 < max_ttl <= TTL_CEILING:
        raise ConfigError(
            f"max_ttl must be positive and at most {TTL_CEILING:.0f} s, got {max_ttl!r}"
        )
    return max_ttl


def _parse(value: Duration | _NoExpiry) -> float | _NoExpiry:
    if isinstance(value, _NoExpiry):
        return value
    result = seconds(value)
    if result <= 0:
        raise ConfigError(
            "a TTL must be positive (use llmemo.NO_EXPIRY for an entry that never expires)"
        )
    return result


# Why an answer is not stored; the names are counted in stats.
SKIP_ERROR = "error"
SKIP_EMPTY = "empty"
SKIP_TRUNCATED = "truncated"
SKIP_TOOL_CALLS = "tool_calls"
SKIP_TEMPERATURE = "temperature"
SKIP_UNCACHEABLE = "uncacheable"
SKIP_TOO_LARGE = "too_large"
SKIP_UNENCODABLE = "unencodable"  # nested deeper than the entry encoding (orjson) can write


SKIP_INCOMPLETE = "incomplete"
SKIP_SHAPE = "unexpected_shape"

# The answer shape each provider endpoint has (`CacheRequest.endpoint`): a response of another
# shape is not stored. Other endpoints (memoized calls, LangChain prompts) keep any JSON object.
_SHAPES: Mapping[str, Callable[[Mapping[str, Any]], bool]] = {
    "chat": lambda r: "choices" in r,
    "completions": lambda r: "choices" in r,
    "embeddings": lambda r: r.get("object") == "list" and "data" in r,
    "responses": lambda r: "output" in r,
    "messages": lambda r: r.get("type") == "message" and "content" in r,
}


def skip_reason(
    response: Mapping[str, Any],
    temperature: float | None = None,
    max_temperature: float | None = None,
    endpoint: str | None = None,
) -> str | None:
    """Why this response must not be cached, or None when it may be.

    Errors, empty, truncated and unfinished answers (no finish or stop reason), and answers that
    only ask for tool calls (a step of an agent loop, whose next step depends on the tool's
    result) are never cached. For a provider `endpoint` (chat, completions, embeddings,
    responses, messages) the answer must also have that endpoint's shape.
    """
    if max_temperature is not None and temperature is not None and temperature > max_temperature:
        return SKIP_TEMPERATURE
    if not isinstance(response, Mapping) or response.get("type") == "error":
        return SKIP_ERROR
    if response.get("error") is not None:  # a Responses API object always has "error": null
        return SKIP_ERROR
    shape = _SHAPES.get(endpoint) if endpoint is not None else None
    if shape is not None and not shape(response):
        return SKIP_SHAPE
    if response.get("object") == "list" and "data" in response:  # embeddings
        return _embeddings_skip(response["data"])
    if "choices" in response:
        return _openai_skip(response["choices"])
    if "content" in response and response.get("type", "message") == "message":
        return _anthropic_skip(response)
    if "output" in response:
        return _responses_skip(response)
    return None


def _embeddings_skip(data: Any) -> str | None:
    if not isinstance(data, list):
        return SKIP_SHAPE
    if not data:
        return SKIP_EMPTY
    if not all(
        isinstance(item, Mapping) and isinstance(item.get("embedding"), list | str) for item in data
    ):
        return SKIP_SHAPE
    return None


def _openai_skip(choices: Any) -> str | None:
    if not isinstance(choices, list) or not choices:
        return SKIP_EMPTY
    reasons = set()
    has_text = False
    for choice in choices:
        if not isinstance(choice, Mapping):
            return SKIP_ERROR
        reasons.add(choice.get("finish_reason"))
        message = choice.get("message")
        text = message.get("content") if isinstance(message, Mapping) else choice.get("text")
        if isinstance(text, str) and text.strip():
            has_text = True
    if "length" in reasons or "content_filter" in reasons:
        return SKIP_TRUNCATED
    if None in reasons:  # a choice that never finished (or a stream cut before its last chunk)
        return SKIP_INCOMPLETE
    if reasons & {"tool_calls", "function_call"}:
        return SKIP_TOOL_CALLS
    return None if has_text else SKIP_EMPTY


def _anthropic_skip(response: Mapping[str, Any]) -> str | None:
    stop = response.get("stop_reason")
    if stop in ("max_tokens", "refusal", "model_context_window_exceeded"):
        return SKIP_TRUNCATED
    if stop == "tool_use":
        return SKIP_TOOL_CALLS
    if stop == "pause_turn":
        return SKIP_TRUNCATED
    if stop is None:  # never finished (a stream's message_delta with the reason was missing)
        return SKIP_INCOMPLETE
    blocks = response.get("content")
    if not isinstance(blocks, list):
        return SKIP_ERROR
    if any(
        isinstance(b, Mapping) and b.get("type") == "text" and str(b.get("text", "")).strip()
        for b in blocks
    ):
        return None
    return SKIP_EMPTY


# Responses API output items that the caller must act on before the model can go on.
_PENDING_CALLS = frozenset({"function_call", "custom_tool_call", "computer_call", "local_shell_call",
                            "shell_call", "apply_patch_call", "mcp_approval_request"})  # fmt: skip
_NOT_DONE = frozenset({"queued", "in_progress"})


def _responses_skip(response: Mapping[str, Any]) -> str | None:
    """An OpenAI Responses API object: completed, with text, and no call left for the caller."""
    status = response.get("status")
    if status == "incomplete":
        return SKIP_TRUNCATED
    if status in _NOT_DONE:  # a background response, still running
        return SKIP_UNCACHEABLE
    if status is None:
        return SKIP_INCOMPLETE
    if status != "completed":  # failed, cancelled
        return SKIP_ERROR
    items = response.get("output")
    if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
        return SKIP_ERROR
    if any(item.get("type") in _PENDING_CALLS for item in items):
        return SKIP_TOOL_CALLS
    texts = (
        part.get("text")
        for item in items
        if item.get("type") == "message"
        for part in item.get("content") or ()
        if isinstance(part, Mapping) and part.get("type") == "output_text"
    )
    return None if any(isinstance(t, str) and t.strip() for t in texts) else SKIP_EMPTY
