"""The guard: reject a semantic candidate whose numbers, negation or named entities differ.

Embeddings put "Is 7 prime?" next to "Is 9 prime?" and "Can I ...?" next to "Can't I ...?": the
words that decide the answer are a small part of the text. These pure functions compare exactly
those words. A candidate is rejected (a miss, never a wrong answer) when:

- numbers: the numbers differ, in value or order ("10", "10.0", "ten", "10,000" / "10k" / "ten
  thousand", "twenty-five" / "25" are each one value);
- negation: the polarity of the statement differs ("can I" / "can't I", "is" / "isn't", "does X
  work" / "does X not work", "with" / "without"). A negative said in other words is the same
  polarity: "without X" / "while avoiding X" / "free of X" / "with no X" / "so it does not X";
  "or not" at the end of a question ("should I ... or not?") negates nothing;
- entities: the names differ ("learn Java" / "learn Python"), or two names swap around a word
  that gives them a direction ("convert 10 USD to EUR" / "... EUR to USD", "faster than", "from
  Paris to London"; the connector within two words of the first name). Names are compared as a
  set otherwise: "in Rust on Kubernetes" / "on Kubernetes in Rust" ask the same. A name is a
  quoted phrase, an acronym or mixed-case word (USD, iPhone), or a capitalised word that does not
  start a sentence. Case is unreliable in typed prompts ("france"), so a name found in either
  text is looked for, case-insensitively, in both.

Cheap (a regex pass per text, memoised) and deliberately conservative: a rejected paraphrase
costs one upstream call, an accepted look-alike costs a wrong answer.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

Reason = str
"""Why a candidate was rejected: "numbers", "negation" or "entities"."""

_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+(?:['’][^\W\d_]+)*", re.UNICODE)
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|‘([^’]+)’|(?<!\w)'([^']+)'(?!\w)")
_SENTENCE_END = re.compile(r"[.!?:;]+[\"')\]]*$")
# Negation of the verb: the statement's polarity.
_NEGATIONS = frozenset(
    {
        "not", "never", "cannot",
        # typed without the apostrophe
        "dont", "doesnt", "didnt", "cant", "couldnt", "wont", "wouldnt", "shouldnt", "isnt",
        "arent", "wasnt", "werent", "havent", "hasnt", "hadnt", "mustnt", "neednt", "aint",
    }
)  # fmt: skip
# Negation of a thing ("without a lock", "no garden"): the same polarity as a negated verb when
# the other text says it with one ("without X" / "so that it does not X").
_ABSENCE = frozenset(
    {"without", "no", "none", "nothing", "nobody", "nowhere", "neither", "nor"}
)  # fmt: skip
# A negative said in other words: never a difference by itself, but it stands for "without" or
# "not" in the other text ("while avoiding X", "free of X", "lacking X").
_AVOIDING = frozenset(
    {
        "avoid", "avoiding", "avoided", "prevent", "preventing", "lack", "lacking",
        "except", "excluding", "minus",
    }
)  # fmt: skip
# Words after which the next name is the target of the first: swapping the two changes the
# question ("USD to EUR", "faster than Java").
_CONNECTORS = frozenset({"to", "into", "than", "over", "beat", "beats", "defeat", "defeats"})
_SKIPPED_BEFORE_NAME = frozenset({"a", "an", "the"})
_CONNECTOR_REACH = 2  # words from the first name to the connector: "USD to", "Python faster than"
_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90, "hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}
# "one" counts only next to another number word ("one million", "twenty-one"): alone it is far
# more often a pronoun ("which one") than a count.
_SUFFIXES = {"k": 1000}  # "10k" = "10,000" (not "m": metres or millions)
# Capitalised function words are not names (titles, shouting, "Is It True That ...").
_COMMON_WORDS = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself of off on once only or other our ours ourselves out over own same
    she should so some such than that the their theirs them themselves then there these they this
    those through to too under until up very was we were what when where which while who whom why
    will with would you your yours yourself yourselves also best better good new way ways
    vs versus please ok
"""
_COMMON = frozenset(_COMMON_WORDS.split())


@dataclass(frozen=True)
class Guard:
    """Which differences reject a candidate. `Guard()` checks all three; `Guard.off()` none."""

    numbers: bool = True
    negation: bool = True
    entities: bool = True
    entity_order: bool = True  # names swapped around "to", "than", ...; False: sets only

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
        if self.negation and polarity_differs(q, c):
            return "negation"
        if self.entities and entities_differ(q, c, self.entity_order):
            return "entities"
        return None


