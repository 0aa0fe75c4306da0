"""core/erase.py: the pure parts of a wipe (the target, the report, reading keys back)."""

from __future__ import annotations

import pytest

from llmemo.core.erase import (
    WipeReport,
    WipeTarget,
    entry_of_record,
    local_shape,
    namespace_of_entry,
    namespace_of_meta,
)
from llmemo.errors import ConfigError
from llmemo.index.base import index_name
from llmemo.stores import keys

ENTRY = keys.exact_key("p", "faq", 3, "ab" * 32)


def test_a_target_needs_a_user_or_a_tenant() -> None:
    assert WipeTarget(user="u").tenant is None
    with pytest.raises(ConfigError):
        WipeTarget()
    with pytest.raises(ConfigError):
        WipeTarget(tenant="")


def test_the_report_sums_what_it_deleted() -> None:
    report = WipeReport(entries=2, vectors=1, embeddings=3, namespaces=4, feedback=5)
    assert report.deleted == 11
    assert report.to_dict() == {
        "entries": 2,
        "vectors": 1,
        "embeddings": 3,
        "warm": 0,
        "namespaces": 4,
        "feedback": 5,
        "deleted": 11,
    }


def test_keys_read_back() -> None:
    local = keys.vector_record(index_name("p", 384, "float16"), ENTRY)
    search = keys.vector_record(keys.search_index("p", 2, "float32", 8), ENTRY)
    assert entry_of_record(local) == ENTRY == entry_of_record(search)
    assert local_shape("p", local) == ("float16", 384)
    assert local_shape("p", search) is None  # RediSearch: no change log
    assert local_shape("other", local) is None
    assert namespace_of_entry("p", ENTRY) == "faq"
    assert namespace_of_meta("p", keys.meta_key("p", "faq")) == "faq"
    assert namespace_of_meta("p", keys.stats_key("p", "faq")) is None
    assert namespace_of_meta("p", "p:a:b:meta") is None
