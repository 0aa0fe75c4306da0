"""What the feedback loop costs a semantic hit: the served-hit log record and the floor check.

Run: .venv/bin/python bench/semantic_feedback.py [--entries 500] [--queries 300] [--rounds 3]
       [--baseline PATH/TO/OTHER/src]
Starts a private Debian redis-server and a private Redis Stack on free ports.

A sync `Cache` with the semantic layer is filled with `--entries` answers, then asked `--queries`
paraphrases it has never seen, each a semantic hit. The embedder hands out vectors computed once
beforehand (MiniLM), so what is timed is the cache's own work and its store round trips: the
exact GET, the embedding cache GET, the KNN, (LocalIndex) the candidate's GET, the floor GET a
report may have set (this code), and the backfill SET with the hit's log record (one round trip).
With `--baseline SRC`, each round runs the same measurement in a child process on that source
tree first, then on this one (A/B interleaved), and prints both; otherwise this tree only.
"commands per hit": the server's `total_commands_processed` over the loop, per hit (independent
of the machine's load, unlike the times).
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # before numpy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from pathlib import Path  # noqa: E402

import checkout  # noqa: E402, F401 - the repository root on sys.path, for devtools/
import numpy as np  # noqa: E402

TOPICS = [
    "chess", "piano", "python", "spanish", "cooking", "running", "drawing", "poker", "guitar",
    "swimming", "algebra", "typing", "public speaking", "writing", "photography", "knitting",
]  # fmt: skip


def prompt(i: int) -> str:
    return f"How do I get better at {TOPICS[i % len(TOPICS)]} as a member of club {i}?"


def paraphrase(i: int) -> str:
    return f"What is the best way to improve at {TOPICS[i % len(TOPICS)]} for club {i} members?"


def chat(text: str) -> dict[str, object]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


def answer(i: int) -> dict[str, object]:
    return {
        "id": f"c{i}", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Practise. " * 60}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 200, "total_tokens": 220},
    }  # fmt: skip


class Table:
    """An embedder that looks vectors up (computed beforehand): no model time in the loop."""

    def __init__(self, vectors: dict[str, list[float]], dim: int) -> None:
        self.name, self.model, self.dim = "minilm", "all-MiniLM-L6-v2", dim
        self.vectors = vectors

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([self.vectors[t] for t in texts], dtype=np.float32)


def measure(url: str, vectors_file: str, entries: int, queries: int) -> dict[str, float]:
    """p50/p99 (ms) of `queries` semantic hits on `url` (run in this process)."""
    from llmemo import Cache
    from llmemo.core.semantic import SemanticLayer

    vectors = json.loads(Path(vectors_file).read_text())
    embedder = Table(vectors, len(next(iter(vectors.values()))))
    cache = Cache.from_url(url, semantic=SemanticLayer(embedder, threshold=0.8))
    for i in range(entries):
        cache.store(chat(prompt(i)), answer(i))
    import redis

    server = redis.Redis.from_url(url)
    before = int(server.info("stats")["total_commands_processed"])
    times = []
    for i in range(queries):
        started = time.perf_counter()
        result = cache.compute(chat(paraphrase(i)), lambda: answer(-1))
        times.append(time.perf_counter() - started)
        if result.status != "semantic":
            raise SystemExit(f"query {i} was a {result.status}, not a semantic hit")
    cache.close()
    commands = int(server.info("stats")["total_commands_processed"]) - before - 1  # INFO itself
    server.close()
    ms = np.array(times) * 1000
    return {
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "commands": commands / queries,
    }


def child(src: str, url: str, vectors_file: str, entries: int, queries: int) -> dict[str, float]:
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2]);"
        "import semantic_feedback as b;"
        "print(json.dumps(b.measure(sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))))"
    )
    bench = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": src}
    done = subprocess.run(
        [sys.executable, "-c", code, bench, src, url, vectors_file, str(entries), str(queries)],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=500)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", help="Another source tree (its src/) to compare with.")
    args = parser.parse_args()
    if not 0 < args.queries <= args.entries:
        parser.error(
            "--queries must be from 1 to --entries (each asks a stored prompt's paraphrase)"
        )
    from llmemo.embed.minilm import MiniLMEmbedder

    model = MiniLMEmbedder()
    texts = [f(i) for i in range(args.entries) for f in (prompt, paraphrase)]
    vectors = {t: v.tolist() for t, v in zip(texts, model.embed(texts), strict=True)}
    this = str(Path(__file__).resolve().parent.parent / "src")
    sides = (
        [("baseline", args.baseline), ("this tree", this)]
        if args.baseline
        else [("this tree", this)]
    )
    print(f"load {os.getloadavg()[0]:.1f}; {args.entries} entries, {args.queries} semantic hits "
          f"per run, {args.rounds} rounds interleaved (ms)\n")  # fmt: skip
    print(
        "| store | index | tree | round | p50 | p99 | commands per hit |\n"
        "|---|---|---|---:|---:|---:|---:|"
    )
    with ExitStack() as stack:
        import tempfile

        from devtools.redis_server import RedisServer
        from devtools.redis_stack import redis_stack_server

        vectors_file = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "v.json"
        vectors_file.write_text(json.dumps(vectors))
        plain = stack.enter_context(RedisServer())
        search = stack.enter_context(redis_stack_server())
        for name, index, url in (
            ("Redis 7", "LocalIndex", plain.url),
            ("Redis Stack", "RediSearch", search.url),
        ):
            for n in range(args.rounds):
                for side, src in sides:
                    import redis

                    with redis.Redis.from_url(url) as client:
                        if index == "RediSearch":
                            for name_ in client.execute_command("FT._LIST"):
                                client.execute_command("FT.DROPINDEX", name_)
                        client.flushall()
                    got = child(src, url, str(vectors_file), args.entries, args.queries)
                    print(
                        f"| {name} | {index} | {side} | {n + 1} | {got['p50']:.3f} | {got['p99']:.3f} "
                        f"| {got['commands']:.2f} |"
                    )
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
