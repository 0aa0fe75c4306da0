"""Canonical requests and keys: property tests (hypothesis) and the cases that matter most."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmemo.core.request import (
    Normalisation,
    Scope,
    context_fingerprint,
    digest,
    exact_key,
    from_anthropic,
    from_call,
    from_openai,
    from_prompt,
    lock_key,
    normalise_text,
    to_request,
    with_answer_headers,
)
from llmemo.errors import ConfigError, UnkeyableError

words = st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=8)
sentences = st.lists(words, min_size=1, max_size=8).map(" ".join)
messages = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": sentences}),
    min_size=1,
    max_size=4,
)
# Every output-affecting parameter with two distinct values.
PARAMS: dict[str, tuple[Any, Any]] = {
    "model": ("gpt-4o-mini", "gpt-4o"),
    "temperature": (0, 0.7),
    "top_p": (1, 0.5),
    "max_tokens": (100, 200),
    "max_completion_tokens": (100, 200),
    "stop": (["\n"], ["END"]),
    "seed": (1, 2),
    "n": (1, 2),
    "presence_penalty": (0, 0.5),
    "frequency_penalty": (0, 0.5),
    "logit_bias": ({"50256": -100}, {"50256": 100}),
    "tools": (
        [{"type": "function", "function": {"name": "a"}}],
        [{"type": "function", "function": {"name": "b"}}],
    ),
    "tool_choice": ("auto", "none"),
    "response_format": ({"type": "text"}, {"type": "json_object"}),
    "reasoning_effort": ("low", "high"),
    "logprobs": (False, True),
    "some_future_param": (1, 2),  # unknown parameters are kept
}


def body(msgs: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": msgs, **params}


def key(b: dict[str, Any], scope: Scope | None = None) -> str:
    return digest(to_request(b), scope or Scope())


def reorder(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: reorder(obj[k]) for k in reversed(list(obj))}
    if isinstance(obj, list):
        return [reorder(v) for v in obj]
    return obj


def spaced(text: str) -> str:
    return "  " + text.replace(" ", "   \t ") + " \n"


@given(messages, st.sampled_from(sorted(PARAMS)))
@settings(max_examples=150, deadline=None)
def test_key_order_and_whitespace_do_not_change_the_key(
    msgs: list[dict[str, Any]], name: str
) -> None:
    original = body(msgs, **{name: PARAMS[name][0]})
    noisy = copy.deepcopy(reorder(original))
    for m in noisy["messages"]:
        m["content"] = spaced(m["content"])
    assert key(original) == key(noisy)


@given(messages, st.sampled_from(sorted(PARAMS)))
@settings(max_examples=150, deadline=None)
def test_every_output_affecting_parameter_changes_the_key(
    msgs: list[dict[str, Any]], name: str
) -> None:
    a, b = PARAMS[name]
    assert key(body(msgs, **{name: a})) != key(body(msgs, **{name: b}))


@given(messages, st.integers(min_value=0, max_value=3), words)
@settings(max_examples=150, deadline=None)
def test_any_message_change_changes_the_key(
    msgs: list[dict[str, Any]], index: int, word: str
) -> None:
    changed = copy.deepcopy(msgs)
    i = index % len(changed)
    changed[i]["content"] = changed[i]["content"] + " " + word
    assert key(body(msgs)) != key(body(changed))
    roles = copy.deepcopy(msgs)
    roles[i]["role"] = "system"
    assert key(body(msgs)) != key(body(roles))


@pytest.mark.parametrize(
    "neutral",
    [
        {"stream": True},
        {"user": "u-42"},
        {"timeout": 30},
        {"metadata": {"trace": "x"}},
        {"stream_options": {"include_usage": True}},
    ],
)
def test_output_neutral_parameters_are_dropped(neutral: dict[str, Any]) -> None:
    msgs = [{"role": "user", "content": "hi"}]
    assert key(body(msgs)) == key(body(msgs, **neutral))


def test_numbers_and_text_parts() -> None:
    msgs = [{"role": "user", "content": "hi"}]
    assert key(body(msgs, temperature=1)) == key(body(msgs, temperature=1.0))
    parts = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert key(body(msgs)) == key(body(parts))
    assert key(body(msgs, temperature=None)) == key(body(msgs))


def test_case_folding_is_opt_in() -> None:
    assert normalise_text("Hello  World") == "Hello World"
    assert normalise_text("Hello", Normalisation(casefold=True)) == "hello"
    a = to_request(body([{"role": "user", "content": "Hi"}]))
    b = to_request(body([{"role": "user", "content": "hi"}]))
    assert a.canonical != b.canonical


def test_indentation_is_kept() -> None:
    code = "def f():\n    return 1"
    assert normalise_text(code) == code
    assert normalise_text("a\n\n\n\nb") == "a\n\nb"


def test_anthropic_bodies() -> None:
    base = {
        "model": "claude-sonnet-4",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    assert to_request({**base, "system": "x"}).provider == "anthropic"
    blocks = {
        **base,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    }
    assert digest(from_anthropic(blocks), Scope()) == digest(
        from_anthropic({**base, "system": [{"type": "text", "text": "Be brief."}]}), Scope()
    )
    thinking = {**base, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    assert digest(from_anthropic(thinking), Scope()) != digest(from_anthropic(base), Scope())
    assert digest(from_anthropic({**base, "metadata": {"user_id": "u"}}), Scope()) == digest(
        from_anthropic(base), Scope()
    )


def test_openai_endpoints() -> None:
    completion = from_openai({"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"}, "completions")
    embedding = from_openai({"model": "text-embedding-3-small", "input": ["a", "b"]}, "embeddings")
    assert completion.endpoint == "completions"
    assert completion.semantic_text == "Say hi"
    assert embedding.semantic_text is None
    assert digest(completion, Scope()) != digest(embedding, Scope())


def test_scope_tenant_and_user_change_the_key_but_tags_do_not() -> None:
    b = body([{"role": "user", "content": "hi"}])
    base = key(b)
    assert key(b, Scope(tenant="a")) != base
    assert key(b, Scope(tenant="a")) != key(b, Scope(tenant="b"))
    assert key(b, Scope(user="u")) != base
    assert key(b, Scope(tags=("faq",))) == base


def test_context_fingerprint_ignores_only_the_last_user_message() -> None:
    def fp(system: str, last: str, model: str = "gpt-4o-mini", tenant: str | None = None) -> str:
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": last}]
        return context_fingerprint(
            to_request({"model": model, "messages": msgs}), Scope(tenant=tenant)
        )

    assert fp("Be brief.", "Capital of France?") == fp(
        "Be brief.", "Which city is France's capital?"
    )
    assert fp("Be brief.", "x") != fp("Answer in French.", "x")
    assert fp("Be brief.", "x") != fp("Be brief.", "x", model="gpt-4o")
    assert fp("Be brief.", "x") != fp("Be brief.", "x", tenant="acme")
    r = to_request(body([{"role": "user", "content": "What is  2+2?"}]))
    assert r.semantic_text == "What is 2+2?"


def test_keys_share_a_cluster_slot_with_their_lock() -> None:
    sha = "ab" * 32
    k, lock = exact_key("llmemo", "app", 3, sha), lock_key("llmemo", "app", 3, sha)
    assert k == f"llmemo:app:3:x:{{{sha}}}"
    assert k[k.index("{") :] == lock[lock.index("{") :]


def test_prompt_pairs_and_calls() -> None:
    a = from_prompt("Tell me a joke", '{"model_name": "gpt-4o", "temperature": 0.2}')
    b = from_prompt("Tell me a joke", '{"model_name": "gpt-4o", "temperature": 0.9}')
    assert a.model == "gpt-4o"
    assert a.temperature == 0.2
    assert a.canonical != b.canonical
    assert a.context != b.context
    assert (
        from_call("f", (1, "x"), {"k": [1.0]}).canonical
        == from_call("f", (1, "x"), {"k": [1]}).canonical
    )
    with pytest.raises(UnkeyableError, match="key="):
        from_call("f", (object(),), {})


@pytest.mark.parametrize(
    "bad",
    [
        {"messages": [{"role": "user", "content": "hi"}]},
        {"model": "m", "messages": []},
        {"model": "m"},
        ["not", "a", "dict"],
    ],
)
def test_bad_requests_are_clear_errors(bad: Any) -> None:
    with pytest.raises(UnkeyableError):
        to_request(bad)


def test_bad_names() -> None:
    with pytest.raises(ConfigError, match="namespace"):
        Scope(namespace="has space")
    with pytest.raises(ConfigError, match="tag"):
        Scope(tags=("a:b",))


def test_a_minimal_anthropic_body_is_told_apart_by_its_model() -> None:
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    assert to_request(body).provider == "anthropic"
    assert digest(to_request(body), Scope()) == digest(from_anthropic(body), Scope())


def test_headers_that_change_the_answer_change_the_key_and_the_context() -> None:
    request = from_anthropic(
        {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]}
    )
    scope = Scope()
    betas = with_answer_headers(request, {"anthropic-beta": "b-1, a-2", "x-other": "1"})
    assert digest(betas, scope) != digest(request, scope)
    assert context_fingerprint(betas, scope) != context_fingerprint(request, scope)
    assert betas == with_answer_headers(request, {"anthropic-beta": "a-2,b-1"})  # order, spaces
    assert with_answer_headers(request, {"openai-beta": "assistants=v2"}) != betas
    # absent, empty, unrelated, or the provider's default version: the key stays as it was
    for headers in (
        {},
        {"anthropic-beta": " "},
        {"x-other": "1"},
        {"anthropic-version": "2023-06-01"},
    ):
        assert with_answer_headers(request, headers) is request
    assert with_answer_headers(request, {"anthropic-version": "2099-01-01"}) != request


# Keys written by earlier releases must be found again: the sha of these bodies is pinned (key
# scheme llmemo-key/1). A change here means stored entries are orphaned: bump the scheme.
PINNED_KEYS: list[tuple[dict[str, Any], str]] = [
    (
        {
            "model": "claude-3",
            "max_tokens": 5,
            "system": [{"type": "text", "text": " hi  ", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "a\r\nb"}]}],
        },
        "7483cffa4415c45d286d939e5ca08fd2de59ae1e1012380e772bf2ae5378b5e2",
    ),
    (
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "user", "content": "x", "name": "n"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "1", "content": "r"},
            ],
            "temperature": 1.0,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "metadata": {"a": 1},
            "stream": True,
        },
        "23ebcfbe5aad101682773b8ab9f415f3d9d665e7c4b65e1aa015fa5655f210e0",
    ),
    (
        {"model": "gpt-4o", "input": "hello  there", "instructions": " be brief ", "store": False},
        "1b3f0bee4c1167d957aae9634eee066d4117e2f955283d314617afa026347c91",
    ),
    (
        {"model": "gpt-4o", "prompt": "x", "max_tokens": 2.0},
        "036a9ed6f0563e55cd9e966d14689610b45a012e51a9213aa6022744c0667a39",
    ),
    (
        {"model": "text-embedding-3-small", "input": ["a", "b"]},
        "a0e1ae7ecb84541d9264a3fac3d4fc9ff7a14d7cb10b727070394429f290b818",
    ),
    (
        {
            "model": "gpt-4o-mini",
            "temperature": 0.2,
            "max_tokens": 512,
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "How do I learn Python  quickly?\n"},
            ],
        },
        "15ff93dca437ac0555f8964f788cf604f608582c2ac5c94302caa84784b9108f",
    ),
]


@pytest.mark.parametrize(("request_body", "sha"), PINNED_KEYS)
def test_keys_are_stable_across_releases(request_body: dict[str, Any], sha: str) -> None:
    assert key(request_body) == sha


untidy = st.text(alphabet=st.sampled_from(list("ab  \t\n\r\u00a0\u2003")), max_size=12)
plain_messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "assistant"]), "content": untidy | sentences},
        optional={"name": st.sampled_from(["ann", "bob"]), "refusal": st.none()},
    ),
    min_size=1,
    max_size=4,
)
scalars = st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats() | sentences
plain_params = st.dictionaries(
    st.sampled_from(["temperature", "top_p", "max_tokens", "seed", "n", "user", "stream", "x"]),
    scalars,
    max_size=5,
)


@given(plain_messages, plain_params)
@settings(max_examples=300, deadline=None)
def test_the_one_pass_chat_path_keys_as_the_general_path(
    msgs: list[dict[str, Any]], params: dict[str, Any]
) -> None:
    from llmemo.core.request import DEFAULT_NORMALISATION, _chat, _plain_chat

    b = body(msgs, **params)
    try:
        general = _chat("openai", "chat", b, DEFAULT_NORMALISATION)
    except UnkeyableError:  # e.g. a `stream` that is not a boolean: refused on both paths
        with pytest.raises(UnkeyableError):
            _plain_chat(b, DEFAULT_NORMALISATION)
        return
    plain = _plain_chat(b, DEFAULT_NORMALISATION)
    assert plain is not None
    assert (plain.canonical, plain.context, plain.semantic_text, plain.stream) == (
        general.canonical,
        general.context,
        general.semantic_text,
        general.stream,
    )
    assert plain.temperature == general.temperature or plain.temperature != plain.temperature
