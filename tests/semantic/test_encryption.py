"""Semantic entries with encryption at rest: the stored prompt is sealed with the answer, and a
whole-keyspace scan of Redis Stack (entries, vector records, embedding-cache rows) finds no
byte of the prompt or the answer, while a paraphrase still hits."""

from __future__ import annotations

import redis

from llmemo import Cache
from llmemo.core.crypto import new_key
from llmemo.embed.minilm import MiniLMEmbedder
from tests.core.helpers import answer, chat

PROMPT = "How do I reset the password of my Quintanilla bank account?"
PARAPHRASE = "How can I reset the password of my Quintanilla bank account?"
ANSWER = "Open Settings, then Security, then Reset password; Quintanilla sends a code by SMS."


def every_byte(url: str) -> bytes:
    """Every key's value in the store, whatever its type, concatenated."""
    found = b""
    with redis.Redis.from_url(url) as client:
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            if kind == b"string":
                found += client.get(key) or b""
            elif kind == b"hash":
                found += b"".join(k + v for k, v in client.hgetall(key).items())
            elif kind == b"stream":
                found += repr(client.xrange(key)).encode()
            elif kind in (b"list", b"set", b"zset"):
                found += repr(client.dump(key)).encode()
            found += key
    return found


def test_semantic_prompt_and_answer_are_not_readable_at_rest(
    redis_stack_url: str, minilm: MiniLMEmbedder
) -> None:
    keys = f"k1:{new_key()}"
    with Cache.from_url(
        redis_stack_url, semantic=True, embedder=minilm, threshold=0.85, encryption=keys
    ) as cache:
        assert cache.store(chat(PROMPT), answer(ANSWER))
        hit = cache.lookup(chat(PARAPHRASE))
        assert hit is not None and hit.kind == "semantic"
        assert hit.response == answer(ANSWER)
    stored = every_byte(redis_stack_url)
    for fragment in ("Quintanilla", "reset the password", "Security", "SMS"):
        assert fragment.encode() not in stored, fragment
