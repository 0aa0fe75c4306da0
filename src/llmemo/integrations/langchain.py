"""LangChain's LLM cache on llmemo: `set_llm_cache(LLMemoCache.from_url("redis://localhost"))`.

Every generation of an answer is stored (text and chat generations, chunks too), chat messages
through LangChain's own `message_to_dict`/`messages_from_dict`, which only ever build message
classes: an entry read back from a shared store cannot instantiate anything else. The key is the
prompt and the whole `llm_string`, so another model or other parameters never hit. `clear()`
deletes this cache's namespace only, with SCAN + UNLINK, never FLUSHDB.

`LLMemoSemanticCache` adds semantic matching (a paraphrase hits), scoped like the library's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import orjson

from llmemo.errors import require

require("langchain_core", "langchain")

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache  # noqa: E402
from langchain_core.messages import message_to_dict, messages_from_dict  # noqa: E402
from langchain_core.outputs import (  # noqa: E402
    ChatGeneration,
    ChatGenerationChunk,
    Generation,
    GenerationChunk,
)

from llmemo.core import AsyncCache, Cache  # noqa: E402
from llmemo.core.facade import Hit  # noqa: E402
from llmemo.core.guard import Guard  # noqa: E402
from llmemo.core.policy import TtlArg  # noqa: E402
from llmemo.core.request import (  # noqa: E402
    CacheRequest,
    Normalisation,
    check_name,
    from_prompt,
    normalise_text,
)
from llmemo.core.semantic import AsyncSemanticLayer, SemanticLayer  # noqa: E402
from llmemo.errors import ConfigError  # noqa: E402
from llmemo.stores.base import async_from_url, default_url, from_url  # noqa: E402
from llmemo.stores.memory import AsyncMemoryStore, MemoryStore  # noqa: E402

log = logging.getLogger("llmemo.langchain")

# Most specific first: a ChatGenerationChunk is also a ChatGeneration and a Generation.
KINDS: Mapping[str, type[Generation]] = {
    "ChatGenerationChunk": ChatGenerationChunk,
    "ChatGeneration": ChatGeneration,
    "GenerationChunk": GenerationChunk,
    "Generation": Generation,
}
_FILTERS = frozenset({"model", "tenant", "user", "tag"})


def encode_generations(generations: Sequence[Generation]) -> dict[str, Any]:
    """The stored form of an answer: every generation, and the token usage a hit saves."""
    items = []
    inputs = outputs = 0
    for generation in generations:
        kind = next(name for name, cls in KINDS.items() if isinstance(generation, cls))
        item: dict[str, Any] = {"kind": kind, "info": generation.generation_info}
        if isinstance(generation, ChatGeneration):
            item["message"] = message_to_dict(generation.message)
            usage = getattr(generation.message, "usage_metadata", None) or {}
            inputs += int(usage.get("input_tokens") or 0)
            outputs += int(usage.get("output_tokens") or 0)
        else:
            item["text"] = generation.text
        items.append(item)
    answer = {"generations": items, "usage": {"input_tokens": inputs, "output_tokens": outputs}}
    orjson.dumps(answer)  # TypeError now, with what JSON cannot hold (a store would only skip it)
    return answer


def decode_generations(response: Mapping[str, Any]) -> list[Generation]:
    """The generations of a stored answer (KeyError/TypeError/ValueError when it is not one)."""
    generations: list[Generation] = []
    for item in response["generations"]:
        cls = KINDS[item["kind"]]
        if issubclass(cls, ChatGeneration):
            (message,) = messages_from_dict([item["message"]])
            generations.append(cls(message=message, generation_info=item.get("info")))
        else:
            generations.append(cls(text=item["text"], generation_info=item.get("info")))
    return generations


class LLMemoCache(BaseCache):
    """LangChain's `BaseCache` (exact match) on an llmemo Cache and/or AsyncCache.

    Give both twins on the same store (as `from_url` does) for native sync and async methods.
    With only a `Cache`, the async methods run it in an executor; with only an `AsyncCache`, the
    sync methods are unavailable. `ttl` overrides the cache's default TTL for these entries.
    """

    def __init__(
        self,
        cache: Cache | None = None,
        *,
        async_cache: AsyncCache | None = None,
        namespace: str | None = None,
        ttl: TtlArg = None,
        tags: Sequence[str] = (),
    ) -> None:
        either = cache or async_cache
        if either is None:
            raise ConfigError("LLMemoCache needs a Cache, an AsyncCache or both (see from_url)")
        self.cache = cache
        self.async_cache = async_cache
        self.namespace = check_name("namespace", namespace or either.namespace)
        self.ttl = ttl
        self.tags = tuple(tags)
        self._norm = either.normalisation

    @classmethod
    def from_url(
        cls,
        url: str | None = None,
        *,
        namespace: str = "langchain",
        ttl: TtlArg = None,
        tags: Sequence[str] = (),
        **options: Any,
    ) -> LLMemoCache:
        """Both cache twins on the store the URL names; `options` go to both (see Cache)."""
        url = url or default_url()
        store = from_url(url)
        # A memory store lives in this process: the async twin must share the sync one's dict.
        astore = AsyncMemoryStore(store) if isinstance(store, MemoryStore) else async_from_url(url)
        return cls(
            Cache(store, namespace=namespace, **options),
            async_cache=AsyncCache(astore, namespace=namespace, **options),
            namespace=namespace,
            ttl=ttl,
            tags=tags,
        )

    def close(self) -> None:
        """Flush counters and close the sync twin's store (`aclose` closes both twins)."""
        if self.cache is not None:
            self.cache.close()

    async def aclose(self) -> None:
        self.close()
        if self.async_cache is not None:
            await self.async_cache.close()

    def _request(self, prompt: str, llm_string: str) -> CacheRequest:
        return from_prompt(prompt, llm_string, self._norm)

    def _sync(self) -> Cache:
        if self.cache is None:
            raise ConfigError(
                "this LLMemoCache has only an AsyncCache: use LangChain's async API "
                "(ainvoke) or give it a Cache too"
            )
        return self.cache

    def _answer(self, hit: Hit | None) -> list[Generation] | None:
        if hit is None:
            return None
        try:
            return decode_generations(hit.response)
        except (KeyError, TypeError, ValueError) as exc:  # not a LangChain answer: a miss
            log.warning("llmemo: unreadable LangChain entry %s: %r", hit.key, exc)
            return None

    def _scope(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "tags": self.tags}

    def _filters(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        unknown = kwargs.keys() - _FILTERS
        if unknown:
            raise ConfigError(
                f"unknown clear() filter(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(_FILTERS))}"
            )
        return {"namespace": self.namespace, **kwargs}

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """Every generation cached for this prompt and LLM configuration, or None."""
        hit = self._sync().lookup(self._request(prompt, llm_string), **self._scope())
        return self._answer(hit)

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Store every generation (a failing store is logged and skipped, never raised)."""
        try:
            response = encode_generations(return_val)
            self._sync().store(
                self._request(prompt, llm_string), response, ttl=self.ttl, **self._scope()
            )
        except TypeError as exc:  # a generation_info or message that JSON cannot hold
            log.warning("llmemo: not caching a LangChain answer: %r", exc)

    def clear(self, **kwargs: Any) -> None:
        """Delete this cache's entries (its namespace; filters: model, tenant, user, tag)."""
        self._sync().invalidate(**self._filters(kwargs))

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        if self.async_cache is None:
            return await super().alookup(prompt, llm_string)
        hit = await self.async_cache.lookup(self._request(prompt, llm_string), **self._scope())
        return self._answer(hit)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        if self.async_cache is None:
            return await super().aupdate(prompt, llm_string, return_val)
        try:
            response = encode_generations(return_val)
            await self.async_cache.store(
                self._request(prompt, llm_string), response, ttl=self.ttl, **self._scope()
            )
        except TypeError as exc:
            log.warning("llmemo: not caching a LangChain answer: %r", exc)
        return None

    async def aclear(self, **kwargs: Any) -> None:
        if self.async_cache is None:
            return await super().aclear(**kwargs)
        await self.async_cache.invalidate(**self._filters(kwargs))
        return None


def _message_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(p["text"])
            for p in content
            if isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str)
        ]
        if texts:
            return "\n".join(texts)
    return None


