"""Device-state save throughput: a direct pipe versus through ``vutrace proxy`` (full and hash capture).

A back-end process writes SIZE bytes into the state FD in 1 MiB writes and closes it; the
front-end (this process) reads to end-of-file in 1 MiB reads, as QEMU does. Direct: one pipe
between them, enlarged to pipe-max-size. Proxied: the real protocol through a ``vutrace proxy``
process (SET_DEVICE_STATE_FD SAVE with the front-end's pipe, reply without FD), the proxy writing
a capture with ``--state-payload full`` and then ``hash``. Target: proxied / direct throughput >= 0.9.

    python benchmarks/state_relay.py [--size-mib 1024] [--rounds 2]
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from multiprocessing import Process
from pathlib import Path

from dissectors.encode import encode

TOP = Path(__file__).resolve().parent.parent
PROXY = (sys.executable, "-m", "vutrace.cli", "proxy")
CHUNK = 1 << 20


def sha256_rate() -> float:
    """SHA-256 throughput of this CPU in MB/s: a ceiling for any relay that hashes the whole stream."""
    block = os.urandom(CHUNK)
    digest = hashlib.sha256()
    start = time.perf_counter()
    for _ in range(256):
        digest.update(block)
    return 256 * CHUNK / (time.perf_counter() - start) / 1e6


def pipe_max() -> int:
    with open("/proc/sys/fs/pipe-max-size") as f:
        return int(f.read())


def produce(fd: int, size: int) -> None:
    block = os.urandom(CHUNK)
    left = size
    while left:
        view = memoryview(block)[: min(CHUNK, left)]
        while view:
            view = view[os.write(fd, view) :]
        left -= min(CHUNK, left)
    os.close(fd)


def consume(fd: int) -> int:
    total = 0
    while chunk := os.read(fd, CHUNK):
        total += len(chunk)
    os.close(fd)
    return total


def direct(size: int) -> float:
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, pipe_max())
    start = time.perf_counter()
    writer = Process(target=produce, args=(w, size))
    writer.start()
    os.close(w)
    assert consume(r) == size
    elapsed = time.perf_counter() - start
    writer.join()
    return elapsed


def backend(listener: socket.socket, size: int) -> None:
    """Accept one connection, take the state FD from SET_DEVICE_STATE_FD, reply, write the state."""
    conn, _ = listener.accept()
    header, ancdata, _, _ = conn.recvmsg(12, socket.CMSG_SPACE(4), socket.MSG_WAITALL)
    conn.recv(8, socket.MSG_WAITALL)
    state_fd = int.from_bytes(ancdata[0][2][:4], "little")
    assert header[:4] == (42).to_bytes(4, "little")
    conn.sendall(encode("SET_DEVICE_STATE_FD", reply=True, u64=0x100))
    produce(state_fd, size)
    conn.recv(1)


def proxied(directory: str, size: int, payload: str) -> tuple[float, int]:
    back_path, front_path, capture = f"{directory}/be.sock", f"{directory}/fe.sock", f"{directory}/state.pcapng"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(back_path)
    listener.listen(1)
    server = Process(target=backend, args=(listener, size))
    server.start()
    listener.close()
    proxy = subprocess.Popen(
        [*PROXY, "--listen", front_path, "--connect", back_path, "-w", capture, "--state-payload", payload],
        cwd=TOP,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not os.path.exists(front_path):
            time.sleep(0.01)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(front_path)
        r, w = os.pipe()
        start = time.perf_counter()
        sock.sendmsg(
            [encode("SET_DEVICE_STATE_FD", direction=0, phase=0)],
            [(socket.SOL_SOCKET, socket.SCM_RIGHTS, w.to_bytes(4, "little"))],
        )
        os.close(w)
        sock.recv(20, socket.MSG_WAITALL)
        assert consume(r) == size
        elapsed = time.perf_counter() - start
        sock.close()
        server.join()
    finally:
        proxy.terminate()
        proxy.wait(60)
        os.unlink(back_path)
    captured = os.path.getsize(capture)
    os.unlink(capture)
    return elapsed, captured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="state size in MiB (default 1024)")
    parser.add_argument("--rounds", type=int, default=2, help="best of this many runs each")
    args = parser.parse_args()
    size = args.size_mib << 20
    results: dict[str, float] = {}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="vtstate") as directory:
        for _ in range(args.rounds):
            results["direct"] = min(results.get("direct", float("inf")), direct(size))
            for payload in ("full", "hash"):
                elapsed, captured = proxied(directory, size, payload)
                results[payload] = min(results.get(payload, float("inf")), elapsed)
                sizes[payload] = captured
    base = size / results["direct"] / 1e6
    print(f"state save of {args.size_mib} MiB, best of {args.rounds}")
    print(f"direct pipe            {base:8.0f} MB/s")
    print(f"sha256 of 256 MiB      {sha256_rate():8.0f} MB/s   (ceiling: the proxy hashes the whole stream)")
    for payload in ("full", "hash"):
        rate = size / results[payload] / 1e6
        print(
            f"proxy, {payload} capture {rate:9.0f} MB/s   ratio {rate / base:.2f} (target >= 0.9)"
            f"   capture {sizes[payload] / 1e6:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
