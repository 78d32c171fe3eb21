"""Round trip of small request/reply messages, direct versus through ``vutrace proxy``, side by side.

A back-end process answers every GET_FEATURES with a reply; the front-end (this process) sends
requests one at a time and times each round trip. The proxy runs as a real ``vutrace proxy``
process writing a capture, as a user would run it. Direct and proxied rounds alternate so
both see the same machine load. Target: proxied / direct median <= 1.5.

    python benchmarks/proxy_rtt.py [--count 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import Process
from pathlib import Path

from dissectors.encode import encode
from dissectors.header import parse_header

TOP = Path(__file__).resolve().parent.parent
PROXY = (sys.executable, "-m", "vutrace.cli", "proxy")


def backend(path: str) -> None:
    """Answer each request with a GET_FEATURES reply, until the front-end goes away."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    reply = encode("GET_FEATURES", reply=True, features=1 << 30)
    header = bytearray(12)
    while True:
        conn, _ = listener.accept()
        while True:
            if conn.recv_into(header, 12, socket.MSG_WAITALL) < 12:
                break
            size = parse_header(header).size
            if size:
                conn.recv(size, socket.MSG_WAITALL)
            conn.sendall(reply)
        conn.close()


def wait_for_socket(path: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} did not appear")
        time.sleep(0.01)


def round_trips(path: str, count: int) -> list[int]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    request = encode("GET_FEATURES")
    reply = bytearray(20)
    times = []
    clock = time.perf_counter_ns
    for _ in range(count // 20):  # warm-up
        sock.sendall(request)
        sock.recv_into(reply, 20, socket.MSG_WAITALL)
    for _ in range(count):
        start = clock()
        sock.sendall(request)
        sock.recv_into(reply, 20, socket.MSG_WAITALL)
        times.append(clock() - start)
    sock.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000, help="round trips per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--state-payload", default="full")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vtbench") as directory:
        backend_path = f"{directory}/be.sock"
        proxy_path = f"{directory}/fe.sock"
        server = Process(target=backend, args=(backend_path,), daemon=True)
        server.start()
        wait_for_socket(backend_path)
        proxy = subprocess.Popen(
            [*PROXY, "--listen", proxy_path, "--connect", backend_path, "-w", f"{directory}/rtt.pcapng"],
            cwd=TOP,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_socket(proxy_path)
            direct: list[int] = []
            proxied: list[int] = []
            for _ in range(args.rounds):
                direct += round_trips(backend_path, args.count)
                proxied += round_trips(proxy_path, args.count)
        finally:
            proxy.terminate()
            proxy.wait(10)
            server.terminate()
        capture_size = os.path.getsize(f"{directory}/rtt.pcapng")
    d = statistics.median(direct) / 1000
    p = statistics.median(proxied) / 1000
    print(f"round trips: {len(direct)} direct, {len(proxied)} proxied (capture {capture_size} bytes)")
    print(f"median direct   {d:8.1f} us   p99 {sorted(direct)[len(direct) * 99 // 100] / 1000:8.1f} us")
    print(f"median proxied  {p:8.1f} us   p99 {sorted(proxied)[len(proxied) * 99 // 100] / 1000:8.1f} us")
    print(f"ratio proxied/direct {p / d:.2f} (target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
