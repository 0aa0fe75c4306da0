"""The wrapped OpenAI client with `stream=True`: a live stream, then the same text replayed from the cache.

Needs the OpenAI SDK: `pip install '.[examples]'` from the checkout.

Run it:

    python examples/openai_streaming.py                  # offline (no OPENAI_API_KEY)
    OPENAI_API_KEY=sk-... python examples/openai_streaming.py
    REDIS_URL=redis://localhost:6379/0 python examples/openai_streaming.py

`llmemo.wrap(OpenAI(), cache)` keeps the client's interface. A live stream passes the SDK's chunks
through as they arrive and is stored when it ends cleanly; the same request again is replayed from
the cache as `ChatCompletionChunk` objects, with no call to the provider. The store is $REDIS_URL,
else an in-memory store (this process only). Without OPENAI_API_KEY the script starts llmemo's
local fake OpenAI upstream in-process, with a delay between chunks like a real provider's.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from openai import OpenAI

import llmemo


@contextlib.contextmanager
def provider() -> Iterator[tuple[dict[str, Any], Any]]:
    """(OpenAI client options, the local upstream or None)."""
    if os.environ.get("OPENAI_API_KEY"):
        yield {}, None
        return
    from llmemo.testing.server import UpstreamServer

    with UpstreamServer(latency=0.2, chunk_delay=0.02) as upstream:
        yield {"base_url": upstream.openai_base_url, "api_key": "offline"}, upstream


def main() -> None:
    with provider() as (options, upstream):
        namespace = "streaming-offline" if upstream else "streaming"
        store = os.environ.get("REDIS_URL") or "memory://"
        with llmemo.Cache.from_url(store, namespace=namespace, ttl="1h") as cache:
            cache.invalidate()  # this namespace only, so the first call is live on every run
            client = llmemo.wrap(OpenAI(**options), cache)
            messages = [{"role": "user", "content": "Tell me a two-sentence story about a cache."}]
            texts = []
            for attempt in (1, 2):
                started = time.perf_counter()
                first_chunk = None
                parts = []
                print(f"stream {attempt}: ", end="", flush=True)
                with client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages, stream=True
                ) as stream:
                    for chunk in stream:
                        if first_chunk is None:
                            first_chunk = (time.perf_counter() - started) * 1000
                        if chunk.choices and chunk.choices[0].delta.content:
                            parts.append(chunk.choices[0].delta.content)
                            sys.stdout.write(chunk.choices[0].delta.content)
                            sys.stdout.flush()
                    source = "cached replay" if stream.cached else "live"
                total = (time.perf_counter() - started) * 1000
                print(
                    f"\n  -> {source}: first chunk {first_chunk or 0:.1f} ms, total {total:.1f} ms"
                )
                texts.append("".join(parts))
            print("same text:", texts[0] == texts[1])
            if upstream is not None:
                calls = upstream.stats().count("/v1/chat/completions")
                print(f"upstream calls: {calls}")


if __name__ == "__main__":
    main()
