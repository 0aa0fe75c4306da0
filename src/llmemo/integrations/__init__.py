"""Where users meet llmemo: client wrappers, the memoize decorator, the LangChain cache."""
