"""LocalIndex restart with a large index: snapshot save, cold start to the first served hit from
the snapshot (load + replay of the changes made while down), against a rebuild from the records.

Run: .venv/bin/python bench/restart.py [--n 1000000] [--changes 1000] [--dir DIR]
         [--build-expansion EF]
Starts a private Debian redis-server on a free port (the store: the vector records and the
change log stream). Steps, one scope holding every vector (the worst case: one graph of n):
1. n random unit 384-d vectors (seeded; the index keeps float16, the shipped default) written as
   the records an earlier process left (pipelined SETs of `encode_add`, the records' own bytes).
2. Rebuild: a LocalIndex starts with no snapshot file, so it SCANs the n records and builds the
   graph (usearch, every core) - what every start cost before snapshots. Timed. With
   `--build-expansion EF` the graph is built with that insert effort instead of the shipped 128
   (quicker on a loaded machine; the file and the start from it are the same size and work: a
   snapshot must match the links per node, not the efforts), and the time is not a rebuild figure.
3. Snapshot save (`save_snapshot`), timed, file size.
4. While that process is down, another process (a LocalIndex resumed from a copy of the
   snapshot, so its own start is quick) adds `--changes` new vectors and deletes `--changes`.
5. Cold start, in a fresh Python process: imports, store, `LocalIndex(store, snapshot=path)`,
   first search (load + replay of the 2 x changes log events) -> the first hit, which must be a
   vector added while down; a deleted one must not be found. Wall time from spawn to that hit.
   Run twice: the snapshot in the page cache (warm), and evicted from it first with
   posix_fadvise(DONTNEED) on that file only (cold read from disk).
Not a test: the checks in step 5 abort the run if the restart is inconsistent.
"""

from __future__ import annotations

import os
import time

SPAWNED = time.time()  # the interpreter is up; imports follow

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import checkout  # noqa: E402, F401 - the repository root on sys.path, for devtools/
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from devtools.redis_server import RedisServer  # noqa: E402
from llmemo.index import LocalIndex  # noqa: E402
from llmemo.index.ann import GraphParams  # noqa: E402
from llmemo.index.base import IndexItem, IndexScope, record_key  # noqa: E402
from llmemo.index.changelog import encode_add  # noqa: E402
from llmemo.index.snapshot import MAGIC  # noqa: E402
from llmemo.stores import RedisStore  # noqa: E402

DIM = 384
SCOPE = IndexScope("default", 1, None, "f" * 64, "minilm:all-MiniLM-L6-v2")
F32 = npt.NDArray[np.float32]


def entry_key(i: int) -> str:
    return f"llmemo:default:1:x:{{{hashlib.sha256(str(i).encode()).hexdigest()}}}"


