"""The sensitive-content detectors (positives and near misses) and the policy's parsing."""

from __future__ import annotations

import pytest

from llmemo.core.sensitive import (
    CATEGORIES,
    DEFAULT_SKIP,
    SECRETS,
    SensitivePolicy,
    find,
    iban_ok,
    luhn,
    text_of,
)
from llmemo.errors import ConfigError

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)

FOUND = [
    ("write to alice.smith@example.co.uk today", "email"),
    ("Mail: bob+tag@mail-server.io.", "email"),
    ("call +1 (415) 555-2671 now", "phone"),
    ("call +44 20 7946 0958", "phone"),
    ("call +33 6 12 34 56 78", "phone"),
    ("call +49 30 12345678", "phone"),
    ("call +14155552671", "phone"),
    ("call 020 7946 0958", "phone"),
    ("call 06 12 34 56 78", "phone"),
    ("call (415) 555-2671", "phone"),
    ("call 415-555-2671", "phone"),
    ("call 415.555.2671", "phone"),
    ("call 030 12345678", "phone"),
    ("call 090-1234-5678", "phone"),
    ("call 0044 20 7946 0958", "phone"),
    ("card 4111 1111 1111 1111 exp 12/29", "card"),
    ("card 4111-1111-1111-1111", "card"),
    ("card 4111111111111111", "card"),
    ("amex 3782 822463 10005", "card"),
    ("mc 5555 5555 5555 4444", "card"),
    ("IBAN DE89 3704 0044 0532 0130 00", "iban"),
    ("IBAN GB29NWBK60161331926819 ok", "iban"),
    ("IBAN FR14 2004 1010 0505 0001 3M02 606.", "iban"),
    ("ssn 536-22-1234", "ssn"),
    ("ssn 536 22 1234", "ssn"),
    ("key sk-proj-abcd1234efgh5678ijkl9012mnop", "api_key"),
    ('key = "sk-ant-api03-abcdEFGH1234ijklMNOP5678qrst"', "api_key"),
    ("OPENAI_API_KEY=sk-abcdefghij1234567890ABCDEFGHIJ", "api_key"),
    ("token ghp_1234567890abcdefghijABCDEFGHIJ123456", "api_key"),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV", "api_key"),
    ("slack xoxb-1234567890-abcdefghij", "api_key"),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "api_key"),
    ("stripe sk_live_eEgPHRALUhcYRGGMkOdnSaqN", "api_key"),  # no digit
    ("key sk-abcdefghijklmnopqrstuvwxyzABCDEF", "api_key"),
    ("maps AIzaSyA1234567890abcdefghijklmnopqrstuv", "api_key"),
    ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "aws_key"),
    ("ASIAY34FZKBOKMUTVV7A is the session key", "aws_key"),
    (f"Authorization: Bearer {JWT}", "jwt"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow", "private_key"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----", "private_key"),
    ("-----BEGIN PRIVATE KEY-----", "private_key"),
]

NOT_FOUND = [
    "In 1999-2005 the price was $1,299.99 and version 1.2.3.4",
    "order id 123456789012 and 2023-01-15 at 192.168.100.200",
    "ISBN 978-3-16-148410-0 and build 10.0.19041.1234",
    "Call 1-800-FLOWERS. The year 2024. Pi is 3.14159265358979",
    "use scikit-learn and sk-learn; the sk-ant prefix",
    "sk-learn-pipeline-for-classification and Sk-Learn-Pipeline-For-Classification",
    "the sum 1234 5678 is 6912, dates 01.02.2023 and 03/04/2023",
    "card 4111 1111 1111 1112",  # Luhn fails
    "card 1234 5678 9012 3452",  # Luhn-valid, no card network starts with 1
    "IBAN DE89 3704 0044 0532 0130 01",  # mod-97 fails
    "ssn 666-22-1234, 536-00-1234, 900-12-3456",  # invalid area, group
    "AKIAIOSFODNN7EXAMPL is short",
    "eyJub3QiOiJhIGp3dCJ9.eyJzdWIiOiIxIn0.abcdefabcdef",  # header without "alg"
    "-----BEGIN PUBLIC KEY-----",
    "@app.route('/x') and npm @scope/pkg",
    "the git hash 3f786850e387550fdab836ed7e6dc881de23001b",
    "+1 is a reply; 2+2=4; 5+4567890123 is arithmetic",
]


@pytest.mark.parametrize(("text", "category"), FOUND)
def test_each_category_is_found(text: str, category: str) -> None:
    assert find(text) == {category}
    assert find(text, {category}) == {category}
    assert find(text, CATEGORIES - {category}) == frozenset()


@pytest.mark.parametrize("text", NOT_FOUND)
def test_near_misses_are_not_found(text: str) -> None:
    assert find(text) == frozenset()


def test_several_categories_and_their_digits_are_not_mistaken() -> None:
    text = f"IBAN GB29 NWBK 6016 1331 9268 19, mail a@b.io, key {JWT}"
    assert find(text) == {"iban", "email", "jwt"}  # the IBAN's digits are no card, no phone


def test_checksums() -> None:
    assert luhn("4111111111111111") and not luhn("4111111111111112")
    assert iban_ok("DE89370400440532013000") and not iban_ok("DE89370400440532013001")
    assert not iban_ok("DE8937040044053201300")  # one character short for Germany


def test_the_default_policy_skips_secrets_and_cards() -> None:
    policy = SensitivePolicy()
    assert policy.skip == DEFAULT_SKIP == SECRETS | {"card"}
    assert policy.reasons("mail a@b.io, card 4111 1111 1111 1111", "default") == {"card"}
    assert policy.reasons("nothing here", "default") == frozenset()


def test_parse_adds_removes_and_scopes_by_namespace() -> None:
    policy = SensitivePolicy.parse(
        skip=["email", "faq:phone"],
        allow=["support:secrets", "card"],
        patterns={"employee": r"EMP-\d{6}"},
    )
    assert policy.skips("default") == SECRETS | {"email", "employee"}
    assert policy.skips("faq") == SECRETS | {"email", "employee", "phone"}
    assert policy.skips("support") == {"email", "employee"}
    text = "key sk-proj-abcd1234efgh5678ijkl9012mnop, staff EMP-123456"
    assert policy.reasons(text, "default") == {"api_key", "employee"}
    assert policy.reasons(text, "support") == {"employee"}


def test_allow_all_turns_the_check_off() -> None:
    policy = SensitivePolicy.parse(allow=["all"])
    assert policy.skips("default") == frozenset()
    assert policy.reasons("sk-proj-abcd1234efgh5678ijkl9012mnop", "default") == frozenset()


@pytest.mark.parametrize(
    ("skip", "patterns", "message"),
    [
        (["passwords"], {}, "unknown sensitive category 'passwords'"),
        (["bad ns:email"], {}, "invalid namespace"),
        ([], {"email": "x"}, "not a built-in category"),
        ([], {"Bad-Name": "x"}, "use lowercase letters"),
        ([], {"broken": "("}, "bad regex"),
    ],
)
def test_parse_refuses_what_it_cannot_use(
    skip: list[str], patterns: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        SensitivePolicy.parse(skip=skip, patterns=patterns)


def test_text_of_keeps_the_strings_and_leaves_bookkeeping_out() -> None:
    response = {
        "id": "chatcmpl-12345678901234",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [{"message": {"role": "assistant", "content": "Call +44 20 7946 0958"}}],
    }
    assert text_of(response) == "Call +44 20 7946 0958"
    assert text_of({"a": ["x", {"b": "y"}], "n": 1}) == "x\ny"
