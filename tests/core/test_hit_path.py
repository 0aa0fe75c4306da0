"""The hit path's one-pass decode and its frozen values built without the frozen __init__."""

from __future__ import annotations

import dataclasses
import struct

import orjson
import pytest

from llmemo.core.entry import Entry, Usage, decode_parts, encode, read, stored
from llmemo.core.facade import Hit, hit_of
from llmemo.core.frozen import builder, built
from llmemo.core.request import CacheRequest, to_request
from llmemo.errors import CorruptEntryError
from tests.core.helpers import answer

ENTRIES = [
    Entry(answer()),
    Entry(answer("Paris. " * 400), model="m", created=7.5, usage=Usage(3, 900)),  # compressed
    Entry(answer(), tags=("a", "b"), ttl=60.0, stale_after=130.0, prompt="hello", tenant="t"),
    Entry({"id": "x", "nested": {"list": [1, 2.5, None, "é"]}}, user="u", provider="openai"),
]


@pytest.mark.parametrize("entry", ENTRIES)
def test_read_in_one_pass_gives_what_the_long_way_gives(entry: Entry) -> None:
    data = encode(entry)
    assert read(data, "k") == stored(*decode_parts(data, "k"))


def _value(head: object, body: bytes, flags: int = 0) -> bytes:
    raw = orjson.dumps(head)
    return struct.pack(">4sBH", b"LMe1", flags, len(raw)) + raw + body


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"LMe1",
        b"LMe1\x00\x00\x05{bad}xx",
        b"LMe1\x00\x00\x40{}",  # the header runs past the end
        b"LMe1\x01\x00\x02{}not zstd",
        _value([1], b'{"r":{}}'),  # a header that is not an object
        _value({"c": 1}, b'{"r":[1]}'),  # a response that is not an object
        _value({"c": 1}, b"[1]"),
        _value({"c": 1}, b'"text"'),
        _value({"c": "yesterday"}, b'{"r":{}}'),
        _value({"k": ["a", 1]}, b'{"r":{}}'),
        _value({"k": 5}, b'{"r":{}}'),
        _value({"l": "long"}, b'{"r":{}}'),
        _value({"s": [1]}, b'{"r":{}}'),
    ],
)
def test_read_raises_only_corrupt_entry_error(data: bytes) -> None:
    with pytest.raises(CorruptEntryError):
        read(data)


def test_a_built_hit_is_an_ordinary_frozen_hit() -> None:
    found = read(encode(ENTRIES[2]))
    hit = hit_of(found, "key", 140.0)
    assert type(hit) is Hit
    plain = Hit(found.response, "key", 0.0, 140.0, None, Usage(), ("a", "b"), "exact", None, 60.0)
    assert hit == dataclasses.replace(plain, stale=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        hit.key = "other"  # type: ignore[misc]
    assert (
        type(found.usage) is Usage and found.usage == Usage() and hash(found.usage) == hash(Usage())
    )


def test_a_built_request_equals_one_made_by_its_init() -> None:
    made = to_request({"model": "gpt-4o", "messages": [{"role": "user", "content": " hi "}]})
    assert type(made) is CacheRequest
    again = CacheRequest(
        made.provider, made.endpoint, made.model, made.canonical, made.context, "hi", None, False
    )
    assert made == again and hash(made) == hash(again) and made.extra == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.model = "x"  # type: ignore[misc]


def test_builder_needs_a_frozen_dataclass() -> None:
    @dataclasses.dataclass(slots=True)
    class Plain:
        value: int

    with pytest.raises(TypeError):
        builder(Plain)

    @dataclasses.dataclass(frozen=True, slots=True)
    class Point:
        x: int
        y: int = 2

    point = built(Point, builder(Point)(1))
    assert point == Point(1, 2) and type(point) is Point