@dataclass(frozen=True)
class Features:
    """What the guard compares, read once per text."""

    words: tuple[str, ...]  # lowercased stems (no plural or possessive "s"), in order
    numbers: tuple[str, ...]  # canonical numbers in order
    negated: bool  # a negated verb ("not", "can't", "never")
    absent: bool  # a thing negated ("without", "no", "none")
    avoided: bool  # a negative in other words ("avoiding", "free of", "lacking")
    names: frozenset[str]  # lowercased name candidates (see the module doc)
    linked: frozenset[int] = frozenset()  # indexes in `words` right after a connector ("to")


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


def _scaled(number: str, scale: int) -> str:
    """`number` (canonical) times `scale`, canonical again ("2.5" x 1000 -> "2500")."""
    return canonical_number(format(Decimal(number) * scale, "f"))


def _words_value(words: list[str]) -> int:
    """The value of a run of number words ("twenty five" -> 25, "two hundred" -> 200)."""
    total = current = 0
    for word in words:
        value = _NUMBER_WORDS[word]
        if word == "hundred":
            current = max(current, 1) * 100
        elif word in _SCALES:
            total += max(current, 1) * value
            current = 0
        else:
            current += value
    return total + current


def _numbers(raw: list[tuple[str, int]], text: str) -> tuple[list[str], set[int]]:
    """The canonical numbers of a text, and the indexes in `raw` of the tokens they used.

    Runs of number words are one number ("twenty-five", "two hundred and fifty", "one million");
    a digit number followed by a scale word or "k" is scaled ("3 million", "10k"); "one" alone
    is not a number."""
    numbers: list[str] = []
    used: set[int] = set()
    i = 0
    while i < len(raw):
        token, start = raw[i]
        lower = token.lower()
        if token[0].isdigit():
            value = canonical_number(token)
            end = start + len(token)
            used.add(i)
            nxt = raw[i + 1] if i + 1 < len(raw) else None
            if nxt is not None and nxt[1] == end and nxt[0].lower() in _SUFFIXES:
                value = _scaled(value, _SUFFIXES[nxt[0].lower()])
                used.add(i + 1)
                i += 1
            elif nxt is not None and nxt[0].lower() in _SCALES:
                value = _scaled(value, _SCALES[nxt[0].lower()])
                used.add(i + 1)
                i += 1
            numbers.append(value)
            i += 1
            continue
        if lower in _NUMBER_WORDS:
            run = [lower]
            j = i + 1
            while j < len(raw):
                nxt_lower = raw[j][0].lower()
                gap = text[raw[j - 1][1] + len(raw[j - 1][0]) : raw[j][1]]
                if nxt_lower in _NUMBER_WORDS and gap.strip() in ("", "-"):
                    run.append(nxt_lower)
                elif nxt_lower == "and" and j + 1 < len(raw) and run[-1] in _SCALES:
                    if raw[j + 1][0].lower() not in _NUMBER_WORDS:
                        break
                else:
                    break
                j += 1
            if run != ["one"]:
                numbers.append(str(_words_value(run)))
                used.update(range(i, j))
            i = j
            continue
        i += 1
    return numbers, used


def _word(token: str) -> str:
    """A token's comparison form: lowercased, without a possessive or plural "s" ("Indians'",
    "Indian's" and "indians" are all "indian"), apostrophes and accents dropped ("don't" ->
    "dont", "Pokémon" -> "pokemon")."""
    word = token.lower().replace("’", "'")
    if not word.isascii():
        word = "".join(
            ch for ch in unicodedata.normalize("NFKD", word) if not unicodedata.combining(ch)
        )
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
    numbers, used = _numbers(raw, text)
    words: list[str] = []
    names: set[str] = set()
    linked: set[int] = set()
    negated = absent = avoided = False
    previous_end = 0
    after_connector = False
    for index, (token, start) in enumerate(raw):
        gap = text[previous_end:start]
        sentence_start = previous_end == 0 or bool(_SENTENCE_END.search(gap.strip() or "x"))
        previous_end = start + len(token)
        if index in used:
            continue
        word = _word(token)
        if word in _NEGATIONS or (word.endswith("nt") and token.lower().endswith(("n't", "n’t"))):
            # "or not" closing a clause ("should I ... or not?") asks both ways: no polarity
            closing = word == "not" and words[-1:] == ["or"] and _closes(text, previous_end)
            negated = negated or not closing
        elif word in _ABSENCE:
            absent = True
        elif word in _AVOIDING or (word == "free" and _free_of(raw, index, text)):
            avoided = True
        if after_connector and word not in _SKIPPED_BEFORE_NAME:
            linked.add(len(words))
        after_connector = word in _CONNECTORS or (after_connector and word in _SKIPPED_BEFORE_NAME)
        words.append(word)
        if _is_name(token, sentence_start, title_case):
            names.add(word)
    for match in _QUOTED.finditer(text):
        quoted = next(g for g in match.groups() if g is not None)
        names.update(_word(t) for t in _TOKEN.findall(quoted) if _word(t) not in _COMMON)
    return Features(
        tuple(words),
        tuple(numbers),
        negated,
        absent,
        avoided,
        frozenset(n for n in names if n),
        frozenset(linked),
    )


