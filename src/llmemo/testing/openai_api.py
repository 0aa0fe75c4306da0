"""The test upstream's OpenAI shapes: chat completions, legacy completions, embeddings."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

from llmemo.testing.answers import (
    JSON,
    Reply,
    compose,
    content_text,
    count_tokens,
    judge,
    last_user_text,
    pick_tool,
    pieces,
    request_key,
    stops,
)
from llmemo.testing.embedding import embed

FINGERPRINT = "fp_llmemo_test"
_OPENAI_FINISH = {"stop": "stop", "stop_sequence": "stop", "length": "length", "tool": "tool_calls"}


def openai_usage(prompt: int, completion: int) -> JSON:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def openai_chat(body: JSON, rid: str, created: int) -> JSON:
    """A `chat.completion` for a validated request body."""
    messages: list[JSON] = body["messages"]
    text = last_user_text(messages)
    tools = [(t["function"]["name"], t["function"].get("parameters")) for t in body.get("tools") or ()
             if isinstance(t, dict) and isinstance(t.get("function"), dict)]  # fmt: skip
    choice = body.get("tool_choice") or "auto"
    mode, name = (
        ("required", choice.get("function", {}).get("name"))
        if isinstance(choice, dict)
        else (str(choice), None)
    )
    tool = pick_tool(tools, text, mode, name) if messages[-1].get("role") == "user" else None
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    replies = [compose(request_key(body, i), text, max_tokens=limit, stops=stops(body.get("stop")), tool=tool)
               for i in range(body.get("n") or 1)]  # fmt: skip
    if str(body.get("model", "")).startswith("judge"):  # llmemo's verifier asks (tests)
        replies = [Reply(judge(text))]
    choices = []
    for index, reply in enumerate(replies):
        message: JSON = {
            "role": "assistant",
            "content": None if reply.tool else reply.text,
            "refusal": None,
        }
        if reply.tool:
            function = {"name": reply.tool.name, "arguments": json.dumps(reply.tool.arguments)}
            message["tool_calls"] = [
                {"id": f"call_{reply.tool.id}", "type": "function", "function": function}
            ]
        choices.append({"index": index, "message": message, "logprobs": None,
                        "finish_reason": _OPENAI_FINISH[reply.finish]})  # fmt: skip
    prompt = sum(count_tokens(content_text(m.get("content"))) for m in messages)
    return {"id": rid, "object": "chat.completion", "created": created, "model": body["model"],
            "choices": choices, "usage": openai_usage(prompt, sum(r.tokens for r in replies)),
            "system_fingerprint": FINGERPRINT}  # fmt: skip


def openai_chat_chunks(completion: JSON, include_usage: bool) -> list[JSON]:
    """The `chat.completion.chunk`s that stream `completion` (content joins back exactly)."""
    head = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
            "model": completion["model"], "system_fingerprint": FINGERPRINT}  # fmt: skip
    tail: JSON = {"usage": None} if include_usage else {}

    def chunk(index: int, delta: JSON, finish: str | None = None) -> JSON:
        return {
            **head,
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
            **tail,
        }

    chunks = []
    for choice in completion["choices"]:
        index, message = choice["index"], choice["message"]
        if message.get("tool_calls"):
            call = message["tool_calls"][0]
            opening = {"index": 0, "id": call["id"], "type": "function",
                       "function": {"name": call["function"]["name"], "arguments": ""}}  # fmt: skip
            chunks.append(
                chunk(index, {"role": "assistant", "content": None, "tool_calls": [opening]})
            )
            chunks += [chunk(index, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                       for piece in pieces(call["function"]["arguments"])]  # fmt: skip
        else:
            chunks.append(chunk(index, {"role": "assistant", "content": "", "refusal": None}))
            chunks += [chunk(index, {"content": piece}) for piece in pieces(message["content"])]
        chunks.append(chunk(index, {}, choice["finish_reason"]))
    if include_usage:
        chunks.append({**head, "choices": [], "usage": completion["usage"]})
    return chunks


def openai_completion(body: JSON, prompts: list[str], rid: str, created: int) -> JSON:
    """A legacy `text_completion`: n choices per prompt, `max_tokens` 16 unless given."""
    limit, n, choices, used = body.get("max_tokens", 16), body.get("n") or 1, [], 0
    for number, prompt in enumerate(prompts):
        for copy in range(n):
            reply = compose(request_key({**body, "prompt": prompt}, copy), prompt,
                            max_tokens=limit, stops=stops(body.get("stop")))  # fmt: skip
            used += reply.tokens
            text = prompt + reply.text if body.get("echo") else reply.text
            choices.append({"text": text, "index": number * n + copy, "logprobs": None,
                            "finish_reason": _OPENAI_FINISH[reply.finish]})  # fmt: skip
    prompt_tokens = sum(count_tokens(prompt) for prompt in prompts)
    return {"id": rid, "object": "text_completion", "created": created, "model": body["model"],
            "choices": choices, "usage": openai_usage(prompt_tokens, used),
            "system_fingerprint": FINGERPRINT}  # fmt: skip


def openai_completion_chunks(completion: JSON, include_usage: bool) -> list[JSON]:
    head = {
        name: completion[name]
        for name in ("id", "object", "created", "model", "system_fingerprint")
    }
    chunks = []
    for choice in completion["choices"]:
        step = {"index": choice["index"], "logprobs": None, "finish_reason": None}
        chunks += [
            {**head, "choices": [{**step, "text": piece}]} for piece in pieces(choice["text"])
        ]
        chunks.append(
            {**head, "choices": [{**step, "text": "", "finish_reason": choice["finish_reason"]}]}
        )
    if include_usage:
        chunks.append({**head, "choices": [], "usage": completion["usage"]})
    return chunks


def openai_embeddings(body: JSON, texts: list[str], dim: int) -> JSON:
    data = []
    for index, text in enumerate(texts):
        vector: Any = embed(text, body["model"], dim)
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(count_tokens(text) for text in texts)
    return {"object": "list", "data": data, "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}  # fmt: skip
