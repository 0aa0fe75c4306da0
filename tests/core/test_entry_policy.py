"""Entries (encoding, corruption), TTL policy, skip rules, pricing, breaker, durations."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from llmemo.core.breaker import CircuitBreaker
from llmemo.core.durations import seconds
from llmemo.core.entry import HEAD_BYTES, Entry, Usage, decode, decode_head, encode, usage_of
from llmemo.core.policy import NO_EXPIRY, TtlPolicy, skip_reason
from llmemo.core.pricing import DEFAULT_PRICES, cost, price_of
from llmemo.errors import ConfigError, CorruptEntryError
from tests.core.helpers import answer


def test_entry_round_trip_and_compression() -> None:
    small = Entry(
        answer(), model="gpt-4o-mini", created=5.0, usage=Usage(12, 3), tags=("faq",), tenant="t"
    )
    assert decode(encode(small)) == small
    big = Entry(answer("Paris is the capital of France. " * 200), model="m")
    data = encode(big)
    assert len(data) < 1000  # zstd paid off on a repetitive answer
    assert decode(data) == big
    head = decode_head(encode(small)[:HEAD_BYTES])
    assert (head.model, head.tenant, head.tags) == ("gpt-4o-mini", "t", ("faq",))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"LMe1",
        b"garbage that is long enough",
        b"LMe1\x00\x00\x05{bad}xx",
        b"LMe1\x01\x00\x02{}not zstd",
    ],
)
def test_corrupt_values_raise_only_corrupt_entry_error(data: bytes) -> None:
    with pytest.raises(CorruptEntryError):
        decode(data)


def test_truncated_entry_is_corrupt() -> None:
    data = encode(Entry(answer("x" * 5000)))
    with pytest.raises(CorruptEntryError):
        decode(data[: len(data) // 2])


def test_usage_of_both_providers() -> None:
    assert usage_of(answer()) == Usage(12, 3)
    anthropic = {"usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 7}}
    assert usage_of(anthropic) == Usage(15, 7)
    assert usage_of({}) == Usage()


def test_ttl_policy_jitter_tiers_and_no_expiry() -> None:
    policy = TtlPolicy.build("1h")
    rng = random.Random(1)
    values = [policy.choose(rand=rng.random) for _ in range(1000)]
    assert all(3240 <= v <= 3960 for v in values if v is not None)
    assert max(v for v in values if v) - min(v for v in values if v) > 500  # really spread
    assert TtlPolicy.build("1h", jitter=0).choose(tags=("volatile",)) == 1800
    assert TtlPolicy.build("1h", jitter=0).choose(tags=("static", "volatile")) == 1800
    assert (
        TtlPolicy.build("1h", jitter=0, tiers={"static": "2d"}).choose(tags=("static",)) == 172800
    )
    assert TtlPolicy.build("1h", jitter=0).choose(ttl=timedelta(minutes=5)) == 300
    assert TtlPolicy.build(NO_EXPIRY).choose() is None
    assert TtlPolicy.build("1h").choose(ttl=NO_EXPIRY) is None


def test_bad_durations() -> None:
    assert seconds("1h30m") == 5400
    assert seconds(90) == 90
    for bad in ("soon", "-1h", "", "1x"):
        with pytest.raises(ConfigError):
            seconds(bad)
    with pytest.raises(ConfigError):
        TtlPolicy.build("1h", jitter=1.5)


def test_skip_reasons_for_anthropic() -> None:
    message = {
        "type": "message",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
    }
    assert skip_reason(message) is None
    assert skip_reason({**message, "stop_reason": "max_tokens"}) == "truncated"
    assert (
        skip_reason(
            {
                **message,
                "content": [{"type": "tool_use", "id": "x", "name": "f", "input": {}}],
                "stop_reason": "tool_use",
            }
        )
        == "tool_calls"
    )
    assert skip_reason({**message, "content": []}) == "empty"
    assert skip_reason({"type": "error", "error": {"type": "overloaded_error"}}) == "error"
    assert skip_reason(answer(), temperature=1.2, max_temperature=1.0) == "temperature"


def test_pricing_longest_prefix() -> None:
    mini = price_of("gpt-4o-mini-2024-07-18", DEFAULT_PRICES)
    full = price_of("gpt-4o-2024-08-06", DEFAULT_PRICES)
    assert mini is not None and full is not None and mini != full
    assert cost("gpt-4o-mini", Usage(1_000_000, 0)) == pytest.approx(mini.input)
    assert cost("unknown-model", Usage(100, 100)) == 0.0


def test_breaker_opens_probes_and_closes() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=3, reset=5.0, clock=lambda: now[0])
    for _ in range(3):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    now[0] = 6.0
    assert breaker.allow()  # one probe
    assert not breaker.allow()  # only one
    breaker.failure()
    assert not breaker.allow()
    now[0] = 12.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed"
    assert breaker.allow()


def test_read_gives_what_the_hit_path_needs() -> None:
    from llmemo.core.entry import read, stale_after

    entry = Entry(
        response={"id": "x", "choices": []},
        model="gpt-4o-mini",
        created=100.0,
        usage=Usage(3, 4),
        tags=("a", "b"),
        tenant="t",
        ttl=60.0,
        stale_after=130.0,
        prompt="hello",
    )
    found = read(encode(entry))
    assert (found.response, found.created, found.model, found.usage) == (
        entry.response,
        100.0,
        "gpt-4o-mini",
        Usage(3, 4),
    )
    assert (found.tags, found.ttl, found.stale_after, found.prompt) == (
        ("a", "b"),
        60.0,
        130.0,
        "hello",
    )
    assert stale_after({"s": 5}) == 5.0 and stale_after({}) is None
    with pytest.raises(CorruptEntryError):
        stale_after({"s": "soon"})


def test_price_memo_prices_as_cost_does() -> None:
    from llmemo.core.pricing import PriceMemo

    memo = PriceMemo(max_models=2)
    for model in ("gpt-4o-mini-2024-07-18", "claude-3-haiku", None, "unknown", "gpt-4o-mini"):
        for usage in (Usage(1234, 56), Usage(0, 0), Usage(7, 0)):
            assert memo.cost(model, usage) == pytest.approx(cost(model, usage, DEFAULT_PRICES))
    assert len(memo._rates) <= 2  # bounded
