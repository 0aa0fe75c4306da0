"""The OpenAI SDK's cached endpoints: chat completions, legacy completions and embeddings.

`responses.create` passes through uncached for now: the test upstream has no Responses API yet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import openai
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from llmemo.core import streaming
from llmemo.core.request import CacheRequest, Normalisation, from_openai
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
EMBEDDINGS = Endpoint("embeddings", _request("embeddings"), partial(build, CreateEmbeddingResponse))

PROVIDER = Provider(
    name="openai",
    routes={
        "chat": {"completions": {"create": CHAT}},
        "completions": {"create": COMPLETIONS},
        "embeddings": {"create": EMBEDDINGS},
    },
    sync_client=openai.OpenAI,
    async_client=openai.AsyncOpenAI,
    omitted=(openai.NotGiven, openai.Omit),
)
