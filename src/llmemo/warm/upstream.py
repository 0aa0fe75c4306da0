"""The provider upstreams: the bytes and headers they expect, and HttpUpstream to call them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llmemo.errors import LLMemoError, require
from llmemo.warm.items import Provider, WarmItem

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


class HttpUpstream:
    """A Caller that POSTs items to the providers with httpx (`llmemo warm` without a service).

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
        import httpx

        self.bases: dict[Provider, str | None] = {
            "openai": openai_base_url.rstrip("/") if openai_base_url else None,
            "anthropic": anthropic_base_url.rstrip("/") if anthropic_base_url else None,
        }
        self.keys: dict[Provider, str | None] = {
            "openai": openai_api_key,
            "anthropic": anthropic_api_key,
        }
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10.0))

    async def __aenter__(self) -> HttpUpstream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __call__(self, item: WarmItem) -> Mapping[str, Any]:
        import httpx

        base = self.bases[item.provider]
        if base is None:
            flag = "--anthropic-base-url" if item.provider == "anthropic" else "--openai-base-url"
            raise WarmError(f"no {item.provider} upstream: pass {flag}")
        headers = auth_headers(item.provider, self.keys[item.provider])
        try:
            response = await self._client.post(
                base + item.path, content=upstream_body(item), headers=headers
            )
        except httpx.HTTPError as exc:
            raise WarmError(
                f"cannot reach the {item.provider} upstream at {base}: {type(exc).__name__}"
            ) from None
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            data = None
        if response.status_code >= 400:
            raise WarmError(
                f"the {item.provider} upstream answered {response.status_code}"
                + (f": {_error_message(data)}" if _error_message(data) else "")
            )
        if not isinstance(data, dict):
            raise WarmError(f"the {item.provider} upstream answered without a JSON object")
        return data


def _error_message(data: Any) -> str | None:
    """The message of an OpenAI- or Anthropic-shaped error body."""
    error = data.get("error") if isinstance(data, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else None
    return message[:300] if isinstance(message, str) else None
