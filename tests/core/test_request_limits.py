"""Requests the key builder refuses with UnkeyableError (never RecursionError or a JSON error):
bodies nested deeper than MAX_DEPTH, and delivery fields (`stream`, `stream_options`) of the
wrong type."""

from __future__ import annotations

from typing import Any

import pytest

from llmemo import Cache, UnkeyableError
from llmemo.core.request import (
    MAX_DEPTH,
    check_depth,
    from_anthropic,
    from_call,
    from_openai,
    to_request,
    to_request_cached,
)
from llmemo.warm import WarmItem, parse_batch
from tests.core.helpers import Upstream, chat


def nested(levels: int) -> Any:
    """A list `levels` deep: [[...[]...]]."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def blocks(levels: int) -> Any:
    """Content blocks nested through their `content` (a tool result inside a tool result...)."""
    value: Any = "leaf"
    for _ in range(levels):
        value = [{"type": "tool_result", "tool_use_id": "t", "content": value}]
    return value


def test_a_body_at_the_limit_is_keyed_one_level_deeper_is_refused() -> None:
    # the body is level 1, so "x" may hold MAX_DEPTH - 1 levels of lists
    from_openai({**chat(), "x": nested(MAX_DEPTH - 1)}, "chat")
    with pytest.raises(UnkeyableError, match=f"more than {MAX_DEPTH} levels"):
        from_openai({**chat(), "x": nested(MAX_DEPTH)}, "chat")


@pytest.mark.parametrize("levels", [253, 254, 3000])  # orjson's limit, then Python's
def test_deep_bodies_are_unkeyable_on_every_request_kind(levels: int) -> None:
    deep = nested(levels)
    bodies: list[Any] = [
        lambda: to_request({**chat(), "x": deep}),
        lambda: to_request_cached({**chat(), "x": deep}),
        lambda: from_openai({"model": "m", "prompt": "p", "x": deep}, "completions"),
        lambda: from_openai({"model": "m", "input": deep}, "embeddings"),
        lambda: from_openai({"model": "m", "input": "hi", "instructions": deep}, "responses"),
        lambda: from_anthropic({**chat(), "model": "claude-haiku-4-5", "system": deep}),
        lambda: from_openai(
            {"model": "m", "messages": [{"role": "user", "content": deep}]}, "chat"
        ),
        lambda: from_anthropic(
            {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": blocks(levels)}]}
        ),
        lambda: from_call("f", (deep,), {}),
    ]
    for build in bodies:
        with pytest.raises(UnkeyableError, match="levels deep"):
            build()


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda extra: from_openai({**chat(), **extra}, "chat"), "metadata"),
        (
            lambda extra: from_openai({"model": "m", "input": "hi", **extra}, "responses"),
            "metadata",
        ),
        (
            lambda extra: from_anthropic({**chat(), "model": "claude-haiku-4-5", **extra}),
            "metadata",
        ),
        (lambda extra: from_openai({**chat(), **extra}, "chat"), "extra_body"),
    ],
)
def test_fields_outside_the_key_are_held_to_the_same_depth(build: Any, field: str) -> None:
    """Not keyed but forwarded, and `metadata` comes back in the answer: a body nested past the
    limit there is refused too, before anything is paid."""
    build({field: nested(MAX_DEPTH - 1)})
    with pytest.raises(UnkeyableError, match="levels deep"):
        build({field: nested(MAX_DEPTH)})


def test_the_cache_refuses_a_deep_request_before_calling_anything(redis_url: str) -> None:
    cache, upstream = Cache.from_url(redis_url), Upstream()
    deep = {**chat(), "tools": nested(5000)}
    with pytest.raises(UnkeyableError, match="levels deep"):
        cache.lookup(deep)
    with pytest.raises(UnkeyableError, match="levels deep"):
        cache.compute(deep, upstream)
    assert upstream.calls == 0
    cache.close()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"stream": 1}, "'stream'"),
        ({"stream": "yes"}, "'stream'"),
        ({"stream": 0}, "'stream'"),
        ({"stream_options": "usage"}, "'stream_options'"),
        ({"stream_options": {"include_usage": "yes"}}, "'stream_options'"),
    ],
)
def test_delivery_fields_of_the_wrong_type_are_unkeyable(
    params: dict[str, Any], field: str
) -> None:
    with pytest.raises(UnkeyableError, match=field):
        from_openai(chat(**params), "chat")
    with pytest.raises(UnkeyableError, match=field):
        from_openai({"model": "m", "prompt": "p", **params}, "completions")


def test_delivery_fields_of_the_right_type_are_accepted() -> None:
    assert from_openai(chat(stream=True), "chat").stream
    assert not from_openai(chat(stream=None, stream_options=None), "chat").stream
    request = from_openai(chat(stream=False, stream_options={"include_usage": True}), "chat")
    assert not request.stream


def test_check_depth_measures_any_depth_without_recursing() -> None:
    check_depth({"a": nested(MAX_DEPTH - 1)})
    with pytest.raises(UnkeyableError, match=f"more than {MAX_DEPTH} levels"):
        check_depth({"a": nested(MAX_DEPTH)})
    with pytest.raises(UnkeyableError, match="more than 3 levels"):
        check_depth(nested(100_000), 3)


def test_a_warm_batch_counts_depth_from_each_item() -> None:
    item = {**chat(), "x": nested(MAX_DEPTH - 1)}  # as deep as a request may be
    assert isinstance(parse_batch({"requests": [item], "ttl": 60}).items[0], WarmItem)
    assert isinstance(parse_batch([item]).items[0], WarmItem)
    deeper = {**chat(), "x": nested(MAX_DEPTH)}
    for batch in (
        deeper,
        [deeper],
        {"requests": [deeper]},
        {"requests": [chat()], "tags": nested(300)},
    ):
        with pytest.raises(UnkeyableError, match="levels deep"):
            parse_batch(batch)
