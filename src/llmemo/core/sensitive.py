"""Sensitive-content detectors, as pure functions: which categories a text holds, never the text.

Each detector is a compiled regex that finds candidates and, where the format has one, a checksum
that confirms them (Luhn for cards, ISO 13616 mod-97 for IBANs, the SSA's rules for US social
security numbers, a JSON header with "alg" for JWTs). A substring test runs first, so a prompt with
nothing of the kind costs a few scans of its text (docs/benchmarks.md, "Sensitive content").
The matched text is never returned, logged or kept: only the category names.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import orjson

from llmemo.core.request import check_name
from llmemo.errors import ConfigError

EMAIL = "email"
PHONE = "phone"
CARD = "card"
IBAN = "iban"
SSN = "ssn"
API_KEY = "api_key"
AWS_KEY = "aws_key"
JWT = "jwt"
PRIVATE_KEY = "private_key"

SECRETS = frozenset({API_KEY, AWS_KEY, JWT, PRIVATE_KEY})
PERSONAL = frozenset({EMAIL, PHONE, CARD, IBAN, SSN})
CATEGORIES = SECRETS | PERSONAL
"""Every built-in category."""
_NUMBERED = frozenset({CARD, PHONE, SSN, IBAN})

_EMAIL = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
)

# Provider API keys: a fixed prefix, then the key's own alphabet and length. The lookbehinds come
# after the literal prefix, so the regex engine searches for the prefix first (fast).
_API_KEYS = (
    ("sk-", re.compile(r"sk-(?<![\w\-]sk-)(?:ant-|proj-|svcacct-|admin-)?[\w\-]{20,}", re.A)),
    ("k_live_", re.compile(r"[sr]k_live_(?<![\w][sr]k_live_)[A-Za-z0-9]{20,}", re.A)),
    ("gh", re.compile(r"gh[pousr]_(?<![\w]gh[pousr]_)[A-Za-z0-9]{36,}", re.A)),
    ("github_pat_", re.compile(r"github_pat_[A-Za-z0-9_]{50,}", re.A)),
    ("xox", re.compile(r"xox[abposre]-(?<![\w]xox[abposre]-)[A-Za-z0-9\-]{10,}", re.A)),
    ("AIza", re.compile(r"AIza(?<![\w\-]AIza)[\w\-]{35}(?![\w\-])", re.A)),
)
_RANDOM = re.compile(r"[0-9]|[a-z][^-]*[A-Z]")  # a digit, or an upper case letter after a lower
_AWS = re.compile(r"A[KS]IA(?<![A-Z0-9]A[KS]IA)[A-Z0-9]{16}(?![A-Z0-9])")
_JWT = re.compile(r"(eyJ(?<![\w\-]eyJ)[\w\-]{8,})\.eyJ[\w\-]{4,}\.[\w\-]*", re.A)
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")

# Runs of at least 7 digits with single separators (space, dash, dot, slash, parentheses) between
# them: the candidates for cards, phone numbers and SSNs (a "+" or "(" before one is added to it).
_NUMBER = re.compile(r"[0-9](?:(?:[ \-./]|\) ?|\.? )?\(?[0-9]){6,22}(?![\w\-]|[.,][0-9])", re.A)
_SEVEN_DIGITS = re.compile(r"[0-9](?:[^0-9]{0,2}[0-9]){6}")
_BEFORE_NUMBER = (
    frozenset("+-.,/_")
    | frozenset("0123456789")
    | frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
)  # a digit run right after one of these is part of a word, a version or a sum
_NANP = re.compile(r"(?:1[ .\-])?(?:\([2-9]\d\d\) ?|[2-9]\d\d[ .\-])[2-9]\d\d[ .\-]\d{4}", re.A)
_TRUNK = re.compile(r"\(?0[1-9]\d{0,4}\)?(?:[ \-./]\d{2,8}){1,4}", re.A)
_SSN = re.compile(r"(\d{3})([ \-])(\d{2})\2(\d{4})", re.A)
_CARD_GROUPS = re.compile(r"\d{13,19}|\d{4,6}([ \-])\d{4,6}(?:\1\d{1,6}){1,3}", re.A)
_IBAN = re.compile(r"([A-Z]{2}[0-9]{2}(?<![A-Za-z0-9][A-Z]{2}[0-9]{2})(?: ?[A-Z0-9]){11,32})")

# ISO 13616 lengths by country (SWIFT's IBAN registry).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30,
    "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def luhn(digits: str) -> bool:
    """The Luhn check of a string of digits (payment cards)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_brand_ok(digits: str) -> bool:
    """Does a number's issuer prefix (IIN) and length fit a card network?"""
    n, two, three, four = len(digits), int(digits[:2]), int(digits[:3]), int(digits[:4])
    if digits[0] == "4":  # Visa
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:  # Mastercard
        return n == 16
    if two in (34, 37):  # American Express
        return n == 15
    if four == 6011 or two in (62, 65) or 644 <= three <= 649:  # Discover, UnionPay
        return 16 <= n <= 19
    if 3528 <= four <= 3589:  # JCB
        return 16 <= n <= 19
    if 300 <= three <= 305 or two in (36, 38, 39):  # Diners Club
        return 14 <= n <= 19
    if two == 50 or 56 <= two <= 69:  # Maestro
        return 12 <= n <= 19
    return False


