"""llmemo: an LLM response cache on Redis."""
