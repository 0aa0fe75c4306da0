"""The guard's pure functions: what it rejects, what it lets through, and each switch."""

from __future__ import annotations

import pytest

from llmemo.core.guard import (
    Guard,
    canonical_number,
    entities_differ,
    features,
    polarity_differs,
    reject,
)

REJECTED = [
    # numbers
    ("is 7 prime", "is 9 prime", "numbers"),
    ("Is 7 a prime number?", "Is seven a prime number? Is 9?", "numbers"),
    ("What is 15% of 200?", "What is 15% of 300?", "numbers"),
    ("Best phones under 15,000 rupees", "Best phones under 20,000 rupees", "numbers"),
    ("What happened in 2016?", "What happened in 2017?", "numbers"),
    ("Is 7 bigger than 9?", "Is 9 bigger than 7?", "numbers"),
    ("What is 3.5 times 2?", "What is 3.25 times 2?", "numbers"),
    ("Top ten movies", "Top 5 movies", "numbers"),
    ("How many legs does a spider have?", "How many legs do 2 spiders have?", "numbers"),
    ("Serve 10k users", "Serve 20,000 users", "numbers"),
    ("Load one million rows", "Load two million rows", "numbers"),
    ("Is twenty-one odd?", "Is twenty-two odd?", "numbers"),
    # negation
    ("can I", "can't I", "negation"),
    ("Can I take ibuprofen with coffee?", "Can I not take ibuprofen with coffee?", "negation"),
    ("Why do cats purr?", "Why don't cats purr?", "negation"),
    ("Why do cats purr?", "Why dont cats purr?", "negation"),
    ("Is it safe?", "Is it never safe?", "negation"),
    ("Is there a way to stop it?", "Is there no way to stop it?", "negation"),
    ("Does Redis work on Windows?", "Does Redis not work on Windows?", "negation"),
    ("Is Rust safe?", "Isn't Rust safe?", "negation"),
    # the same statement denied, with a negative in other words on both sides
    ("Can I sleep without pills?", "Can't I sleep without pills?", "negation"),
    ("How do I sort it while avoiding copies?", "How don't I sort it avoiding copies?", "negation"),
    ("Does it work?", "Doesn’t it work?", "negation"),
    ("I can do it", "I cannot do it", "negation"),
    ("a house with a garden", "a house without a garden", "negation"),
    # entities: which and in what order
    ("convert 10 USD to EUR", "convert 10 EUR to USD", "entities"),
    ("How do I learn Java?", "How do I learn Python?", "entities"),
    ("What is the capital of France?", "What is the capital of Germany?", "entities"),
    ("Is Python faster than Java?", "Is Java faster than Python?", "entities"),
    ("Best iPhone apps", "Best Android apps", "entities"),
    ('What does "carpe diem" mean?', 'What does "memento mori" mean?', "entities"),
    ("Who won the match between Brazil and Spain?", "Who won the match in Spain?", "entities"),
    ("flights from Paris to London", "flights from London to Paris", "entities"),
    ("Port my code from Go into Rust", "Port my code from Rust into Go", "entities"),
    ("Did Brazil beat Spain in the final?", "Did Spain beat Brazil in the final?", "entities"),
    ("Migrate my MySQL database to Postgres", "Migrate my Postgres database to MySQL", "entities"),
]

ACCEPTED = [
    ("What is the capital of France?", "Which city is France's capital?"),
    ("What is the capital of France?", "what is the capital of france"),  # case is unreliable
    ("How do I learn Python?", "What is the best way to learn python?"),
    ("Is 7 prime?", "Is seven a prime number?"),  # number words
    ("How much is 10,000 yen?", "How much is 10000 yen?"),
    ("What's 3.50 plus 1?", "What is 3.5 plus 1?"),
    ("Why do cats purr?", "What makes cats purr?"),
    ("Can't I sleep?", "Why can't I sleep?"),  # both negated
    ("What Is The Best Way To Learn Python?", "how should I learn python"),  # Title Case
    ("Which phone should I buy?", "What phone is worth buying?"),
    ("What do Indians eat?", "What does an Indian eat?"),  # plural and singular
    ("Same text", "Same text"),
    # a negative in other words is the same polarity
    (
        "How do I sort a graph edge in Rust without running out of memory on a Kubernetes machine?",
        "What is the best way to sort a graph edge using Rust on Kubernetes while avoiding "
        "running out of memory?",
    ),
    ("Is there a queue in Go without locks?", "Is there a lock-free queue in Go?"),
    ("How to parse JSON without copying?", "How to parse JSON free of copies?"),
    ("Deploy without downtime", "Deploy with no downtime"),
    ("How do I loop without crashing?", "How do I loop so it does not crash?"),
    ("Should I learn Rust?", "Should I learn Rust or not?"),  # "or not" asks both ways
    ("Is a free VPN safe?", "Is a free VPN safe to use?"),  # "free" as a price is no negative
    # names whose order does not change the question
    ("How do I run Rust on Kubernetes?", "How do I run on Kubernetes with Rust?"),
    (
        "How do I compare Python and Java for web servers?",
        "How do I compare Java and Python for web servers?",
    ),
    ("How do I learn Go and Rust in 2024?", "In 2024, how do I learn Rust and Go?"),
    # "to" far from the first name gives a destination, not a direction between the two
    (
        "Best way to parse logs in Kotlin when deploying to Heroku?",
        "When deploying to Heroku, how do I parse logs in Kotlin?",
    ),
    ("Port code from Go to Rust on Linux", "On Linux, port code from Go to Rust"),
    # one number, written another way
    ("Is twenty-five a square?", "Is 25 a square?"),
    ("Save two hundred and fifty dollars", "Save 250 dollars"),
    ("Serve 10k users", "Serve 10,000 users"),
    ("Load 3 million rows", "Load 3,000,000 rows"),
    ("Load one million rows", "Load 1000000 rows"),
    ("Which one is better?", "Which is better?"),  # "one" alone is not a count
    ("When will trading come to Pokémon GO?", "When is trading coming to pokemon go?"),  # accents
    ("Is OK to give money to beggars?", "Is it right to give money to a beggar?"),
    ("", ""),
]