def iban_ok(compact: str) -> bool:
    """ISO 13616: the country's length and the mod-97 checksum of an IBAN without spaces."""
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in moved)
    return int(number) % 97 == 1


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """The SSA's rules: no 000, 666 or 9xx area, no 00 group, no 0000 serial."""
    return (
        area not in ("000", "666")
        and area[0] != "9"
        and group != "00"
        and serial != "0000"
        and (area, group, serial) not in (("078", "05", "1120"), ("219", "09", "9999"))
    )


def jwt_ok(header: str) -> bool:
    """Does a JWT's first part decode to a JSON object with an "alg"?"""
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


def _number_kinds(candidate: str) -> set[str]:
    """The categories a digit run is (card, ssn, phone): its shape, then its checksum."""
    digits = "".join(char for char in candidate if char.isdigit())
    n, kinds = len(digits), set()
    plain = candidate.lstrip("+")
    if (
        13 <= n <= 19
        and "+" not in candidate
        and _CARD_GROUPS.fullmatch(candidate)
        and card_brand_ok(digits)
        and luhn(digits)
    ):
        kinds.add(CARD)
    if n == 9:
        ssn = _SSN.fullmatch(candidate)
        if ssn is not None and ssn_ok(ssn[1], ssn[3], ssn[4]):
            kinds.add(SSN)
    if candidate[0] == "+":
        if 8 <= n <= 15 and plain[:1] != "0":
            kinds.add(PHONE)
    elif candidate.startswith("00"):
        if 10 <= n <= 15 and n != len(candidate):  # "0044 20 7946 0958": international prefix
            kinds.add(PHONE)
    elif _NANP.fullmatch(candidate) or (10 <= n <= 12 and _TRUNK.fullmatch(candidate)):
        kinds.add(PHONE)
    return kinds


def _numbers(text: str, start: int, wanted: frozenset[str], found: set[str]) -> None:
    for match in _NUMBER.finditer(text, start):  # (a digit first: the regex scans fast)
        begin = match.start()
        if begin and text[begin - 1] in "+(":  # "+44 20 ...", "(415) 555-..."
            begin -= 1
        if begin and text[begin - 1] in _BEFORE_NUMBER:
            continue
        found.update(_number_kinds(text[begin : match.end()]) & wanted)
        if wanted & _NUMBERED <= found:
            return


def _secrets(text: str, wanted: frozenset[str], found: set[str]) -> None:
    if API_KEY in wanted:
        for needle, pattern in _API_KEYS:
            if needle in text:
                for match in pattern.finditer(text):
                    # "sk-" also starts hyphenated words ("sk-learn-..."): a key looks random
                    if needle != "sk-" or _RANDOM.search(match[0], 3):
                        found.add(API_KEY)
                        break
    if AWS_KEY in wanted and ("AKIA" in text or "ASIA" in text) and _AWS.search(text):
        found.add(AWS_KEY)
    if JWT in wanted and "eyJ" in text and any(jwt_ok(m[1]) for m in _JWT.finditer(text)):
        found.add(JWT)
    if PRIVATE_KEY in wanted and "-----BEGIN" in text and _PEM.search(text):
        found.add(PRIVATE_KEY)


Custom = tuple[tuple[str, "re.Pattern[str]"], ...]


def find(text: str, categories: Iterable[str] = CATEGORIES, custom: Custom = ()) -> frozenset[str]:
    """The categories among `categories` (and custom `(name, regex)` patterns) found in `text`."""
    wanted = frozenset(categories)
    found: set[str] = set()
    if wanted & SECRETS:
        _secrets(text, wanted, found)
    if EMAIL in wanted and "@" in text and _EMAIL.search(text):
        found.add(EMAIL)
    digits = _SEVEN_DIGITS.search(text) if wanted & _NUMBERED else None
    if digits is not None:  # every card, phone number, SSN and IBAN has 7 digits close together
        start = max(0, digits.start() - 16)  # an IBAN's first digit run is within 16 of its start
        text = _mask_ibans(text, start, wanted, found)
        if wanted & {CARD, PHONE, SSN}:
            _numbers(text, start, wanted, found)
    for name, pattern in custom:
        if name in wanted and pattern.search(text):
            found.add(name)
    return frozenset(found)


_META = frozenset(
    ("id", "object", "model", "created", "system_fingerprint", "role", "type", "finish_reason",
     "stop_reason", "endpoint", "provider", "service_tier")
)  # fmt: skip


