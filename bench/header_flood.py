"""What one huge request header costs `llmemo serve`: time to the answer and the server's memory.

    python bench/header_flood.py [--mb 128]

Starts `llmemo serve --upstream demo --store memory://` on a free port, then sends one request
whose `X-Big` header is `--mb` megabytes (as fast as the socket takes it) and reports the
status, the seconds until the answer, and the server's resident memory before and at its peak
(VmHWM). Then it sends a `--mb / 2` MB header slowly (1 MiB every 20 ms) while timing `/healthz`
on another connection: the slowest `/healthz` answer shows whether one client stalls others.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import checkout  # noqa: F401 - the repository root on sys.path, for devtools/
import httpx

from devtools.redis_server import free_port

MIB = 1024 * 1024


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) // 1024
    return fields


def send_header(port: int, size: int, pause: float = 0.0) -> tuple[str, float]:
    """Send a GET /healthz with an `X-Big` header of `size` bytes; (status line, seconds)."""
    started = time.perf_counter()
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:

        def read() -> None:
            nonlocal answer
            try:
                while chunk := sock.recv(65536):
                    answer += chunk
            except OSError:
                pass

        reader = threading.Thread(target=read)
        reader.start()
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: llmemo\r\nX-Big: ")
            piece = b"a" * MIB
            for _ in range(size // MIB):
                sock.sendall(piece)
                if pause:
                    time.sleep(pause)
            sock.sendall(b"\r\nConnection: close\r\n\r\n")
        except OSError:  # the server refused and closed: expected with a header limit
            pass
        reader.join()
    status = answer.split(b"\r\n", 1)[0].decode(errors="replace") or "(connection closed)"
    return status, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=128)
    args = parser.parse_args()
    port = free_port()
    serve = ["serve", "--upstream", "demo", "--store", "memory://", "--log-level", "warning"]
    server = subprocess.Popen(
        [sys.executable, "-m", "llmemo", *serve, "--port", str(port)],
        env={k: v for k, v in os.environ.items() if not k.startswith("LLMEMO_")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        before = memory(server.pid)
        status, seconds = send_header(port, args.mb * MIB)
        after = memory(server.pid)
        print(f"{args.mb} MB header: {status!r} after {seconds:.2f} s")
        print(f"server memory: {before['VmRSS']} MiB before, peak {after['VmHWM']} MiB")

        slowest, probes = 0.0, 0
        done = threading.Event()

        def probe() -> None:
            nonlocal slowest, probes
            with httpx.Client(base_url=url, timeout=60) as client:
                while not done.is_set() or not probes:
                    probes += 1
                    started = time.perf_counter()
                    client.get("/healthz")
                    slowest = max(slowest, time.perf_counter() - started)
                    time.sleep(0.01)

        prober = threading.Thread(target=probe)
        prober.start()
        status, seconds = send_header(port, args.mb // 2 * MIB, pause=0.02)
        done.set()
        prober.join()
        print(f"{args.mb // 2} MB header sent slowly: {status!r} after {seconds:.2f} s; "
              f"slowest of {probes} /healthz meanwhile {slowest * 1000:.1f} ms")  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
