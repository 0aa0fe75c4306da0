"""An opt-in check of borderline semantic matches by a cheap LLM: `LLMVerifier` and
`AsyncLLMVerifier` (written once in `core/_async/verify.py`, the sync one generated)."""

from llmemo.core._async.verify import AsyncLLMVerifier
from llmemo.core._sync.verify import LLMVerifier
from llmemo.core.verdict import MEMO, SYSTEM, Verdict

__all__ = ["MEMO", "SYSTEM", "AsyncLLMVerifier", "LLMVerifier", "Verdict"]