def text_of(value: object) -> str:
    """The strings of a JSON document (a request or a response), one per line: what is checked.
    Keys and numbers are left out, and so are the values of bookkeeping fields (ids, model names,
    timestamps), whose digits would only make the check slower."""
    parts: list[str] = []
    _collect(value, parts)
    return "\n".join(parts)


def _collect(value: object, parts: list[str]) -> None:
    if isinstance(value, str):
        parts.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in _META:
                _collect(item, parts)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, parts)


def _mask_ibans(text: str, start: int, wanted: frozenset[str], found: set[str]) -> str:
    """Find IBANs (when wanted) and blank out every valid one, so its digits are no card or phone."""
    spans: list[tuple[int, int]] = []
    for match in _IBAN.finditer(text, start):
        compact = match[1].replace(" ", "")
        length = _IBAN_LENGTHS.get(compact[:2])
        if length is None or len(compact) < length or not iban_ok(compact[:length]):
            continue
        end, seen = match.start(1), 0
        while seen < length:  # the end of the IBAN's characters within the match (spaces too)
            if text[end] != " ":
                seen += 1
            end += 1
        spans.append((match.start(1), end))
    if spans and IBAN in wanted:
        found.add(IBAN)
    for start, end in reversed(spans):
        text = text[:start] + " " * (end - start) + text[end:]
    return text


SKIP_SENSITIVE = "sensitive"
"""The skip reason of an answer not stored for what it or its request holds."""
DEFAULT_SKIP = SECRETS | {CARD}
"""What is never stored unless allowed: secrets and payment card numbers."""
ALIASES: Mapping[str, frozenset[str]] = {"secrets": SECRETS, "personal": PERSONAL}
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


@dataclass(frozen=True)
class SensitivePolicy:
    """Which found categories keep an answer out of the cache (served, never stored or embedded).

    skip: the categories skipped in every namespace; namespaces: per-namespace skip sets that
    replace it; patterns: custom `(name, regex)` categories (skipped unless allowed).
    """

    skip: frozenset[str] = DEFAULT_SKIP
    namespaces: Mapping[str, frozenset[str]] = field(default_factory=dict)
    patterns: Custom = ()

    def skips(self, namespace: str) -> frozenset[str]:
        """The categories skipped in this namespace (empty: nothing is checked there)."""
        return self.namespaces.get(namespace, self.skip)

    def reasons(self, text: str, namespace: str) -> frozenset[str]:
        """The skipped categories found in `text` (empty: it may be stored)."""
        wanted = self.namespaces.get(namespace, self.skip)
        return find(text, wanted, self.patterns) if wanted else wanted

    @classmethod
    def parse(
        cls,
        skip: Iterable[str] = (),
        allow: Iterable[str] = (),
        patterns: Mapping[str, str] | None = None,
    ) -> SensitivePolicy:
        """A policy from settings' lists: each item a category, an alias (`secrets`, `personal`,
        `all`) or a custom pattern's name, optionally `namespace:` before it to apply to one
        namespace only. Defaults first, then `skip` adds, then `allow` removes (a namespace's
        items after the global ones). ConfigError for an unknown name or a bad regex."""
        custom: list[tuple[str, re.Pattern[str]]] = []
        for name, regex in (patterns or {}).items():
            if not _NAME.fullmatch(name) or name in CATEGORIES or name in ALIASES or name == "all":
                raise ConfigError(
                    f"sensitive pattern name {name!r}: use lowercase letters, digits and '_', "
                    "not a built-in category"
                )
            try:
                custom.append((name, re.compile(regex)))
            except re.error as exc:
                raise ConfigError(f"sensitive pattern {name!r}: bad regex: {exc}") from None
        known = CATEGORIES | {name for name, _ in custom}
        base = DEFAULT_SKIP | {name for name, _ in custom}
        steps: dict[str, list[tuple[bool, frozenset[str]]]] = {}  # namespace -> its own items
        for items, adding in ((skip, True), (allow, False)):
            for item in items:
                namespace, _, name = item.strip().rpartition(":")
                names = _names(name.strip(), known)
                if namespace:
                    steps.setdefault(check_name("namespace", namespace.strip()), []).append(
                        (adding, names)
                    )
                else:
                    base = base | names if adding else base - names
        namespaces = {}
        for namespace, changes in steps.items():
            skipped = base
            for adding, names in changes:
                skipped = skipped | names if adding else skipped - names
            namespaces[namespace] = skipped
        return cls(base, namespaces, tuple(custom))


def _names(name: str, known: frozenset[str]) -> frozenset[str]:
    if name == "all":
        return known
    if name in ALIASES:
        return ALIASES[name]
    if name in known:
        return frozenset({name})
    raise ConfigError(
        f"unknown sensitive category {name!r}: use one of {', '.join(sorted(known))}, "
        "secrets, personal or all"
    )
