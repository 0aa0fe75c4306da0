"""The classic "ask_llm with a Redis cache": the same question twice, the second from the cache.

Needs the OpenAI SDK: `pip install '.[examples]'` from the checkout.

Run it:

    python examples/ask_llm_redis.py                      # offline (no OPENAI_API_KEY)
    REDIS_URL=redis://localhost:6379/0 python examples/ask_llm_redis.py
    OPENAI_API_KEY=sk-... python examples/ask_llm_redis.py  # the real OpenAI API

The store is $REDIS_URL, else `--store URL`, else llmemo's default ($LLMEMO_STORE, or the
embedded SQLite file ~/.cache/llmemo/cache.db): the cache outlives the script, so a second run
answers the first question from the cache too. `--offline` (the default when OPENAI_API_KEY is
unset) starts llmemo's local fake OpenAI upstream in this process, with some latency so the
timings look like a provider's; its answers go to their own namespace, never mixed with real ones.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

from openai import OpenAI

import llmemo


def ask_llm(cache: llmemo.Cache, client: OpenAI, question: str, model: str) -> str:
    """Ask once per distinct question: a repeat is answered from the cache, not the provider."""
    request = {"model": model, "messages": [{"role": "user", "content": question}]}
    response = cache.get_or_compute(request, lambda: client.chat.completions.create(**request))
    return str(response["choices"][0]["message"]["content"])


@contextlib.contextmanager
def provider(offline: bool) -> Iterator[dict[str, Any]]:
    """OpenAI client options: the real API, or the local upstream started for this run."""
    if not offline:
        yield {}
        return
    from llmemo.testing.server import UpstreamServer

    with UpstreamServer(latency=0.3) as upstream:
        yield {"base_url": upstream.openai_base_url, "api_key": "offline"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offline", action=argparse.BooleanOptionalAction,
                        default=not os.environ.get("OPENAI_API_KEY"))  # fmt: skip
    parser.add_argument("--store", default=os.environ.get("REDIS_URL"), help="store URL")
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--question", default="In one sentence: why cache LLM responses?")
    args = parser.parse_args(argv)

    namespace = "ask-llm-offline" if args.offline else "ask-llm"
    cache = llmemo.Cache.from_url(args.store, namespace=namespace, ttl="1d")
    provider_name = "local upstream" if args.offline else "OpenAI"
    print(f"store: {cache.backend.url}, namespace {namespace}, provider {provider_name}")
    with provider(args.offline) as options, cache:
        client = OpenAI(**options)
        request = {"model": args.model, "messages": [{"role": "user", "content": args.question}]}
        for attempt in (1, 2):
            started = time.perf_counter()
            result = cache.compute(request, lambda: client.chat.completions.create(**request))
            elapsed = (time.perf_counter() - started) * 1000
            answer = result.response["choices"][0]["message"]["content"]
            print(f"ask {attempt}: {result.status:<4} {elapsed:8.1f} ms  {answer[:70]!r}")
        # The one-liner most code wants: no status, just the answer.
        print("ask_llm():", ask_llm(cache, client, args.question, args.model)[:70])
        stats = cache.stats()
        print(f"stats: {stats.hits} hits, {stats.misses} misses, {stats.tokens_saved} tokens saved")


if __name__ == "__main__":
    main()