def semantic_request(prompt: str, llm_string: str, norm: Normalisation) -> CacheRequest:
    """A LangChain (prompt, llm_string) keyed for semantic matching.

    The exact key is LLMemoCache's. For a chat model, LangChain's prompt is its serialised message
    list: the last human message is what is matched, and the rest (system prompt, earlier turns)
    joins `llm_string` in the context, so a paraphrase only hits inside the same conversation.
    """
    request = from_prompt(prompt, llm_string, norm)
    try:
        messages = orjson.loads(prompt)
    except orjson.JSONDecodeError:
        return request  # a plain LLM prompt: all of it is matched, llm_string is the context
    if not isinstance(messages, list) or not messages:
        return request
    last = messages[-1]
    kwargs = last.get("kwargs") if isinstance(last, Mapping) else None
    if not isinstance(kwargs, Mapping) or kwargs.get("type") != "human":
        return replace(request, semantic_text=None)  # no human turn last: exact only
    text = _message_text(kwargs.get("content"))
    if text is None:
        return replace(request, semantic_text=None)
    rest = {k: v for k, v in kwargs.items() if k not in ("content", "id")}
    context = orjson.dumps(
        {"provider": "langchain", "llm": llm_string, "history": messages[:-1], "last": rest},
        option=orjson.OPT_SORT_KEYS,
    )
    return replace(request, context=context, semantic_text=normalise_text(text, norm) or None)


