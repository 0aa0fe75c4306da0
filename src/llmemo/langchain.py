"""LangChain caches on llmemo: `set_llm_cache(LLMemoSemanticCache.from_url("redis://..."))`.

`LLMemoCache` matches prompts exactly; `LLMemoSemanticCache` also answers paraphrases within the
same model, parameters and conversation. Needs the `langchain` extra (and `semantic` for the latter).
"""

from llmemo.integrations.langchain import LLMemoCache, LLMemoSemanticCache

__all__ = ["LLMemoCache", "LLMemoSemanticCache"]
