"""The semantic layer: exact miss -> embed -> KNN in scope -> threshold -> guard -> hit + backfill.

`SemanticLayer` (sync) and `AsyncSemanticLayer` hold an embedder and a vector index; the Cache
twins call them at three points: after an exact miss (`lookup`, which returns a `SemanticPlan`
the cache carries out), after a fresh answer is stored (`remember`) and after entries are deleted
(`forget`). Every decision is a function of `SemanticBase` without I/O (core/semantic_base.py: is
this call semantic, its index scope, does a candidate pass, the backfill TTL); the I/O is written
once, in core/_async/semantic.py, and the sync layer is generated from it (core/_sync/).

Scope: a candidate must share the request's namespace, version, tenant, context fingerprint
(model, system prompt, earlier turns, parameters, user) and embedding model, as a PRE-filter of
the KNN query (`IndexScope`), so another context can never answer, whatever the similarity.

Fail-open: an embedder or index failure is a miss (counted as `semantic_errors`, logged), never
an error to the caller. Explicit deletions (`forget`) raise instead, as the exact ones do.
"""

from __future__ import annotations

from llmemo.core._async.semantic import AsyncSemanticLayer
from llmemo.core._sync.semantic import SemanticLayer
from llmemo.core.semantic_base import (
    DEFAULT_K,
    DEFAULT_THRESHOLDS,
    EXACT_ONLY,
    LAYER_OPTIONS,
    MAX_CHARS,
    TOUCH_MEMO,
    SemanticBase,
    SemanticPlan,
    check_threshold,
    default_threshold,
    embedding_space,
    log,
)

__all__ = [
    "DEFAULT_K",
    "DEFAULT_THRESHOLDS",
    "EXACT_ONLY",
    "LAYER_OPTIONS",
    "MAX_CHARS",
    "TOUCH_MEMO",
    "AsyncSemanticLayer",
    "SemanticBase",
    "SemanticLayer",
    "SemanticPlan",
    "check_threshold",
    "default_threshold",
    "embedding_space",
    "log",
]
