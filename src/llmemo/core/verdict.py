"""What both LLM verifiers share without I/O: the question, reading the answer, the memo, the
Verdict (the verifiers themselves: `core/_async/verify.py`; the public names: `core.verify`)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from llmemo.core.entry import Usage
from llmemo.core.pricing import DEFAULT_PRICES, Price, cost
from llmemo.errors import ConfigError

SYSTEM = (
    "You decide whether two user requests to an assistant ask for the same thing, so that one "
    "answer serves both. Differences in wording do not matter; different numbers, names, "
    "conditions, negations or scope do. Reply with one word: yes or no."
)
MEMO = 10_000  # verdicts remembered per verifier (emptied when full)
_NOTHING = Usage()


@dataclass(frozen=True)
class Verdict:
    """What the model said: same (None when it could not be asked or gave no clear answer)."""

    same: bool | None
    usage: Usage = _NOTHING
    dollars: float = 0.0
    error: str | None = None
    asked: bool = False  # a request was made (not a remembered verdict)


class VerifierBase:
    """Configuration, the memo and the question/answer both verifiers share (no I/O)."""

    def __init__(
        self,
        model: str = "gpt-4o-mini",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        trust_from: float = 0.97,
        timeout: float = 5.0,
        prices: Mapping[str, Price] = DEFAULT_PRICES,
    ) -> None:
        if not 0.0 <= trust_from <= 1.0:
            raise ConfigError(f"trust_from must be a cosine similarity in [0, 1], got {trust_from}")
        self.model = model
        self.base_url = (
            base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        ).rstrip("/")
        key = api_key or os.environ.get("OPENAI_API_KEY")
        self._headers = {"authorization": f"Bearer {key}"} if key else {}
        self.trust_from = trust_from
        self.timeout = timeout
        self.prices = prices
        self._memo: dict[bytes, bool] = {}  # sha256 of the pair -> verdict (fixed-size keys)

    def needed(self, similarity: float) -> bool:
        """Is a match this similar borderline (to be checked), rather than trusted as it is?"""
        return similarity < self.trust_from

    def remembered(self, query: str, candidate: str) -> bool | None:
        return self._memo.get(_pair(query, candidate))

    def _post(self, query: str, candidate: str) -> dict[str, Any]:
        """The `httpx` post arguments of one question."""
        return {
            "url": f"{self.base_url}/chat/completions",
            "json": self._body(query, candidate),
            "headers": self._headers,
        }

    def _body(self, query: str, candidate: str) -> dict[str, Any]:
        return {
            "model": self.model,
            "temperature": 0,
            "max_tokens": 2,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Request A: {query}\nRequest B: {candidate}"},
            ],
        }

    def _verdict(self, query: str, candidate: str, response: httpx.Response) -> Verdict:
        if response.status_code != 200:
            return Verdict(None, error=f"HTTP {response.status_code}", asked=True)
        try:
            data = response.json()
            text = str(data["choices"][0]["message"]["content"] or "")
            raw = data.get("usage") or {}
            usage = Usage(int(raw.get("prompt_tokens", 0)), int(raw.get("completion_tokens", 0)))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return Verdict(None, error=f"unreadable answer: {exc}", asked=True)
        word = text.strip().strip(".!").lower()
        same = True if word == "yes" else False if word == "no" else None
        if same is not None:
            if len(self._memo) >= MEMO:
                self._memo = {}
            self._memo[_pair(query, candidate)] = same
        error = None if same is not None else f"neither yes nor no: {text[:40]!r}"
        return Verdict(same, usage, cost(self.model, usage, self.prices), error, asked=True)


def _unasked(exc: httpx.HTTPError) -> Verdict:
    """The verdict of a question the model could not be reached with (a miss)."""
    return Verdict(None, error=f"{type(exc).__name__}: {exc}", asked=True)


def _pair(query: str, candidate: str) -> bytes:
    return hashlib.sha256(f"{len(query)}:{query}\n{candidate}".encode()).digest()
