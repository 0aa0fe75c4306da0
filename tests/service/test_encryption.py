"""The service with LLMEMO_ENCRYPTION_KEYS: answers at rest in Redis are ciphertext, and an entry
it cannot decrypt is a miss counted in /metrics."""

from __future__ import annotations

import httpx
import redis

from llmemo.core.crypto import new_key
from llmemo.testing.server import UpstreamServer
from tests.service.conftest import ALICE, Serve
from tests.service.test_health import samples, value

CHAT = "/v1/chat/completions"
QUESTION = "Ximena Oyelaran-Burkhardt asks: which river flows through Ouagadougou?"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": QUESTION}]}
HEADERS = {"authorization": f"Bearer {ALICE}"}


def ask(http: httpx.Client) -> tuple[str, str]:
    response = http.post(CHAT, json=BODY)
    assert response.status_code == 200, response.text
    return response.headers["x-llmemo-cache"], response.json()["choices"][0]["message"]["content"]


def test_answers_at_rest_are_encrypted_and_a_wrong_key_is_a_counted_miss(
    serve: Serve, redis_url: str, upstream: UpstreamServer
) -> None:
    first = serve(encryption_keys=f"k1:{new_key()}", near_ttl="0")
    with httpx.Client(base_url=first.url, headers=HEADERS, timeout=30) as http:
        (miss, answer), (hit, again) = ask(http), ask(http)
    assert (miss, hit, again) == ("miss", "hit", answer)
    with redis.Redis.from_url(redis_url) as client:
        values = [client.get(key) for key in client.scan_iter(match="*", count=1000)]
    stored = b"".join(v for v in values if isinstance(v, bytes))
    assert b"Oyelaran" not in stored and answer[:40].encode() not in stored
    first.stop()

    second = serve(encryption_keys=f"k9:{new_key()}", near_ttl="0")  # another key: cannot read
    with httpx.Client(base_url=second.url, headers=HEADERS, timeout=30) as http:
        assert ask(http)[0] == "miss"
        assert value(samples(http), "llmemo_undecryptable_total") == 1
        assert ask(http)[0] == "hit"  # its own answer, stored under its key, replaced the entry
    assert upstream.stats().count(CHAT) == 2
