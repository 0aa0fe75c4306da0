"""The OpenAI SDK's cached endpoints: chat completions, legacy completions, embeddings and the
Responses API (`responses.create`; `responses.stream()` and `parse()` pass through uncached).

A Responses API call that depends on state kept by OpenAI (`previous_response_id`, a conversation,
`background`, ...: `core.request.responses_bypass`) goes straight to the SDK, counted as a bypass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, cast, get_args

import openai
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter, ValidationError

from llmemo.core import streaming
from llmemo.core.request import CacheRequest, Normalisation, from_openai, responses_bypass
from llmemo.errors import UnkeyableError
from llmemo.integrations.provider import JSON, Endpoint, Provider, build


def _request(endpoint: str) -> Callable[[Mapping[str, Any], Normalisation], CacheRequest]:
    def request(body: Mapping[str, Any], norm: Normalisation) -> CacheRequest:
        return from_openai(body, endpoint, norm)

    return request


def _include_usage(kwargs: Mapping[str, Any]) -> bool:
    options = kwargs.get("stream_options")
    return isinstance(options, Mapping) and bool(options.get("include_usage"))


def _finished(chunks: list[JSON]) -> bool:
    """Did every choice get its finish_reason? (The SDK hides `[DONE]`; a cut stream lacks one.)"""
    finished: dict[Any, bool] = {}
    for chunk in chunks:
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            finished[index] = finished.get(index, False) or choice.get("finish_reason") is not None
    return bool(finished) and all(finished.values())


def _chat_chunks(response: Mapping[str, Any], kwargs: Mapping[str, Any]) -> list[JSON]:
    return streaming.chat_chunks(response, _include_usage(kwargs))


def _completion_chunks(response: Mapping[str, Any], kwargs: Mapping[str, Any]) -> list[JSON]:
    return streaming.completion_chunks(response, _include_usage(kwargs))


def _responses_request(body: Mapping[str, Any], norm: Normalisation) -> CacheRequest:
    reason = responses_bypass(body)
    if reason is not None:
        raise UnkeyableError(f"the request depends on state kept by OpenAI ({reason})")
    return from_openai(body, "responses", norm)


_EVENT: TypeAdapter[Any] = TypeAdapter(cast(Any, ResponseStreamEvent))  # a type alias in some SDKs
_EVENT_TYPES: dict[str, type[BaseModel]] = {
    model.model_fields["type"].annotation.__args__[0]: model
    for model in get_args(get_args(ResponseStreamEvent)[0])
}


def _event(data: JSON) -> Any:
    """A Responses stream event object: validated, else built leniently as the SDK does."""
    try:
        return _EVENT.validate_python(data)
    except ValidationError:
        model = _EVENT_TYPES.get(str(data.get("type")))
        if model is None:
            raise
        return model.model_construct(**data)


def _response_completed(events: list[JSON]) -> bool:
    return any(event.get("type") == "response.completed" for event in events)


def _response_events(response: Mapping[str, Any], kwargs: Mapping[str, Any]) -> list[JSON]:
    return streaming.response_events(response)


CHAT = Endpoint(
    "chat.completions",
    _request("chat"),
    partial(build, ChatCompletion),
    chunk=partial(build, ChatCompletionChunk),
    assemble=streaming.assemble_chat,
    replay=_chat_chunks,
    complete=_finished,
)
COMPLETIONS = Endpoint(
    "completions",
    _request("completions"),
    partial(build, Completion),
    chunk=partial(build, Completion),
    assemble=streaming.assemble_completion,
    replay=_completion_chunks,
    complete=_finished,
)
RESPONSES = Endpoint(
    "responses",
    _responses_request,
    partial(build, Response),
    chunk=_event,
    assemble=streaming.assemble_response,
    replay=_response_events,
    complete=_response_completed,
)
EMBEDDINGS = Endpoint("embeddings", _request("embeddings"), partial(build, CreateEmbeddingResponse))

PROVIDER = Provider(
    name="openai",
    routes={
        "chat": {"completions": {"create": CHAT}},
        "completions": {"create": COMPLETIONS},
        "embeddings": {"create": EMBEDDINGS},
        "responses": {"create": RESPONSES},
    },
    sync_client=openai.OpenAI,
    async_client=openai.AsyncOpenAI,
    omitted=(openai.NotGiven, openai.Omit),
)
