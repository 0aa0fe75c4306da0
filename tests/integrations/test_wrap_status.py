"""`llmemo.last_status()`: the hit/miss signal of a wrapped client's calls, per thread and task."""

from __future__ import annotations

import asyncio
import threading

import anthropic
import openai
import pytest

import llmemo
from llmemo import AsyncCache, Cache


def chat(text: str = "What is the capital of France?") -> dict[str, object]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


def test_openai_miss_hit_bypass(oai: openai.OpenAI, cache: Cache) -> None:
    client = llmemo.wrap(oai, cache)
    client.chat.completions.create(**chat())
    assert llmemo.last_status() == "miss"
    client.chat.completions.create(**chat())
    assert llmemo.last_status() == "hit"
    client.chat.completions.create(**chat(), cacheable=False)
    assert llmemo.last_status() == "bypass"
    client.embeddings.create(model="text-embedding-3-small", input="status")
    assert llmemo.last_status() == "miss"


def test_openai_streams(oai: openai.OpenAI, cache: Cache) -> None:
    client = llmemo.wrap(oai, cache)
    with client.chat.completions.create(**chat("stream me"), stream=True) as live:
        assert llmemo.last_status() == "miss"
        list(live)
    with client.chat.completions.create(**chat("stream me"), stream=True) as replay:
        assert llmemo.last_status() == "hit"
        list(replay)


def test_anthropic(claude: anthropic.Anthropic, cache: Cache) -> None:
    client = llmemo.wrap(claude, cache)
    ask = {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": chat()["messages"]}
    client.messages.create(**ask)
    assert llmemo.last_status() == "miss"
    client.messages.create(**ask)
    assert llmemo.last_status() == "hit"


def test_each_thread_sees_its_own_calls(oai: openai.OpenAI, cache: Cache) -> None:
    client = llmemo.wrap(oai, cache)
    client.chat.completions.create(**chat())
    seen: list[object] = []

    def other() -> None:
        seen.append(llmemo.last_status())  # nothing called in this thread yet
        client.chat.completions.create(**chat())
        seen.append(llmemo.last_status())

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen == [None, "hit"]
    client.chat.completions.create(**chat("another question"))
    assert llmemo.last_status() == "miss"


@pytest.mark.asyncio
async def test_each_task_sees_its_own_calls(aoai: openai.AsyncOpenAI, acache: AsyncCache) -> None:
    client = llmemo.wrap(aoai, acache)
    await client.chat.completions.create(**chat())
    assert llmemo.last_status() == "miss"

    async def ask(text: str) -> object:
        await client.chat.completions.create(**chat(text))
        await asyncio.sleep(0)  # let the other task's call finish in between
        return llmemo.last_status()

    statuses = await asyncio.gather(ask("What is the capital of France?"), ask("new question"))
    assert statuses == ["hit", "miss"]
    assert llmemo.last_status() == "miss"  # this task's own last call, not a child's
