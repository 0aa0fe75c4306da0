"""llmemo side by side with the caches users would pick instead, same workload and loop, one run.

Run: pip install -e '.[all,dev,bench]' (the peers are the `bench` extra), then
     python bench/peers.py [--entries 3072] [--exact-queries 2000] [--live-queries 150]
Systems (bench/peer_systems.py, `--systems`): raw redis-py GET (baseline), llmemo exact and
semantic (as shipped, and three layouts of the embedding cache), LangChain community RedisCache,
langchain-redis RedisCache and RedisSemanticCache, LiteLLM Redis and Redis-semantic caches,
RedisVL SemanticCache with and without its EmbeddingsCache. Each runs on its own private Redis
Stack (started here), with all-MiniLM-L6-v2 from llmemo's numpy runtime.

Workload: distinct questions of the QQP dev set (`--data`, read in place): `--entries` are stored
(the `a` side of `--pairs` duplicate and `--pairs` non-duplicate pairs, then other questions),
each with its own `--answer-bytes` answer (other questions strung together, so it compresses
like text), as an application does: a lookup (a miss), then a store. Measured per system:
- bytes per entry: `used_memory` delta from entry `--warm` to the last (both multiples of
  RediSearch's 1,024-vector blocks), and the sum of `MEMORY USAGE` of every key; keys per entry;
- commands per lookup: `INFO commandstats` around single lookups (10 exact hits, 10 semantic
  hits), commands run by a server-side script included;
- in `--rounds` rounds: exact hits, a stored question asked again in Zipf (s = 1.0) and uniform
  order, each question asked of every system in turn (a system whose every lookup embeds is asked
  only `--live-queries` of them); then per system, the embedding computed live: semantic hits
  (the `b` side of other duplicate pairs at the matched threshold `--similarity`; only hits
  count), semantic misses (new questions; only misses count), store cost (a new question looked
  up, then stored);
- quality: share of the `--pairs` duplicate pairs whose `b` gets its `a`'s answer, and of the
  non-duplicate pairs whose `b` gets any answer, at each system's default threshold and at the
  matched one (vectors precomputed: quality does not depend on timing).
BLAS runs one thread (as in bench/semantic_hit.py). Not a test: nothing is asserted.
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # before numpy is imported
os.environ.setdefault("LITELLM_LOG", "ERROR")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch at import

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from importlib.metadata import version  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import checkout  # noqa: E402, F401 - the repository root on sys.path, for devtools/
import numpy as np  # noqa: E402
from peer_systems import SYSTEMS, SharedModel, System  # noqa: E402

from devtools.redis_stack import redis_stack_server  # noqa: E402

DATA = next(
    (
        found
        for folder in Path(__file__).resolve().parents[1:]
        if (found := folder / "shared" / "data" / "qqp_dev_20k.jsonl").is_file()
    ),
    Path("../shared/data/qqp_dev_20k.jsonl"),
)  # the QQP dev set next to the checkout (or a parent of it), read in place
PEERS = ("langchain-community", "langchain-redis", "litellm", "redisvl", "redis")


@dataclass
class Workload:
    stored: list[str]  # questions stored, entry i has answers[i]
    answers: list[str]
    dup: list[tuple[int, str]]  # (stored entry, its paraphrase) for quality
    nondup: list[str]  # questions whose stored pair is not a duplicate
    hits: list[str]  # paraphrases for the latency of semantic hits (entry's `a` stored)
    fresh: list[str]  # new questions (misses, store cost)


def build(path: Path, entries: int, pairs: int, answer_bytes: int, fresh: int) -> Workload:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    dups = [r for r in rows if r["duplicate"] and r["a"] != r["b"]]
    others = [r for r in rows if not r["duplicate"] and r["a"] != r["b"]]
    quality, latency, nondup = dups[:pairs], dups[pairs : 2 * pairs], others[:pairs]
    stored = [r["a"] for r in quality] + [r["a"] for r in latency] + [r["a"] for r in nondup]
    seen = set(stored) | {r["b"] for r in quality + latency + nondup}
    pool = [q for r in rows[len(rows) // 2 :] for q in (r["a"], r["b"])]
    pool = [q for q in dict.fromkeys(pool) if q not in seen]
    stored = list(dict.fromkeys(stored))
    filler = max(0, entries - len(stored))
    stored += pool[:filler]
    rest = pool[filler:]
    words = [q for r in rows[:2000] for q in (r["a"], r["b"])]
    answers = []
    for i in range(len(stored)):
        parts, size, j = [f"Answer {i}:"], 10, i * 7
        while size < answer_bytes:
            parts.append(words[j % len(words)])
            size += len(parts[-1]) + 1
            j += 1
        answers.append(" ".join(parts)[:answer_bytes])
    index = {q: i for i, q in enumerate(stored)}
    return Workload(
        stored=stored,
        answers=answers,
        dup=[(index[r["a"]], r["b"]) for r in quality],
        nondup=[r["b"] for r in nondup],
        hits=[r["b"] for r in latency],
        fresh=rest[:fresh],
    )


@dataclass
class Plan:
    """What each round asks every system: a slice of each list per round."""

    orders: dict[str, list[int]]  # exact hits: stored entries, per access order
    hits: list[str]  # paraphrases (semantic hits)
    misses: list[str]  # new questions (semantic misses)
    news: list[str]  # new questions (store cost)
    live: int  # exact queries for a system that embeds every lookup
    rounds: int
    similarity: float

    def part(self, items: Sequence[Any], r: int) -> list[Any]:
        return list(items[r * len(items) // self.rounds : (r + 1) * len(items) // self.rounds])


def zipf_order(n: int, count: int, rng: np.random.Generator) -> list[int]:
    weights = 1.0 / np.arange(1, n + 1)
    ranks = rng.choice(n, size=count, p=weights / weights.sum())
    return [int(i) for i in rng.permutation(n)[ranks]]


@dataclass
class Result:
    system: System
    times: dict[str, list[float]] = field(default_factory=dict)
    wrong: dict[str, int] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    commands: dict[str, float] = field(default_factory=dict)
    quality: dict[str, tuple[float, float]] = field(default_factory=dict)
    breakdown: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, kind: str, seconds: float) -> None:
        self.times.setdefault(kind, []).append(seconds)

    def pct(self, kind: str, q: float) -> str:
        values = self.times.get(kind)
        if not values:
            return "-"
        us = float(np.percentile(values, q)) * 1e6
        return f"{us:,.0f} us" if us < 1000 else f"{us / 1000:,.2f} ms"


def used_memory(system: System) -> int:
    return int(system.client.info("memory")["used_memory"])


def fill(result: Result, work: Workload, warm: int) -> None:
    """Store every entry as an application does (lookup, a miss, then store); measure memory."""
    system = result.system
    before = 0
    for i, (question, answer) in enumerate(zip(work.stored, work.answers, strict=True)):
        if i == warm:
            before = used_memory(system)
        system.lookup(question)
        system.store(question, answer, i)
    counted = len(work.stored) - warm
    result.memory["used_memory"] = (used_memory(system) - before) / counted
    keys = list(system.client.scan_iter(count=1000))
    usage = sum(int(system.client.memory_usage(k, samples=0) or 0) for k in keys)
    result.memory["memory_usage"] = usage / len(work.stored)
    result.memory["keys"] = len(keys) / len(work.stored)


def commandstats(system: System) -> dict[str, int]:
    stats = system.client.info("commandstats")
    skip = ("cmdstat_info", "cmdstat_config")  # the measurement's own commands
    return {k: int(v["calls"]) for k, v in stats.items() if not k.startswith(skip)}


def timed(
    result: Result, kind: str, questions: Sequence[str], check: Callable[[str, str | None], bool]
) -> None:
    """Look each question up, timing it; `check(question, answer)` says whether it counts."""
    for question in questions:
        started = time.perf_counter()
        answer = result.system.lookup(question)
        elapsed = time.perf_counter() - started
        if check(question, answer):
            result.add(kind, elapsed)
        else:
            result.wrong[kind] = result.wrong.get(kind, 0) + 1


def probe(result: Result, kind: str, questions: Sequence[str], hit: bool, wanted: int = 10) -> None:
    """Commands per lookup, counted one lookup at a time over `wanted` lookups that hit (or miss)."""
    system, totals, breakdown = result.system, [], {}
    for question in questions:
        system.client.config_resetstat()
        answer = system.lookup(question)
        calls = commandstats(system)
        if (answer is not None) == hit:
            totals.append(sum(calls.values()))
            breakdown = calls
            if len(totals) == wanted:
                break
    if totals:
        result.commands[kind] = sum(totals) / len(totals)
        result.breakdown[kind] = {k.removeprefix("cmdstat_"): v for k, v in breakdown.items()}


def quality(result: Result, work: Workload, similarity: float) -> tuple[float, float]:
    system = result.system
    system.set_similarity(similarity)
    right = sum(system.lookup(b) == work.answers[a] for a, b in work.dup)
    wrong = sum(system.lookup(b) is not None for b in work.nondup)
    return right / len(work.dup), wrong / len(work.nondup)


def row(result: Result, matched: float) -> str:
    s = result.system
    cells = [
        s.label,
        result.pct("exact zipf", 50), result.pct("exact zipf", 99),
        result.pct("exact uniform", 50), result.pct("exact uniform", 99),
        result.pct("semantic hit", 50) if s.semantic else "-",
        result.pct("semantic hit", 99) if s.semantic else "-",
        result.pct("semantic miss", 50) if s.semantic else "-",
        result.pct("store", 50),
        f"{result.memory['used_memory']:,.0f}", f"{result.memory['memory_usage']:,.0f}",
        f"{result.memory['keys']:.0f}",
        f"{result.commands.get('exact', 0):.1f}",
        f"{result.commands['semantic']:.1f}" if "semantic" in result.commands else "-",
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def quality_row(result: Result, matched: float) -> str:
    s = result.system
    default = result.quality.get("default", (0.0, 0.0))
    same = result.quality.get("matched", (0.0, 0.0))
    return (
        f"| {s.label} | {s.default_note} | {default[0]:.1%} | {default[1]:.1%} | "
        f"{same[0]:.1%} | {same[1]:.1%} |"
    )


def main() -> None:
    warnings.filterwarnings("ignore", message="The default value of `allowed_objects`")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--entries", type=int, default=3072)
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--answer-bytes", type=int, default=1024)
    parser.add_argument("--exact-queries", type=int, default=2000)
    parser.add_argument("--live-queries", type=int, default=150)
    parser.add_argument("--similarity", type=float, default=0.9, help="the matched threshold")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm", type=int, default=1024)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    args = parser.parse_args()

    live, rounds = args.live_queries, args.rounds
    work = build(args.data, args.entries, args.pairs, args.answer_bytes, 2 * live)
    model = SharedModel()
    model.precompute(work.stored + [b for _, b in work.dup] + work.nondup + work.hits)
    rng = np.random.default_rng(21)
    n = len(work.stored)
    orders = {
        "zipf": zipf_order(n, args.exact_queries, rng),
        "uniform": [int(i) for i in rng.integers(0, n, args.exact_queries)],
    }
    index = {q: i for i, q in enumerate(work.stored)}
    paraphrases = [q for q in work.hits if q not in index]
    hits, spare = paraphrases[:live], paraphrases[live:]
    misses, news = work.fresh[:live], work.fresh[live : 2 * live]
    plan = Plan(orders, hits, misses, news, live, rounds, args.similarity)
    print(
        f"Python {platform.python_version()}, {cpu()}, load {os.getloadavg()[0]:.2f}; "
        f"{n} entries ({args.answer_bytes} B answers), {args.exact_queries} exact queries per "
        f"order ({live} for systems that embed on every lookup), {len(hits)} paraphrases, "
        f"{len(misses)} misses, {len(news)} stores, {rounds} rounds, matched similarity "
        f"{args.similarity}\nversions: " + ", ".join(f"{p} {installed(p)}" for p in PEERS)
    )
    with ExitStack() as stack:
        results = []
        for name in args.systems.split(","):
            server = stack.enter_context(redis_stack_server())
            system = SYSTEMS[name](server.url, model)
            results.append(Result(system))
            started = time.perf_counter()
            fill(results[-1], work, args.warm)
            print(f"  filled {system.label} in {time.perf_counter() - started:.1f} s", flush=True)
            system.set_similarity(args.similarity)
            probe(results[-1], "exact", work.stored[-50:], hit=True)
            if system.semantic:
                probe(results[-1], "semantic", spare, hit=True)
        for r in range(rounds):
            exact_round(results, work, plan, r)
            for result in results:
                one_round(result, plan, r)
            print(f"  round {r + 1} done, load {os.getloadavg()[0]:.2f}", flush=True)
        for result in results:
            if result.system.semantic:
                result.system.quality_mode(True)
                assert result.system.default_similarity is not None
                result.quality["default"] = quality(result, work, result.system.default_similarity)
                result.quality["matched"] = quality(result, work, args.similarity)
        print(
            "\n| system | exact hit p50 (Zipf) | p99 | exact hit p50 (uniform) | p99 | "
            "semantic hit p50 (live embedding) | p99 | semantic miss p50 | store (lookup + write) p50 | "
            "bytes/entry (used_memory) | bytes/entry (MEMORY USAGE) | keys/entry | commands/exact hit | "
            "commands/semantic hit |"
        )
        print("|---|" + "---:|" * 14)
        for result in results:
            print(row(result, args.similarity))
        print(
            f"\n| system | default threshold (similarity) | paraphrases right (default) | "
            f"unrelated answered (default) | paraphrases right ({args.similarity}) | "
            f"unrelated answered ({args.similarity}) |"
        )
        print("|---|---|---:|---:|---:|---:|")
        for result in results:
            if result.system.semantic:
                print(quality_row(result, args.similarity))
        for result in results:
            print(f"commands of one lookup, {result.system.label}: {result.breakdown}")
        dropped = {r.system.label: r.wrong for r in results if r.wrong}
        print(f"\nlookups not counted (a semantic query that missed, a miss that hit): {dropped}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def exact_round(results: list[Result], work: Workload, plan: Plan, r: int) -> None:
    """Round `r` of exact hits, interleaved: each question is asked of every system in turn
    (the first system rotating), so that the shared machine's drift falls on all alike."""
    for order, picks in plan.orders.items():
        for n, i in enumerate(plan.part(picks, r)):
            question, answer = work.stored[i], work.answers[i]
            turn = results[n % len(results) :] + results[: n % len(results)]
            for result in turn:
                if not result.system.exact_timed:
                    continue
                if result.system.embeds_every_lookup and n >= plan.live // plan.rounds:
                    continue
                result.system.model.live = True
                timed(result, f"exact {order}", [question], lambda q, a, want=answer: a == want)
                result.system.model.live = False


def one_round(result: Result, plan: Plan, r: int) -> None:
    """Round `r` of the semantic hits, misses and stores of one system, embedding live."""
    system = result.system
    system.set_similarity(plan.similarity)
    system.model.live = True
    if system.semantic:
        timed(result, "semantic hit", plan.part(plan.hits, r), lambda q, a: a is not None)
        timed(result, "semantic miss", plan.part(plan.misses, r), lambda q, a: a is None)
    for k, question in enumerate(plan.part(plan.news, r)):
        started = time.perf_counter()
        system.lookup(question)
        system.store(question, f"new answer {r} {k} " * 40, 10**6 + k)
        result.add("store", time.perf_counter() - started)
    system.model.live = False


def cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return f"{os.cpu_count()} CPUs"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs"


def installed(package: str) -> str:
    try:
        return version(package)
    except Exception:
        return "not installed"


if __name__ == "__main__":
    main()
