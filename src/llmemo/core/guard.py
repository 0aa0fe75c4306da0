"""The guard: reject a semantic candidate whose numbers, negation or named entities differ.

Embeddings put "Is 7 prime?" next to "Is 9 prime?" and "Can I ...?" next to "Can't I ...?": the
words that decide the answer are a small part of the text. These pure functions compare exactly
those words. A candidate is rejected (a miss, never a wrong answer) when:

- numbers: the numbers differ, in value or order ("10", "10.0" and "ten" are one value);
- negation: one text is negated and the other is not ("can I" / "can't I", "is" / "isn't");
- entities: the names differ, or appear in another order ("convert 10 USD to EUR" / "... EUR to
  USD"). A name is a quoted phrase, an acronym or mixed-case word (USD, iPhone), or a capitalised
  word that does not start a sentence. Case is unreliable in typed prompts ("france"), so a name
  found in either text is looked for, case-insensitively, in both.

Cheap (a regex pass per text, memoised) and deliberately conservative: a rejected paraphrase
costs one upstream call, an accepted look-alike costs a wrong answer.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

Reason = str
"""Why a candidate was rejected: "numbers", "negation" or "entities"."""

_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+(?:['’][^\W\d_]+)*", re.UNICODE)
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|‘([^’]+)’|(?<!\w)'([^']+)'(?!\w)")
_SENTENCE_END = re.compile(r"[.!?:;]+[\"')\]]*$")
_NEGATIONS = frozenset(
    {
        "not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor",
        "cannot", "without",
        # typed without the apostrophe
        "dont", "doesnt", "didnt", "cant", "couldnt", "wont", "wouldnt", "shouldnt", "isnt",
        "arent", "wasnt", "werent", "havent", "hasnt", "hadnt", "mustnt", "neednt", "aint",
    }
)  # fmt: skip
_NUMBER_WORDS = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90, "hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9,
}  # fmt: skip
# "one" is left out: far more often a pronoun ("which one") than a count.
# Capitalised function words are not names (titles, shouting, "Is It True That ...").
_COMMON_WORDS = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself of off on once only or other our ours ourselves out over own same
    she should so some such than that the their theirs them themselves then there these they this
    those through to too under until up very was we were what when where which while who whom why
    will with would you your yours yourself yourselves also best better good new way ways
    vs versus please
"""
_COMMON = frozenset(_COMMON_WORDS.split())


@dataclass(frozen=True)
class Guard:
    """Which differences reject a candidate. `Guard()` checks all three; `Guard.off()` none."""

    numbers: bool = True
    negation: bool = True
    entities: bool = True
    entity_order: bool = True  # "USD to EUR" vs "EUR to USD" differ; False compares the sets only

    @classmethod
    def off(cls) -> Guard:
        """A guard that accepts every candidate (the threshold alone decides)."""
        return cls(numbers=False, negation=False, entities=False, entity_order=False)

    @property
    def active(self) -> bool:
        return self.numbers or self.negation or self.entities

    def reject(self, query: str, candidate: str) -> Reason | None:
        """None when `candidate` may answer `query`; else which check failed."""
        if not self.active or query == candidate:
            return None
        q, c = features(query), features(candidate)
        if self.numbers and q.numbers != c.numbers:
            return "numbers"
        if self.negation and q.negated != c.negated:
            return "negation"
        if self.entities and entities_differ(q, c, self.entity_order):
            return "entities"
        return None


@dataclass(frozen=True)
class Features:
    """What the guard compares, read once per text."""

    words: tuple[str, ...]  # lowercased stems (no plural or possessive "s"), in order
    numbers: tuple[str, ...]  # canonical numbers in order
    negated: bool
    names: frozenset[str]  # lowercased name candidates (see the module doc)


def canonical_number(token: str) -> str:
    """ "10,000" -> "10000", "3.50" -> "3.5", "007" -> "7", "ten" -> "10"."""
    word = _NUMBER_WORDS.get(token.lower())
    if word is not None:
        return str(word)
    digits = token.replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+", token) else token
    digits = digits.replace(",", ".")
    whole, _, frac = digits.partition(".")
    whole = whole.lstrip("0") or "0"
    frac = frac.rstrip("0")
    return f"{whole}.{frac}" if frac else whole


def _word(token: str) -> str:
    """A token's comparison form: lowercased, without a possessive or plural "s" ("Indians'",
    "Indian's" and "indians" are all "indian"), apostrophes dropped ("don't" -> "dont")."""
    word = token.lower().replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    word = word.replace("'", "")
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    return word


def _is_name(token: str, sentence_start: bool, title_case: bool) -> bool:
    """Is this token a name by its shape (acronym, mixed case, or capitalised mid-sentence)?"""
    if not token[0].isalpha() or token.lower() in _COMMON or _word(token) in _COMMON:
        return False
    upper_inside = any(ch.isupper() for ch in token[1:])
    if upper_inside and len(token) >= 2:  # USD, iPhone, McDonald
        return not (title_case and token.isupper() and len(token) > 4)
    return token[0].isupper() and not sentence_start and not title_case


@functools.lru_cache(maxsize=8192)
def features(text: str) -> Features:
    """The guard's view of one text (memoised: the same prompts come back again and again)."""
    raw = [(m.group(0), m.start()) for m in _TOKEN.finditer(text)]
    inner = [t for t, _ in raw[1:] if t[0].isalpha() and t != "I"]
    capitalised = sum(1 for t in inner if t[0].isupper())
    # Title Case or SHOUTING: capital letters say nothing about names in this text.
    title_case = len(inner) >= 3 and capitalised >= 0.6 * len(inner)
    words: list[str] = []
    numbers: list[str] = []
    names: set[str] = set()
    negated = False
    previous_end = 0
    for token, start in raw:
        gap = text[previous_end:start]
        sentence_start = previous_end == 0 or bool(_SENTENCE_END.search(gap.strip() or "x"))
        previous_end = start + len(token)
        if token[0].isdigit() or token.lower() in _NUMBER_WORDS:
            numbers.append(canonical_number(token))
            continue
        word = _word(token)
        words.append(word)
        if word in _NEGATIONS or (word.endswith("nt") and token.lower().endswith(("n't", "n’t"))):
            negated = True
        if _is_name(token, sentence_start, title_case):
            names.add(word)
    for match in _QUOTED.finditer(text):
        quoted = next(g for g in match.groups() if g is not None)
        names.update(_word(t) for t in _TOKEN.findall(quoted) if _word(t) not in _COMMON)
    return Features(tuple(words), tuple(numbers), negated, frozenset(n for n in names if n))


def _in_order(words: tuple[str, ...], names: frozenset[str]) -> tuple[str, ...]:
    """The names among `words`, each at its first occurrence, in text order."""
    seen: dict[str, None] = {}
    for word in words:
        if word in names and word not in seen:
            seen[word] = None
    return tuple(seen)


def entities_differ(q: Features, c: Features, order: bool = True) -> bool:
    """Do the two texts name different things (or the same things in another order)?"""
    names = q.names | c.names
    if not names:
        return False
    seq_q, seq_c = _in_order(q.words, names), _in_order(c.words, names)
    if order:
        return seq_q != seq_c
    return set(seq_q) != set(seq_c)


def reject(query: str, candidate: str, guard: Guard | None = None) -> Reason | None:
    """`Guard().reject(query, candidate)`: the default guard as a function."""
    return (guard or _DEFAULT).reject(query, candidate)


_DEFAULT = Guard()
