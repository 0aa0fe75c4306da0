"""A realistic workload for the benchmarks: many distinct requests, answers of realistic sizes,
and the access orders real traffic has.

Requests are OpenAI chat completions built from real questions (the `a` and `b` questions of a
QQP-style JSONL file, read at run time: `--data PATH`, default ../shared/data/qqp_dev_20k.jsonl
next to the checkout, or $LLMEMO_BENCH_DATA), each with one of a few system prompts, models,
temperatures and max_tokens, as an application's call sites vary them; one in eight carries an
earlier turn of the conversation. Every request is distinct. Answers are `chat.completion`
bodies whose text length is drawn from a log-normal distribution (median ~1.2 KB, from 200 B to
40 KB), so a share of the stored entries is above the entry format's compression threshold.

Orders: `uniform` (every request equally likely: the worst case for any in-process shortcut) and
`zipf` (rank r drawn with weight 1/r^s, s = 1.0: the usual shape of LLM traffic). Everything is
deterministic from the seed. `BEST_CASE` is the single request that the older benchmarks repeat:
report it only as a labelled best case.

    from workload import Workload
    work = Workload.build(10_000, seed=1)
    order = work.order("zipf", 50_000)       # indices into work.requests
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
DATA_ENV = "LLMEMO_BENCH_DATA"
ORDERS = ("uniform", "zipf")

SYSTEM_PROMPTS = (
    "You are a helpful assistant. Answer clearly and concisely.",
    "You are a support agent for an online bookshop. Be friendly, answer in at most three "
    "paragraphs, and suggest a relevant book when it fits the question.",
    "You answer questions for a general-knowledge quiz site. Give the answer first, then a short "
    "explanation. If the question is ambiguous, say which reading you answered.",
    "You are a writing tutor. Explain your reasoning step by step and keep a neutral tone. "
    "Do not invent sources; say when you are unsure.",
    "Reply in plain English suitable for a twelve-year-old reader.",
)
# (model, weight): most calls go to a small model
MODELS = (("gpt-4o-mini", 6), ("gpt-4o", 3), ("gpt-4.1-nano", 1))
TEMPERATURES = ((0, 5), (0.2, 2), (0.7, 2), (1.0, 1))
MAX_TOKENS = ((None, 3), (256, 2), (512, 3), (1024, 2))
ANSWER_MEDIAN = 1200  # bytes of answer text
ANSWER_SIGMA = 1.0  # of the log-normal: ~16% above 3.3 KB, ~2% above 12 KB
ANSWER_MIN, ANSWER_MAX = 200, 40_000

BEST_CASE = {
    "model": "gpt-4o-mini",
    "temperature": 0,
    "messages": [
        {"role": "system", "content": "You are a concise assistant for an online bookshop."},
        {"role": "user", "content": "Summarise 'Pride and Prejudice' in three sentences."},
    ],
}
"""The one request the best-case rows repeat (never the headline)."""


def default_data() -> Path:
    """Where the questions are read from: $LLMEMO_BENCH_DATA, else ../shared/data/qqp_dev_20k.jsonl."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    # shared/ sits beside the checkout (a worktree one level further down)
    candidates = [up / "shared" / "data" / "qqp_dev_20k.jsonl" for up in ROOT.parents[:2]]
    return next((c for c in candidates if c.exists()), candidates[0])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The workload's command-line options, shared by the benchmarks."""
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"JSONL of questions (fields a, b); default ${DATA_ENV} or ../shared/data/qqp_dev_20k.jsonl",
    )
    parser.add_argument("--distinct", type=int, default=10_000, help="distinct requests")
    parser.add_argument("--seed", type=int, default=1, help="workload seed")


def read_questions(path: Path) -> list[str]:
    """The distinct questions of a JSONL file (fields `a` and `b`), in file order."""
    if not path.exists():
        raise SystemExit(f"no question file at {path}: pass --data PATH or set ${DATA_ENV}")
    seen: dict[str, None] = {}
    with path.open("rb") as lines:
        for line in lines:
            if not line.strip():
                continue
            row = orjson.loads(line)
            for field in ("a", "b"):
                text = row.get(field)
                if isinstance(text, str) and text.strip():
                    seen.setdefault(text.strip(), None)
    return list(seen)


def _weighted(rng: random.Random, table: Sequence[tuple[Any, int]]) -> Any:
    values, weights = zip(*table, strict=True)
    return rng.choices(values, weights)[0]


def _answer_text(rng: random.Random, questions: Sequence[str], size: int) -> str:
    """Prose of about `size` bytes made of real sentences (compresses like text does)."""
    parts: list[str] = []
    length = 0
    while length < size:
        sentence = questions[rng.randrange(len(questions))].strip().rstrip("?") + "."
        parts.append(sentence + ("\n\n" if rng.random() < 0.15 else " "))
        length += len(parts[-1])
    return "".join(parts)[:size].strip()


