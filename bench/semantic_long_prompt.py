"""Worst-case CPU of one request to `llmemo serve --semantic`: a 3 MB prompt the upstream refuses.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/semantic_long_prompt.py [--mb 3] [--runs 3]

Starts the local upstream (401 without an API key) and the service (semantic layer, minilm,
`memory://` store) in this process, sends a chat request whose last user message is `--mb` MB of
words without any key, and prints the process CPU time the request cost (client, service and
upstream together) and the wall time. Then the same for a prompt of 8,192 characters (the
longest the semantic layer embeds, `MAX_CHARS`) and one of 30 characters, as the baseline. A request is sent once before measuring, so
the model is loaded; each run uses another text, so no embedding or normalisation is reused.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import string
import threading
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import httpx
import uvicorn

from llmemo.service import create_app, load_settings
from llmemo.testing.server import UpstreamServer


def serve(app: object) -> tuple[uvicorn.Server, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="on", log_level="warning")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}"


def text_of(size: int, seed: int) -> str:
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(5000)]
    out = " ".join(rng.choices(words, k=size // 5 + 1))
    return out[:size]


def measure(client: httpx.Client, url: str, text: str) -> tuple[float, float, int]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    cpu, wall = time.process_time(), time.perf_counter()
    status = client.post(url + "/v1/chat/completions", json=body).status_code
    return time.process_time() - cpu, time.perf_counter() - wall, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with UpstreamServer(require_auth=True) as upstream:
        settings = load_settings(
            store="memory://",
            openai_base_url=upstream.openai_base_url,
            semantic=True,
            max_body_bytes=64 * 1024 * 1024,
        )
        server, url = serve(create_app(settings))
        try:
            with httpx.Client(timeout=600) as client:
                measure(client, url, "warm up the model")
                size = int(args.mb * 1_000_000)
                for run in range(args.runs):
                    for label, text in (
                        (f"{args.mb:g} MB prompt", text_of(size, run)),
                        ("8,192-char prompt", text_of(8192, 100 + run)),
                        ("30-char prompt", f"What is the capital of {run}?"),
                    ):
                        cpu, wall, status = measure(client, url, text)
                        print(f"{label:>18}: HTTP {status}, CPU {cpu:7.3f} s, wall {wall:7.3f} s")
        finally:
            server.should_exit = True


if __name__ == "__main__":
    main()
