"""The provider upstreams: the bytes and headers they expect, and how warming calls them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from llmemo.errors import LLMemoError, require
from llmemo.warm.items import Provider, WarmItem

if TYPE_CHECKING:
    from llmemo.service.upstream import Upstreams

ANTHROPIC_VERSION = "2023-06-01"


class WarmError(LLMemoError):
    """A warm item that cannot be run, or an upstream that failed it."""


def upstream_body(item: WarmItem) -> bytes:
    """The JSON bytes to send upstream for an item."""
    return orjson.dumps(dict(item.body))


def auth_headers(provider: Provider, api_key: str | None) -> dict[str, str]:
    """The headers a provider expects: content type, version, and the API key if there is one."""
    headers = {"content-type": "application/json"}
    if provider == "anthropic":
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if api_key:
            headers["x-api-key"] = api_key
    elif api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


async def post_item(upstreams: Upstreams, item: WarmItem, api_key: str | None) -> Mapping[str, Any]:
    """POST an item through llmemo's one upstream client (`service.upstream.Upstreams`): the
    JSON answer, or WarmError saying why not."""
    from llmemo.service.errors import ServiceError, UpstreamError

    headers = auth_headers(item.provider, api_key)
    try:
        data, _ = await upstreams.post(item.provider, item.path, upstream_body(item), headers)
    except UpstreamError as exc:
        try:
            message = _error_message(orjson.loads(exc.body))
        except orjson.JSONDecodeError:
            message = None
        raise WarmError(
            f"the {item.provider} upstream answered {exc.status}"
            + (f": {message}" if message else "")
        ) from None
    except ServiceError as exc:  # unreachable, timed out, not JSON
        raise WarmError(str(exc)) from None
    return data


class HttpUpstream:
    """A Caller that POSTs items to the providers (`llmemo warm` without a service), through
    the service's upstream client with its timeouts, limits and header policy.

    Base URLs as `llmemo serve` takes them: OpenAI's with `/v1`, Anthropic's without.
    """

    def __init__(
        self,
        *,
        openai_base_url: str | None = None,
        anthropic_base_url: str | None = None,
        openai_api_key: str | None = None,
        anthropic_api_key: str | None = None,
        timeout: float = 600.0,
    ) -> None:
        require("httpx", "server")
        from llmemo.service.upstream import Upstreams

        self.bases: dict[Provider, str | None] = {
            "openai": openai_base_url.rstrip("/") if openai_base_url else None,
            "anthropic": anthropic_base_url.rstrip("/") if anthropic_base_url else None,
        }
        self.keys: dict[Provider, str | None] = {
            "openai": openai_api_key,
            "anthropic": anthropic_api_key,
        }
        self._upstreams = Upstreams.to(self.bases, timeout=timeout)

    async def __aenter__(self) -> HttpUpstream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._upstreams.aclose()

    async def __call__(self, item: WarmItem) -> Mapping[str, Any]:
        if self.bases[item.provider] is None:
            flag = "--anthropic-base-url" if item.provider == "anthropic" else "--openai-base-url"
            raise WarmError(f"no {item.provider} upstream: pass {flag}")
        return await post_item(self._upstreams, item, self.keys[item.provider])


def _error_message(data: Any) -> str | None:
    """The message of an OpenAI- or Anthropic-shaped error body."""
    error = data.get("error") if isinstance(data, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else None
    return message[:300] if isinstance(message, str) else None