def answer_size(rng: random.Random) -> int:
    """Bytes of answer text: log-normal around ANSWER_MEDIAN, clipped to [ANSWER_MIN, ANSWER_MAX]."""
    size = int(ANSWER_MEDIAN * math.exp(rng.gauss(0.0, ANSWER_SIGMA)))
    return max(ANSWER_MIN, min(ANSWER_MAX, size))


def response_for(request: dict[str, Any], text: str, number: int) -> dict[str, Any]:
    """A `chat.completion` answering `request` with `text`."""
    prompt_tokens = sum(len(str(m["content"])) for m in request["messages"]) // 4
    return {
        "id": f"chatcmpl-bench{number:08d}",
        "object": "chat.completion",
        "created": 1_700_000_000 + number,
        "model": request["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(text) // 4,
            "total_tokens": prompt_tokens + len(text) // 4,
        },
        "system_fingerprint": "fp_bench",
    }


@dataclass(frozen=True)
class Workload:
    """N distinct chat requests and their answers (`requests[i]` is answered by `responses[i]`)."""

    requests: list[dict[str, Any]]
    responses: list[dict[str, Any]]
    seed: int

    @classmethod
    def build(cls, n: int = 10_000, *, seed: int = 1, data: Path | None = None) -> Workload:
        """`n` distinct requests from the questions in `data` (default: `default_data()`)."""
        questions = read_questions(data or default_data())
        rng = random.Random(seed)
        order = list(range(len(questions)))
        rng.shuffle(order)
        requests: list[dict[str, Any]] = []
        responses: list[dict[str, Any]] = []
        seen: set[bytes] = set()
        # one question per request while they last; then the same questions again under other
        # parameters (the variants below make the request distinct, checked by its JSON)
        for number in itertools.count():
            if len(requests) == n:
                break
            if number >= 50 * n + len(questions):
                raise ValueError(f"could not make {n} distinct requests from {len(questions)}")
            question = questions[order[number % len(order)]]
            body = _request(rng, questions, question)
            raw = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
            if raw in seen:
                continue
            seen.add(raw)
            requests.append(body)
            text = _answer_text(rng, questions, answer_size(rng))
            responses.append(response_for(body, text, len(requests)))
        return cls(requests, responses, seed)

    def order(self, kind: str, count: int, *, s: float = 1.0, seed: int | None = None) -> list[int]:
        """`count` indices into `requests` in the given order: uniform, zipf (exponent s)."""
        rng = random.Random(self.seed * 7919 + 1 if seed is None else seed)
        n = len(self.requests)
        if kind == "uniform":
            return [rng.randrange(n) for _ in range(count)]
        if kind == "zipf":
            ranks = list(range(n))
            rng.shuffle(ranks)  # which request is the most popular: not the first built
            weights = itertools.accumulate(1.0 / (r + 1) ** s for r in range(n))
            cumulative = list(weights)
            total = cumulative[-1]
            return [
                ranks[min(n - 1, bisect.bisect_left(cumulative, rng.random() * total))]
                for _ in range(count)
            ]
        raise ValueError(f"unknown order {kind!r}: use one of {ORDERS}")

    def describe(self) -> str:
        """One line: how many requests, prompt and answer sizes."""
        prompts = sorted(len(orjson.dumps(r)) for r in self.requests)
        answers = sorted(len(r["choices"][0]["message"]["content"]) for r in self.responses)
        big = sum(a >= 1024 for a in answers) / len(answers)

        def q(v: list[int], p: float) -> int:
            return v[min(len(v) - 1, int(p * len(v)))]

        return (
            f"{len(self.requests):,} distinct chat requests (seed {self.seed}; body p50 "
            f"{q(prompts, 0.5)} B, p99 {q(prompts, 0.99)} B); answers p50 {q(answers, 0.5)} B, "
            f"p90 {q(answers, 0.9)} B, max {answers[-1]} B, {big:.0%} at or above 1 KiB"
        )


def _request(rng: random.Random, questions: Sequence[str], question: str) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": rng.choice(SYSTEM_PROMPTS)}]
    if rng.random() < 0.125:  # a follow-up: an earlier turn of the conversation comes first
        earlier = questions[rng.randrange(len(questions))]
        messages.append({"role": "user", "content": earlier})
        messages.append({"role": "assistant", "content": _answer_text(rng, questions, 300)})
    messages.append({"role": "user", "content": question})
    body: dict[str, Any] = {"model": _weighted(rng, MODELS), "messages": messages}
    body["temperature"] = _weighted(rng, TEMPERATURES)
    max_tokens = _weighted(rng, MAX_TOKENS)
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description="Describe the benchmark workload.")
    add_arguments(parser)
    args = parser.parse_args()
    work = Workload.build(args.distinct, seed=args.seed, data=args.data)
    print(work.describe())
    for kind in ORDERS:
        order = work.order(kind, 10 * len(work.requests))
        distinct = len(set(order)) / len(work.requests)
        top = max(order.count(i) for i in set(order[:1000]))
        print(f"{kind}: {distinct:.0%} of the requests seen in {len(order):,} draws; top {top}")


if __name__ == "__main__":
    main()
