"""Device-state save throughput: a direct pipe versus through ``vutrace proxy`` (full and hash capture).

A back-end process writes SIZE bytes into the state FD in 1 MiB writes and closes it; the
front-end (this process) reads to end-of-file in 1 MiB reads. Two front-ends: a bare one that
only reads, and a QEMU-like one that sends each chunk on into a socket (QEMU forwards the device
state into its migration stream), drained by another process. Direct: one pipe between back-end
and front-end, enlarged to pipe-max-size. Proxied: the real protocol through a ``vutrace proxy``
process (SET_DEVICE_STATE_FD SAVE with the front-end's pipe, reply without FD), the proxy writing
a capture with ``--state-payload full`` and then ``hash``. Each round runs every combination once,
so all of them see the same machine load; the best round of each is reported. Target: proxied /
direct throughput >= 0.9.

    python benchmarks/state_relay.py [--size-mib 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing import Process
from pathlib import Path

from dissectors.encode import encode

TOP = Path(__file__).resolve().parent.parent
PROXY = (sys.executable, "-m", "vutrace.cli", "proxy")
CHUNK = 1 << 20
CONSUMERS = {"bare": "reads 1 MiB chunks", "qemu": "reads 1 MiB chunks, sends each into a socket (QEMU-like)"}


def sha256_rate() -> float:
    """SHA-256 throughput of this CPU in MB/s: a ceiling for a relay that hashes the whole stream."""
    block = os.urandom(CHUNK)
    digest = hashlib.sha256()
    start = time.perf_counter()
    for _ in range(256):
        digest.update(block)
    return 256 * CHUNK / (time.perf_counter() - start) / 1e6


def pipe_max() -> int:
    with open("/proc/sys/fs/pipe-max-size") as f:
        return int(f.read())


def child(target: Callable, *args: object, close: tuple[int, ...] = ()) -> Process:
    """A forked process running ``target``; it first closes the parent's FDs in ``close`` (so EOF arrives)."""

    def run() -> None:
        for fd in close:
            with contextlib.suppress(OSError):
                os.close(fd)
        target(*args)

    process = Process(target=run, daemon=True)
    process.start()
    return process


def produce(fd: int, size: int) -> None:
    block = os.urandom(CHUNK)
    left = size
    while left:
        view = memoryview(block)[: min(CHUNK, left)]
        while view:
            view = view[os.write(fd, view) :]
        left -= min(CHUNK, left)
    os.close(fd)


def drain(sock: socket.socket) -> None:
    buf = bytearray(CHUNK)
    while sock.recv_into(buf):
        pass


class Consumer:
    """The front-end's side: reads the state FD to EOF, and for ``qemu`` sends each chunk into a socket."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.sink: socket.socket | None = None
        self.drainer: Process | None = None
        if kind == "qemu":
            self.sink, far = socket.socketpair()
            self.drainer = child(drain, far, close=(self.sink.fileno(),))
            far.close()

    def consume(self, fd: int) -> int:
        total = 0
        sink = self.sink
        while chunk := os.read(fd, CHUNK):
            total += len(chunk)
            if sink is not None:
                sink.sendall(chunk)
        os.close(fd)
        if sink is not None:
            sink.close()
        return total

    def finish(self) -> None:
        if self.drainer is not None:
            self.drainer.join()

    @property
    def fds(self) -> tuple[int, ...]:
        return (self.sink.fileno(),) if self.sink is not None else ()


def direct(size: int, kind: str) -> float:
    consumer = Consumer(kind)
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, pipe_max())
    start = time.perf_counter()
    writer = child(produce, w, size, close=(r, *consumer.fds))
    os.close(w)
    assert consumer.consume(r) == size
    consumer.finish()
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


def proxied(directory: str, size: int, payload: str, kind: str) -> tuple[float, int]:
    back_path, front_path, capture = f"{directory}/be.sock", f"{directory}/fe.sock", f"{directory}/state.pcapng"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(back_path)
    listener.listen(1)
    server = child(backend, listener, size)
    listener.close()
    proxy = subprocess.Popen(
        [*PROXY, "--listen", front_path, "--connect", back_path, "-w", capture, "--state-payload", payload],
        cwd=TOP,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not os.path.exists(front_path):
            time.sleep(0.01)
        consumer = Consumer(kind)
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
        assert consumer.consume(r) == size
        consumer.finish()
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
    parser.add_argument("--rounds", type=int, default=3, help="best of this many rounds")
    args = parser.parse_args()
    size = args.size_mib << 20
    best: dict[tuple[str, str], float] = {}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="vtstate") as directory:
        for _ in range(args.rounds):
            for kind in CONSUMERS:
                times = {"direct": direct(size, kind)}
                for payload in ("full", "hash"):
                    times[payload], sizes[payload] = proxied(directory, size, payload, kind)
                for name, elapsed in times.items():
                    best[kind, name] = min(best.get((kind, name), float("inf")), elapsed)
    print(f"state save of {args.size_mib} MiB, best of {args.rounds} rounds")
    print(f"sha256 on this CPU, one stream: {sha256_rate():.0f} MB/s (the hash capture hashes every byte twice)")
    for kind, description in CONSUMERS.items():
        base = size / best[kind, "direct"] / 1e6
        print(f"front-end {kind}: {description}")
        print(f"  direct pipe              {base:6.0f} MB/s")
        for payload in ("full", "hash"):
            rate = size / best[kind, payload] / 1e6
            print(
                f"  proxy, {payload} capture {rate:11.0f} MB/s   ratio {rate / base:.2f} (target >= 0.9)"
                f"   capture {sizes[payload] / 1e6:.0f} MB"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
