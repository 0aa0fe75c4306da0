"""The Anthropic SDK's cached endpoint: `messages.create` (plain and `stream=True`), and the
`messages.stream()` helper on top of it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import anthropic
from anthropic import NOT_GIVEN, NotGiven, Omit
from anthropic.lib.streaming import AsyncMessageStreamManager, MessageStreamManager
from anthropic.types import (
    Message,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
)
from pydantic import BaseModel

from llmemo.core import streaming
from llmemo.core.request import CacheRequest, Normalisation, from_anthropic
from llmemo.integrations.provider import JSON, Endpoint, Helper, Provider, build

# Stream event type -> its SDK class (the union the SDK streams, told apart by `type`).
EVENTS: Mapping[str, type[BaseModel]] = {
    "message_start": RawMessageStartEvent,
    "message_delta": RawMessageDeltaEvent,
    "message_stop": RawMessageStopEvent,
    "content_block_start": RawContentBlockStartEvent,
    "content_block_delta": RawContentBlockDeltaEvent,
    "content_block_stop": RawContentBlockStopEvent,
}


def _request(body: Mapping[str, Any], norm: Normalisation) -> CacheRequest:
    return from_anthropic(body, norm)


def _event(data: JSON) -> BaseModel:
    return build(EVENTS[data["type"]], data)


def _finished(events: list[JSON]) -> bool:
    """Did the stream reach `message_stop`? (An error event raises in the SDK before this.)"""
    return bool(events) and events[-1].get("type") == "message_stop"


def _replay(response: Mapping[str, Any], kwargs: Mapping[str, Any]) -> list[JSON]:
    return streaming.message_events(response)


MESSAGES = Endpoint(
    "messages",
    _request,
    partial(build, Message),
    chunk=_event,
    assemble=streaming.assemble_message,
    replay=_replay,
    complete=_finished,
)


def _stream_manager(create: Callable[..., Any], kwargs: dict[str, Any], is_async: bool) -> Any:
    """What `messages.stream(**kwargs)` returns, its stream made by the cached `create`: the
    SDK's own manager, so `text_stream`, events and `get_final_message()` work on hits too."""
    if is_async:
        return AsyncMessageStreamManager(create(**kwargs, stream=True))
    return MessageStreamManager(partial(create, **kwargs, stream=True), output_format=NOT_GIVEN)


def _parses(kwargs: Mapping[str, Any]) -> bool:
    """A structured-output stream (`output_format=`) is the SDK's own helper's, uncached."""
    return not isinstance(kwargs.get("output_format", NOT_GIVEN), NotGiven | Omit | None)


STREAM = Helper("create", _stream_manager, _parses)

PROVIDER = Provider(
    name="anthropic",
    routes={"messages": {"create": MESSAGES, "stream": STREAM}},
    sync_client=anthropic.Anthropic,
    async_client=anthropic.AsyncAnthropic,
    omitted=(anthropic.NotGiven, anthropic.Omit),
)