class LLMemoSemanticCache(LLMemoCache):
    """LangChain's `BaseCache` with semantic matching: a paraphrased prompt hits too.

    Only inside the same `llm_string` (model and parameters) and, for chat models, the same system
    prompt and earlier turns; the threshold and the guard decide the rest (docs/semantic.md). The
    caches given must have a semantic layer (`from_url` builds both twins with one).
    """

    def __init__(
        self,
        cache: Cache | None = None,
        *,
        async_cache: AsyncCache | None = None,
        namespace: str | None = None,
        ttl: TtlArg = None,
        tags: Sequence[str] = (),
    ) -> None:
        super().__init__(cache, async_cache=async_cache, namespace=namespace, ttl=ttl, tags=tags)
        for twin in (cache, async_cache):
            if twin is not None and twin.semantic is None:
                raise ConfigError(
                    "LLMemoSemanticCache needs caches with a semantic layer: "
                    "LLMemoSemanticCache.from_url(url) or Cache(store, semantic=SemanticLayer())"
                )

    @classmethod
    def from_url(
        cls,
        url: str | None = None,
        *,
        namespace: str = "langchain",
        ttl: TtlArg = None,
        tags: Sequence[str] = (),
        embedder: Any = "minilm",
        index: str = "auto",
        threshold: float | None = None,
        guard: Guard | None = Guard(),  # noqa: B008  (frozen)
        **options: Any,
    ) -> LLMemoSemanticCache:
        """Both cache twins on the store the URL names, each with a semantic layer (one model
        loaded for both); `options` go to both caches (see Cache)."""
        from llmemo.embed.base import from_spec

        url = url or default_url()
        store = from_url(url)
        astore = AsyncMemoryStore(store) if isinstance(store, MemoryStore) else async_from_url(url)
        model = from_spec(embedder) if isinstance(embedder, str) else embedder
        layer: dict[str, Any] = {"index": index, "threshold": threshold, "guard": guard}
        return cls(
            Cache(store, namespace=namespace, semantic=SemanticLayer(model, **layer), **options),
            async_cache=AsyncCache(
                astore, namespace=namespace, semantic=AsyncSemanticLayer(model, **layer), **options
            ),
            namespace=namespace,
            ttl=ttl,
            tags=tags,
        )

    def _request(self, prompt: str, llm_string: str) -> CacheRequest:
        return semantic_request(prompt, llm_string, self._norm)