def _closes(text: str, end: int) -> bool:
    """Does a clause end right after `end` (punctuation or the end of the text)?"""
    rest = text[end:].lstrip()
    return not rest or rest[0] in ".?!,;:)"


def _free_of(raw: list[tuple[str, int]], index: int, text: str) -> bool:
    """Is "free" at `index` a negative ("free of X", "lock-free"), not a price ("free VPN")?"""
    after = raw[index + 1][0].lower() if index + 1 < len(raw) else ""
    start = raw[index][1]
    return after == "of" or (start > 0 and text[start - 1] == "-")


def polarity_differs(q: Features, c: Features) -> bool:
    """Does one text deny what the other asserts?

    A negated verb and a negated thing each count once; a negative in other words ("avoiding",
    "free of") stands for either but never makes a difference alone. So "can I" / "can't I" and
    "with a lock" / "without a lock" differ; "without X" / "while avoiding X" / "so it does not
    X" do not; "can't I ... without X" / "can I ... without X" differ."""
    q_count = int(q.negated) + int(q.absent or q.avoided)
    c_count = int(c.negated) + int(c.absent or c.avoided)
    if q_count == c_count:
        return False
    low, high = (q, c) if q_count < c_count else (c, q)
    # the only cue is a negative in other words, facing none: a paraphrase may drop it
    return not (high.avoided and not high.absent and not high.negated and not low.negated)


def _in_order(words: tuple[str, ...], names: frozenset[str]) -> tuple[str, ...]:
    """The names among `words`, each at its first occurrence, in text order."""
    seen: dict[str, None] = {}
    for word in words:
        if word in names and word not in seen:
            seen[word] = None
    return tuple(seen)


def _directed(f: Features, names: frozenset[str]) -> set[tuple[str, str]]:
    """(x, y) for each name y right after a connector that follows the name x closely: "USD to
    EUR", "Python faster than Java"; not "Kotlin ... when deploying to Heroku" (a destination)."""
    pairs: set[tuple[str, str]] = set()
    previous: tuple[str, int] | None = None
    for index, word in enumerate(f.words):
        if word not in names:
            continue
        if previous is not None and previous[0] != word and index in f.linked:
            connector = index - 1
            while f.words[connector] in _SKIPPED_BEFORE_NAME:
                connector -= 1
            if connector - previous[1] <= _CONNECTOR_REACH:
                pairs.add((previous[0], word))
        previous = (word, index)
    return pairs


def entities_differ(q: Features, c: Features, order: bool = True) -> bool:
    """Do the two texts name different things (or swap two names around a connector)?"""
    names = q.names | c.names
    if not names:
        return False
    seq_q, seq_c = _in_order(q.words, names), _in_order(c.words, names)
    if set(seq_q) != set(seq_c):
        return True
    if not order or seq_q == seq_c:
        return False
    rank_q = {name: i for i, name in enumerate(seq_q)}
    rank_c = {name: i for i, name in enumerate(seq_c)}
    swapped_in_c = any(rank_c[x] > rank_c[y] for x, y in _directed(q, names))
    swapped_in_q = any(rank_q[x] > rank_q[y] for x, y in _directed(c, names))
    return swapped_in_c or swapped_in_q


def reject(query: str, candidate: str, guard: Guard | None = None) -> Reason | None:
    """`Guard().reject(query, candidate)`: the default guard as a function."""
    return (guard or _DEFAULT).reject(query, candidate)


_DEFAULT = Guard()
