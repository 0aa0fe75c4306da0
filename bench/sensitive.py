"""The sensitive-content detectors: how often they flag ordinary text, how often they miss, and
what the check costs.

Run: .venv/bin/python bench/sensitive.py [--data PATH] [--positives 2000] [--seed 1] [--show]

1. Wrongly flagged: every distinct question of the QQP file (`--data`, default
   ../shared/data/qqp_dev_20k.jsonl, read at run time), and the request bodies and answers of
   bench/workload.py (10,000 chat requests), checked for every category; the share flagged per
   category. Flags on QQP are printed with --show (some questions do carry a phone number or an
   e-mail address: read them before calling a flag wrong).
2. Missed: `--positives` generated values per category (valid checksums, realistic formatting:
   cards with spaces or dashes, IBANs grouped by 4, phone numbers in several countries' formats,
   keys inside sentences and code), each set inside an ordinary sentence; the share not found.
3. Cost: one check of a 2 KB prompt (QQP questions joined) with nothing to find, and with a card
   number and a key in it: p50 / p99 over 20,000 calls each, for the default policy (secrets and
   cards) and for every category. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import base64
import random
import re
import string
import time
from collections import Counter
from collections.abc import Callable

import orjson
from workload import Workload, add_arguments, default_data, read_questions

from llmemo.core.request import to_request
from llmemo.core.sensitive import CATEGORIES, DEFAULT_SKIP, SensitivePolicy, find, text_of

ALNUM = string.ascii_letters + string.digits
UPPER = string.ascii_uppercase + string.digits


def _luhn_complete(rng: random.Random, prefix: str, length: int) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        digits = body + check
        total = 0
        for position, char in enumerate(reversed(digits)):
            value = int(char)
            if position % 2:
                value = value * 2 - 9 if value > 4 else value * 2
            total += value
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


def card(rng: random.Random) -> str:
    prefix, length, groups = rng.choice(
        [
            ("4", 16, (4, 4, 4, 4)),
            (str(rng.randint(51, 55)), 16, (4, 4, 4, 4)),
            (str(rng.randint(2221, 2720)), 16, (4, 4, 4, 4)),
            (rng.choice(("34", "37")), 15, (4, 6, 5)),
            ("6011", 16, (4, 4, 4, 4)),
            (str(rng.randint(3528, 3589)), 16, (4, 4, 4, 4)),
        ]
    )
    digits = _luhn_complete(rng, prefix, length)
    separator = rng.choice(("", " ", "-"))
    parts, at = [], 0
    for size in groups:
        parts.append(digits[at : at + size])
        at += size
    return separator.join(parts)


IBAN_FORMATS = {  # country: BBAN as (kind, count) runs; n = digits, a = upper letters, c = either
    "DE": (("n", 18),),
    "GB": (("a", 4), ("n", 14)),
    "FR": (("n", 10), ("c", 11), ("n", 2)),
    "ES": (("n", 20),),
    "IT": (("a", 1), ("n", 10), ("c", 12)),
    "NL": (("a", 4), ("n", 10)),
    "BE": (("n", 12),),
    "CH": (("n", 5), ("c", 12)),
    "PL": (("n", 24),),
    "SE": (("n", 20),),
}


def iban(rng: random.Random) -> str:
    country = rng.choice(sorted(IBAN_FORMATS))
    alphabet = {"n": string.digits, "a": string.ascii_uppercase, "c": UPPER}
    bban = "".join(
        rng.choice(alphabet[kind]) for kind, count in IBAN_FORMATS[country] for _ in range(count)
    )
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    compact = f"{country}{98 - number % 97:02d}{bban}"
    if rng.random() < 0.6:
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return compact


def _d(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def phone(rng: random.Random) -> str:
    n = rng.randint(2, 9)
    us = f"{n}{_d(rng, 2)}"
    exchange = f"{rng.randint(2, 9)}{_d(rng, 2)}"
    return rng.choice(
        [
            f"({us}) {exchange}-{_d(rng, 4)}",  # US
            f"{us}-{exchange}-{_d(rng, 4)}",
            f"{us}.{exchange}.{_d(rng, 4)}",
            f"+1 {us} {exchange} {_d(rng, 4)}",
            f"+1-{us}-{exchange}-{_d(rng, 4)}",
            f"+44 20 {_d(rng, 4)} {_d(rng, 4)}",  # UK
            f"020 {_d(rng, 4)} {_d(rng, 4)}",
            f"07{_d(rng, 3)} {_d(rng, 6)}",
            f"+33 6 {_d(rng, 2)} {_d(rng, 2)} {_d(rng, 2)} {_d(rng, 2)}",  # France
            f"0{rng.randint(1, 7)} {_d(rng, 2)} {_d(rng, 2)} {_d(rng, 2)} {_d(rng, 2)}",
            f"+49 30 {_d(rng, 8)}",  # Germany
            f"030 {_d(rng, 8)}",
            f"0151 {_d(rng, 8)}",
            f"+81 3-{_d(rng, 4)}-{_d(rng, 4)}",  # Japan
            f"090-{_d(rng, 4)}-{_d(rng, 4)}",
            f"+91 9{_d(rng, 4)} {_d(rng, 5)}",  # India
            f"+55 11 9{_d(rng, 4)}-{_d(rng, 4)}",  # Brazil
            f"+61 4{_d(rng, 2)} {_d(rng, 3)} {_d(rng, 3)}",  # Australia
            f"+{rng.choice(('34', '39', '31', '46'))}{_d(rng, 9)}",  # E.164, no spaces
            f"{us}{exchange}{_d(rng, 4)}",  # written without separators: not found (ids)
            f"9{_d(rng, 4)} {_d(rng, 5)}",  # India, national: not found (no trunk 0)
            f"(11) 9{_d(rng, 4)}-{_d(rng, 4)}",  # Brazil, national: not found
        ]
    )


def ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    group, serial = rng.randint(1, 99), rng.randint(1, 9999)
    separator = rng.choice(("-", "-", " "))
    return f"{area:03d}{separator}{group:02d}{separator}{serial:04d}"


def email(rng: random.Random) -> str:
    first = rng.choice(("alice", "bob", "j.smith", "maria_garcia", "li.wei", "o'neil", "dev+cache"))
    domain = rng.choice(
        ("example.com", "mail.co.uk", "uni-berlin.de", "corp.example.io", "gmx.net")
    )
    return f"{first}{rng.randint(1, 999)}@{domain}"


def _rand(rng: random.Random, n: int, alphabet: str = ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def api_key(rng: random.Random) -> str:
    return rng.choice(
        [
            f"sk-{_rand(rng, 48)}",
            f"sk-proj-{_rand(rng, 80, ALNUM + '_-')}",
            f"sk-ant-api03-{_rand(rng, 93, ALNUM + '_-')}AA",
            f"ghp_{_rand(rng, 36)}",
            f"github_pat_11{_rand(rng, 20)}_{_rand(rng, 59)}",
            f"xoxb-{_d(rng, 12)}-{_d(rng, 13)}-{_rand(rng, 24)}",
            f"sk_live_{_rand(rng, 24)}",
            f"AIza{_rand(rng, 35, ALNUM + '_-')}",
        ]
    )


def aws_key(rng: random.Random) -> str:
    return rng.choice(("AKIA", "ASIA")) + _rand(rng, 16, UPPER)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(rng: random.Random) -> str:
    header = {"alg": rng.choice(("HS256", "RS256", "ES256")), "typ": "JWT"}
    if rng.random() < 0.5:
        header["kid"] = _rand(rng, 8)
    claims = {"sub": _d(rng, 8), "iat": 1700000000 + rng.randint(0, 10**7), "name": "Ann"}
    signature = _b64(rng.randbytes(rng.choice((32, 64, 256))))
    return f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}.{signature}"


def private_key(rng: random.Random) -> str:
    kind = rng.choice(("RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", "", "DSA "))
    body = "\n".join(_rand(rng, 64, ALNUM + "+/") for _ in range(3))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "email": email,
    "phone": phone,
    "card": card,
    "iban": iban,
    "ssn": ssn,
    "api_key": api_key,
    "aws_key": aws_key,
    "jwt": jwt,
    "private_key": private_key,
}

SETTINGS = (
    "Please update my details: {}.",
    "My {name} is {} -- can you check it?",
    "{}",
    'Here is the config:\n```python\nvalue = "{}"\nprint(value)\n```',
    "export VALUE={}\n",
    '{{"field": "{}", "note": "from the form"}}',
    "Why does the request with {} fail (see the log line above)?",
)


def hex_digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


NEAR_MISSES: dict[str, Callable[[random.Random], str]] = {
    "order id, 8-20 digits": lambda rng: f"order {rng.randint(1, 9)}{_d(rng, rng.randint(7, 19))}",
    "unix time (ms)": lambda rng: str(1_600_000_000_000 + rng.randint(0, 10**11)),
    "date and time": lambda rng: (
        f"{rng.randint(1990, 2030)}-{rng.randint(1, 12):02d}-"
        f"{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
    ),
    "price": lambda rng: f"${rng.randint(1, 999)},{_d(rng, 3)}.{_d(rng, 2)}",
    "version": lambda rng: ".".join(str(rng.randint(0, 20)) for _ in range(rng.randint(3, 4))),
    "IPv4": lambda rng: ".".join(str(rng.randint(1, 255)) for _ in range(4)),
    "UUID": lambda rng: "-".join(hex_digits(rng, n) for n in (8, 4, 4, 4, 12)),
    "git SHA": lambda rng: hex_digits(rng, 40),
    "ISBN-13": lambda rng: f"978-{rng.randint(0, 9)}-{_d(rng, 2)}-{_d(rng, 6)}-{rng.randint(0, 9)}",
    "range of years": lambda rng: f"{rng.randint(1900, 2000)}-{rng.randint(2001, 2030)}",
    "base64 blob": lambda rng: base64.b64encode(rng.randbytes(48)).decode(),
}


def in_context(rng: random.Random, category: str, value: str) -> str:
    template = rng.choice(SETTINGS)
    return template.replace("{name}", category.replace("_", " ")).format(value)


def pct(values: list[int], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] / 1000


def timed(text: str, categories: frozenset[str], rounds: int) -> tuple[float, float]:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        start = clock()
        find(text, categories)
        samples.append(clock() - start)
    samples.sort()
    return pct(samples, 0.5), pct(samples, 0.99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(parser)
    parser.add_argument("--positives", type=int, default=2000, help="generated values per category")
    parser.add_argument("--rounds", type=int, default=20_000, help="timed calls per case")
    parser.add_argument("--show", action="store_true", help="print the QQP questions flagged")
    args = parser.parse_args()
    data = args.data or default_data()
    order = sorted(CATEGORIES)

    questions = read_questions(data)
    flagged: Counter[str] = Counter()
    for question in questions:
        for category in find(question):
            flagged[category] += 1
            if args.show:
                print(f"  flagged {category}: {question}")
    work = Workload.build(args.distinct, seed=args.seed, data=data)
    bodies: Counter[str] = Counter()
    answers: Counter[str] = Counter()
    for request, response in zip(work.requests, work.responses, strict=True):
        bodies.update(find(text_of(request)))
        answers.update(find(text_of(response)))
    print(f"Wrongly flagged (share of texts; {len(questions):,} QQP questions, ", end="")
    print(f"{len(work.requests):,} workload bodies and answers):")
    print("| category | QQP questions | workload bodies | workload answers |")
    print("|---|---|---|---|")
    for category in order:
        print(
            f"| {category} | {flagged[category] / len(questions):.4%} ({flagged[category]}) "
            f"| {bodies[category] / len(work.requests):.4%} ({bodies[category]}) "
            f"| {answers[category] / len(work.responses):.4%} ({answers[category]}) |"
        )
    any_flag = sum(1 for q in questions if find(q))
    print(f"| any | {any_flag / len(questions):.4%} ({any_flag}) | | |")

    rng = random.Random(args.seed)
    print(f"\nNear misses flagged (share of {args.positives:,} generated values per kind):")
    print("| kind | flagged | as |")
    print("|---|---|---|")
    for kind, make in NEAR_MISSES.items():
        hits: Counter[str] = Counter()
        for _ in range(args.positives):
            hits.update(find(f"See {make(rng)} in the report."))
        total = sum(hits.values())
        print(f"| {kind} | {total / args.positives:.2%} ({total}) | {dict(hits) or '-'} |")

    print(f"\nMissed (share of {args.positives:,} generated values per category, in context):")
    print("| category | missed | found as another category too |")
    print("|---|---|---|")
    shapes: Counter[str] = Counter()
    for category in order:
        missed = other = 0
        for _ in range(args.positives):
            value = GENERATORS[category](rng)
            found = find(in_context(rng, category, value))
            if category not in found:
                missed += 1
                shapes[f"{category} {re.sub('[0-9]', '9', value)[:40]}"] += 1
            other += bool(found - {category})
        print(f"| {category} | {missed / args.positives:.2%} ({missed}) | {other} |")
    for shape, count in shapes.most_common(10):
        print(f"  missed {count}: {shape}")

    prompt = ""
    for question in questions:
        if len(prompt) >= 2048:
            break
        prompt += question + "\n"
    plain = prompt[:2048]
    middle = len(plain) // 2
    with_find = plain[:middle] + " card 4111 1111 1111 1111, key sk-proj-" + "a1" * 12 + " "
    with_find = (with_find + plain[middle:])[:2048]
    assert not find(plain) and find(with_find) == {"card", "api_key"}
    policy = SensitivePolicy()
    print(f"\nCost of one check, 2,048-character prompt ({args.rounds:,} calls each), us:")
    print("| prompt | default policy (secrets, card): p50 / p99 | every category: p50 / p99 |")
    print("|---|---|---|")
    for label, text in (("nothing to find", plain), ("a card and a key", with_find)):
        cells = []
        for categories in (DEFAULT_SKIP, CATEGORIES):
            timed(text, categories, 1000)  # warm-up
            p50, p99 = timed(text, categories, args.rounds)
            cells.append(f"{p50:.1f} / {p99:.1f}")
        print(f"| {label} | {cells[0]} | {cells[1]} |")
    assert policy.reasons(with_find, "default") == {"card", "api_key"}

    # What a miss costs the cache: its request's canonical JSON, then the answer's JSON
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": plain}]}
    canonical = to_request(request).canonical
    response = work.responses[0]
    response["choices"][0]["message"]["content"] = plain[:1024]
    samples = []
    clock = time.perf_counter_ns
    for _ in range(args.rounds + 1000):
        start = clock()
        policy.reasons(text_of(orjson.loads(canonical)), "default")
        policy.reasons(text_of(response), "default")
        samples.append(clock() - start)
    samples = sorted(samples[1000:])
    print(
        f"| a miss as the cache checks it (2 KB request body + 1 KB answer, default policy) "
        f"| {pct(samples, 0.5):.1f} / {pct(samples, 0.99):.1f} | |"
    )


if __name__ == "__main__":
    main()