@pytest.mark.parametrize(("query", "candidate", "reason"), REJECTED)
def test_rejects(query: str, candidate: str, reason: str) -> None:
    assert reject(query, candidate) == reason
    assert reject(candidate, query) == reason  # symmetric


@pytest.mark.parametrize(("query", "candidate"), ACCEPTED)
def test_accepts(query: str, candidate: str) -> None:
    assert reject(query, candidate) is None
    assert reject(candidate, query) is None


@pytest.mark.parametrize(
    ("token", "value"),
    [
        ("10", "10"),
        ("010", "10"),
        ("10.0", "10"),
        ("3.50", "3.5"),
        ("10,000", "10000"),
        ("1,5", "1.5"),  # a decimal comma
        ("0", "0"),
        ("0.25", "0.25"),
        ("ten", "10"),
        ("Seven", "7"),
        ("hundred", "100"),
    ],
)
def test_canonical_numbers(token: str, value: str) -> None:
    assert canonical_number(token) == value


def test_each_check_can_be_switched_off() -> None:
    assert Guard(numbers=False).reject("is 7 prime", "is 9 prime") is None
    assert Guard(negation=False).reject("can I", "can't I") is None
    assert Guard(entities=False).reject("learn Java", "learn Python") is None
    order_blind = Guard(entity_order=False)
    assert order_blind.reject("convert 10 USD to EUR", "convert 10 EUR to USD") is None
    assert order_blind.reject("learn Java", "learn Python") == "entities"
    off = Guard.off()
    assert not off.active
    assert all(off.reject(q, c) is None for q, c, _ in REJECTED)
    assert Guard().active


def test_features() -> None:
    f = features('Does the "Dark Knight" beat 2 Marvel films in the USA? No.')
    assert f.numbers == ("2",)
    assert f.absent and not f.negated and not f.avoided
    assert features("Why doesn't it work?").negated
    assert features("How to avoid it?").avoided
    assert {"dark", "knight", "marvel", "usa"} <= f.names
    assert "does" not in f.names and "the" not in f.names  # sentence start, function words
    assert features("How do I learn Python?").names == {"python"}
    assert features("What Is The Best Way To Learn Python?").names == frozenset()  # Title Case
    assert features("I like it").names == frozenset()  # "I" is not a name


def test_names_found_on_one_side_are_looked_for_on_both() -> None:
    lower = features("what is the capital of france")
    upper = features("What is the capital of France?")
    assert not entities_differ(lower, upper)
    assert entities_differ(features("capital of spain"), upper)


def test_memoised() -> None:
    assert features("is 7 prime") is features("is 7 prime")


def test_polarity_counts_a_negated_verb_and_a_negated_thing_once_each() -> None:
    verb, thing = features("so it does not crash"), features("without a crash")
    avoiding, plain = features("while avoiding a crash"), features("with a crash")
    assert not polarity_differs(verb, thing)
    assert not polarity_differs(thing, avoiding)
    assert not polarity_differs(verb, avoiding)
    assert polarity_differs(thing, plain) and polarity_differs(verb, plain)
    assert not polarity_differs(avoiding, plain)  # a paraphrase may drop "avoiding"


def test_name_order_matters_only_around_a_connector() -> None:
    blind = Guard(entity_order=False)
    assert reject("convert 10 USD to EUR", "convert 10 EUR to USD") == "entities"
    assert blind.reject("convert 10 USD to EUR", "convert 10 EUR to USD") is None
    assert reject("I write tools in Rust, Go and Zig", "I write tools in Zig, Go and Rust") is None