def unit_rows(start: int, n: int, seed: int) -> F32:
    rows = np.random.default_rng([seed, start]).standard_normal((n, DIM), dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def store_of(url: str) -> RedisStore:
    """A store whose socket timeout fits a loaded machine (the shipped 0.5 s is for serving)."""
    return RedisStore.from_url(url, socket_timeout=60)


def write_records(store: RedisStore, name: str, n: int, seed: int) -> float:
    """The records of n vectors, as LocalIndex writes them; seconds taken."""
    start = time.perf_counter()
    for first in range(0, n, 20_000):
        block = unit_rows(first, min(20_000, n - first), seed)
        for at in range(0, len(block), 2000):
            pipe = store.client.pipeline(transaction=False)
            for i, vector in enumerate(block[at : at + 2000], start=first + at):
                key = entry_key(i)
                pipe.set(record_key(name, key), encode_add(key, SCOPE, vector, None, "float16"))
            pipe.execute()
    return time.perf_counter() - start


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cold_start(
    url: str, path: Path, added: F32, deleted: F32, count: int, evict: bool
) -> dict[str, float]:
    """Spawn a process that starts from the snapshot and serves one hit; its timings."""
    if evict:
        with open(path, "rb") as file:
            os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    probe = {"added": added.tolist(), "deleted": deleted.tolist(), "count": count}
    spawned = time.time()
    out = subprocess.run(
        [sys.executable, __file__, "--child", url, str(path)],
        input=json.dumps(probe).encode(),
        capture_output=True,
    )
    if out.returncode:
        raise SystemExit(f"the restarted process failed:\n{out.stderr.decode()}")
    reply: dict[str, float] = json.loads(out.stdout)
    reply["spawn_to_hit_s"] = reply["hit_at"] - spawned
    reply["python_s"] = reply["python_at"] - spawned
    reply["imports_s"] = reply["began_at"] - reply["python_at"]
    return reply


def child(url: str, path: str) -> None:
    """Step 5, in the fresh process: start from the snapshot, serve the first hit, check it."""
    began_at, began = time.time(), time.perf_counter()
    probe = json.loads(sys.stdin.read())
    store = store_of(url)
    index = LocalIndex(store, DIM, snapshot=Path(path))
    opened = time.perf_counter()
    found = index.search(np.array(probe["added"][0], dtype=np.float32), SCOPE, k=10)
    hit_at = time.time()
    first = time.perf_counter()
    count = index.count()
    if not index.resumed or "added-0" not in [m.key for m in found] or count != probe["count"]:
        raise SystemExit(f"inconsistent restart: resumed={index.resumed} {found=} {count=}")
    times, top = [], 0
    for i, vector in enumerate(probe["added"]):
        t = time.perf_counter()
        matches = index.search(np.array(vector, dtype=np.float32), SCOPE, k=10)
        times.append(time.perf_counter() - t)
        top += f"added-{i}" in [m.key for m in matches]
    for vector in probe["deleted"]:
        gone = index.search(np.array(vector, dtype=np.float32), SCOPE, min_similarity=0.999)
        if gone:
            raise SystemExit(f"a vector deleted while down is still found: {gone}")
    json.dump(
        {
            "python_at": SPAWNED,
            "began_at": began_at,
            "open_s": opened - began,
            "first_search_s": first - opened,
            "hit_at": hit_at,
            "search_p50_ms": 1000 * float(np.percentile(times, 50)),
            "added_in_top10": top / len(probe["added"]),
            "count": count,
            "rss_mb": rss_mb(),
        },
        sys.stdout,
    )


def snapshot_identity(path: Path) -> bytes:
    """The store identity a snapshot file was saved against (from its header)."""
    with open(path, "rb") as file:
        head = file.read(len(MAGIC) + 8)
        header = json.loads(file.read(int.from_bytes(head[len(MAGIC) :], "little")))
    return str(header["store"]).encode()


def build(store: RedisStore, args: argparse.Namespace, path: Path) -> float:
    """Steps 1-3: the records, the rebuild from them (timed), the snapshot save (timed)."""
    name = LocalIndex(store, DIM, snapshot=None).name
    print(f"records written: {write_records(store, name, args.n, 11):.1f} s")

    ef = args.build_expansion
    graph = GraphParams() if ef is None else GraphParams(expansion_add=ef)
    index = LocalIndex(store, DIM, snapshot=path, graph=graph)
    start = time.perf_counter()
    index.count()
    rebuild = time.perf_counter() - start
    assert not index.resumed and index.snapshot == path
    label = "" if ef is None else f", expansion_add {ef}: NOT the shipped rebuild"
    print(f"rebuild from {args.n:,} records (SCAN + graph build{label}): {rebuild:.1f} s")
    start = time.perf_counter()
    index.save_snapshot()
    save = time.perf_counter() - start
    size = path.stat().st_size
    print(f"snapshot save: {save:.2f} s, {size / 2**20:,.0f} MiB ({size / args.n:,.0f} B/vector)")
    index.close()
    del index
    gc.collect()
    return rebuild


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=None, help="where the snapshot goes")
    parser.add_argument("--build-expansion", type=int, default=None, help="see step 2")
    parser.add_argument("--from-snapshot", type=Path, default=None, help="skip steps 1-3")
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="llmemo-restart-"))
    path, writer_path = work / "index.snapshot", work / "writer.snapshot"
    import usearch

    print(
        f"python {platform.python_version()}, numpy {np.__version__}, usearch {usearch.__version__}"
        f", {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; n={args.n:,},"
        f" changes while down: {args.changes:,} adds + {args.changes:,} deletes"
    )
    rebuild = None
    with RedisServer() as server:
        store = store_of(server.url)
        if args.from_snapshot is None:
            rebuild = build(store, args, path)
        else:
            path = args.from_snapshot
            store.set(LocalIndex(store, DIM).identity_key, snapshot_identity(path), None)
            print(f"steps 1-3 skipped: {path} on a fresh server with its identity and an empty log")

        shutil.copyfile(path, writer_path)
        writer = LocalIndex(store_of(server.url), DIM, snapshot=writer_path)
        start = time.perf_counter()
        writer.count()
        print(f"writer resumed from a copy (in-process, warm): {time.perf_counter() - start:.2f} s")
        added = unit_rows(0, args.changes, 12)
        deleted = unit_rows(0, min(20_000, args.n), 11)[: args.changes]  # rows 0.. of step 1
        start = time.perf_counter()
        for i, vector in enumerate(added):
            writer.add(IndexItem(f"added-{i}", vector, SCOPE))
        writer.delete([entry_key(i) for i in range(args.changes)])
        print(f"changes while down written: {time.perf_counter() - start:.1f} s")
        writer.close()
        writer.store.close()
        del writer
        gc.collect()
        writer_path.unlink()

        for label, evict in (("warm (page cache)", False), ("cold (file evicted)", True)):
            got = cold_start(server.url, path, added, deleted, args.n, evict)
            print(
                f"cold start, snapshot {label}: spawn to first hit {got['spawn_to_hit_s']:.2f} s"
                f" (python {got['python_s']:.2f} s, imports {got['imports_s']:.2f} s, open"
                f" {got['open_s']:.2f} s,"
                f" load + replay + first search {got['first_search_s']:.2f} s); then search p50"
                f" {got['search_p50_ms']:.2f} ms; added found in the top 10:"
                f" {got['added_in_top10']:.1%}; {got['count']:,} vectors; peak RSS"
                f" {got['rss_mb']:,.0f} MB"
            )
        store.close()
    if rebuild is not None:
        print(f"rebuild: {rebuild:.0f} s, vs the starts from the snapshot above (target: <= 30 s)")
        path.unlink()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
