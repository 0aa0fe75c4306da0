"""An opt-in check of borderline semantic matches by a cheap LLM (any OpenAI-compatible chat API).

The threshold and the guard decide most candidates. A candidate whose similarity is in the band
[threshold, `trust_from`) can also be put to a small model: "do these two questions ask for the
same thing?". Only a plain "yes" lets it answer; "no", anything else, a timeout or an error is a
miss (so a verifier failure costs an upstream call, never a wrong answer). Verdicts are memoised
in the process, and every call's tokens and list-price dollars are counted (`verifier_*` stats).

Off unless asked: its effect on precision could not be measured where llmemo is built (no provider
is reachable there), so measure it on your traffic with `llmemo calibrate`-style pairs first.
"""

from __future__ import annotations

from typing import Any

import httpx

from llmemo.core.verdict import Verdict, VerifierBase, _unasked


class AsyncLLMVerifier(VerifierBase):
    """Ask an OpenAI-compatible chat model about borderline matches (for a Cache of the same face)."""

    def __init__(self, model: str = "gpt-4o-mini", **options: Any) -> None:
        super().__init__(model, **options)
        self._client = httpx.AsyncClient(timeout=self.timeout)

    async def verify(self, query: str, candidate: str) -> Verdict:
        known = self.remembered(query, candidate)
        if known is not None:
            return Verdict(known)
        try:
            response = await self._client.post(**self._post(query, candidate))
        except httpx.HTTPError as exc:
            return _unasked(exc)
        return self._verdict(query, candidate, response)

    async def close(self) -> None:
        await self._client.aclose()
