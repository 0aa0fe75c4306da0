"""What a wrapped SDK must tell the wrapper: its cached endpoints and how to rebuild their objects."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from llmemo.core.request import CacheRequest, Normalisation
from llmemo.errors import UnkeyableError

if TYPE_CHECKING:
    from pydantic import BaseModel

JSON = dict[str, Any]
M = TypeVar("M", bound="BaseModel")
log = logging.getLogger("llmemo.integrations")

# Keywords of every SDK method that shape the HTTP call, not the answer.
TRANSPORT = frozenset({"extra_headers", "extra_query", "timeout"})


@dataclass(frozen=True)
class Endpoint:
    """One cached SDK method: how to key its keywords and rebuild its results.

    `chunk`, `assemble`, `replay` and `complete` are set when `stream=True` is cached: a stream is
    stored as the response it adds up to (when `complete` says it ended cleanly), and a hit is
    replayed as chunk objects.
    """

    name: str
    request: Callable[[Mapping[str, Any], Normalisation], CacheRequest]
    response: Callable[[JSON], Any]
    chunk: Callable[[JSON], Any] | None = None
    assemble: Callable[[list[JSON]], JSON] | None = None
    replay: Callable[[Mapping[str, Any], Mapping[str, Any]], list[JSON]] | None = None
    complete: Callable[[list[JSON]], bool] | None = None

    @property
    def streams(self) -> bool:
        return self.chunk is not None


@dataclass(frozen=True)
class Helper:
    """An SDK stream helper (Anthropic's `messages.stream()`) run on the cached `via` sibling
    (`create`): `manager(create, kwargs, is_async)` builds the SDK's own manager around that
    method's stream. Calls that `passes` go to the SDK's helper itself, uncached."""

    via: str
    manager: Callable[[Callable[..., Any], dict[str, Any], bool], Any]
    passes: Callable[[Mapping[str, Any]], bool]


Routes = Mapping[str, "Routes | Endpoint | Helper"]


@dataclass(frozen=True)
class Provider:
    """A client family (openai, anthropic): its cached routes and its SDK's "no value" markers."""

    name: str
    routes: Routes
    sync_client: type
    async_client: type
    omitted: tuple[type, ...] = field(default=())


def build(model: type[M], data: JSON) -> M:
    """An SDK object from a stored dict: validated, else built leniently as the SDK itself does."""
    from pydantic import ValidationError  # the SDKs depend on pydantic; llmemo's base does not

    try:
        return model.model_validate(data)
    except ValidationError:
        return model.model_construct(**data)


def dump(obj: Any) -> JSON:
    """An SDK chunk as a dict, with only the fields the server sent."""
    data = obj.model_dump(mode="json", exclude_unset=True)
    if not isinstance(data, dict):
        raise TypeError(f"not an SDK model: {type(obj).__name__}")
    return data


def materialise(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword values that are one-shot iterators become lists: we read them and so will the SDK."""
    return {k: list(v) if isinstance(v, Iterator) else v for k, v in kwargs.items()}


def key_request(
    endpoint: Endpoint,
    kwargs: Mapping[str, Any],
    omitted: tuple[type, ...],
    norm: Normalisation,
) -> CacheRequest | None:
    """The canonical request of a call's keywords, or None when they cannot be keyed."""
    body = {k: v for k, v in kwargs.items() if k not in TRANSPORT and not isinstance(v, omitted)}
    extra = body.pop("extra_body", None)
    if isinstance(extra, Mapping):  # sent as body fields, so they can change the answer
        body.update(extra)
    try:
        return endpoint.request(body, norm)
    except UnkeyableError as exc:
        log.debug("llmemo: not caching a %s call: %s", endpoint.name, exc)
        return None
