"""LangChain with llmemo's cache on Upstash Redis (REST): the second `invoke` is served from the cache.

Needs langchain-openai and upstash-redis: `pip install '.[examples]'` from the checkout.

Run it:

    python examples/langchain_upstash.py     # offline: no OPENAI_API_KEY, no UPSTASH_* variables
    UPSTASH_REDIS_REST_URL=https://....upstash.io UPSTASH_REDIS_REST_TOKEN=... \\
    OPENAI_API_KEY=sk-... python examples/langchain_upstash.py

The store: with UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN set it is `upstash://` (your
Upstash database); without them the script starts a local `redis-server` and the checkout's
gateway (devtools/upstash_gateway.py) that speaks Upstash's REST protocol in front of it (see
docs/upstash.md), so the same `upstash-redis` SDK calls go over HTTP either way. The model: OpenAI
when OPENAI_API_KEY is set, else llmemo's local fake OpenAI upstream, started in this process.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langchain_core.globals import set_llm_cache
from langchain_openai import ChatOpenAI

from llmemo.langchain import LLMemoCache


@contextlib.contextmanager
def upstash_store() -> Iterator[tuple[str, Any]]:
    """(llmemo store URL, the local gateway or None): Upstash itself when configured."""
    if os.environ.get("UPSTASH_REDIS_REST_URL") and os.environ.get("UPSTASH_REDIS_REST_TOKEN"):
        yield "upstash://", None
        return
    # The local stand-ins live in the checkout's devtools/, not in the llmemo package.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from devtools.redis_server import RedisServer
    from devtools.upstash_gateway import UpstashGateway

    with RedisServer() as redis_server, UpstashGateway(redis_server.url) as gateway:
        yield gateway.store_url, gateway


@contextlib.contextmanager
def chat_model_options() -> Iterator[dict[str, Any]]:
    """ChatOpenAI options: OpenAI itself, or the local upstream started for this run."""
    if os.environ.get("OPENAI_API_KEY"):
        yield {}
        return
    from llmemo.testing.server import UpstreamServer

    with UpstreamServer(latency=0.3) as upstream:
        yield {"base_url": upstream.openai_base_url, "api_key": "offline"}


def main() -> None:
    offline = not os.environ.get("OPENAI_API_KEY")
    with upstash_store() as (store_url, gateway), chat_model_options() as options:
        namespace = "langchain-example-offline" if offline else "langchain-example"
        cache = LLMemoCache.from_url(store_url, namespace=namespace, ttl="1h")
        where = "local Upstash gateway" if gateway else "Upstash"
        print(f"store: {where} ({store_url.split('@')[-1]})")  # the token stays out of the output
        exact = cache.cache  # the llmemo Cache under LangChain's cache, for its stats
        assert exact is not None
        set_llm_cache(cache)
        try:
            cache.clear()  # this namespace only, so the first invoke is a miss on every run
            llm = ChatOpenAI(model="gpt-4o-mini", temperature=0, **options)
            question = "Name three uses of a cache in one sentence."
            answers = []
            for attempt in (1, 2):
                hits_before = exact.stats().hits
                requests_before = len(gateway.requests) if gateway else 0
                started = time.perf_counter()
                message = llm.invoke(question)
                elapsed = (time.perf_counter() - started) * 1000
                requests = len(gateway.requests) - requests_before if gateway else 0
                status = "hit" if exact.stats().hits > hits_before else "miss"
                line = f"invoke {attempt}: {status:<4} {elapsed:8.1f} ms"
                if gateway:
                    line += f", {requests} Upstash requests"
                print(f"{line}  {message.content!r:.60}")
                answers.append(message.content)
            print("same answer from the cache:", answers[0] == answers[1])
        finally:
            set_llm_cache(None)
            cache.close()


if __name__ == "__main__":
    main()
