"""Vector indexes for the semantic cache: RediSearch (server-side HNSW) or local (in-process ANN)."""
