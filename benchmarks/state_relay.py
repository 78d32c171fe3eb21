"""Device-state save throughput: a direct pipe versus through ``vutrace proxy`` (full and hash capture).

A back-end process writes SIZE bytes into the state FD in 1 MiB writes and closes it; the
front-end (this process) reads to end-of-file in 1 MiB reads. Two front-ends: a bare one that
only reads, and a QEMU-like one that sends each chunk on into a socket (QEMU forwards the device
state into its migration stream), drained by another process. Direct: one pipe between back-end
and front-end, enlarged to pipe-max-size. Proxied: the real protocol through a ``vutrace proxy``
process (SET_DEVICE_STATE_FD SAVE with the front-end's pipe, reply without FD), the proxy writing
a capture with ``--state-payload full`` and then ``hash``. A reference: the same hop through a C
relay that keeps nothing (``benchmarks/bare_state_relay.c``, splice between the two pipes). Each
round runs every combination once, so all of them see the same machine load; the best round of
each is reported, with the CPU time the whole machine was busy during it (from /proc/stat) and
the ratio that CPU time allows on this machine's CPUs. It also times storing SIZE bytes in the
page cache alone: the one copy a full capture cannot avoid. Target: proxied / direct throughput
>= 0.9.

    python benchmarks/state_relay.py [--size-mib 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import shutil
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
HOP_SOURCE = Path(__file__).with_name("bare_state_relay.c")
CONSUMERS = {"bare": "reads 1 MiB chunks", "qemu": "reads 1 MiB chunks, sends each into a socket (QEMU-like)"}


def sha256_rate() -> float:
    """SHA-256 throughput of this CPU in MB/s: a ceiling for a relay that hashes the whole stream."""
    block = os.urandom(CHUNK)
    digest = hashlib.sha256()
    start = time.perf_counter()
    for _ in range(256):
        digest.update(block)
    return 256 * CHUNK / (time.perf_counter() - start) / 1e6


def machine_busy_seconds() -> float:
    """CPU time all CPUs of the machine spent busy so far (everything but idle and iowait), from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


class Span:
    """Wall time and machine CPU time from construction to :meth:`stop`."""

    def __init__(self) -> None:
        self.start, self.busy = time.perf_counter(), machine_busy_seconds()

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.start, machine_busy_seconds() - self.busy


def page_cache_seconds(directory: str, size: int) -> float:
    """Time to store ``size`` bytes in a file's page cache (1 MiB writes, one copy): what full capture adds."""
    block = os.urandom(CHUNK)
    path = f"{directory}/page-cache.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    start = time.perf_counter()
    for _ in range(size // CHUNK):
        os.write(fd, block)
    elapsed = time.perf_counter() - start
    os.close(fd)
    os.unlink(path)
    return elapsed


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


def save(consumer: Consumer, writer_end: int, reader_end: int, size: int, span: Span) -> tuple[float, float]:
    """A back-end process writes ``size`` bytes into ``writer_end``; ``consumer`` reads ``reader_end`` to EOF."""
    writer = child(produce, writer_end, size, close=(reader_end, *consumer.fds))
    os.close(writer_end)
    assert consumer.consume(reader_end) == size
    consumer.finish()
    measured = span.stop()
    writer.join()
    return measured


def direct(size: int, kind: str) -> tuple[float, float]:
    consumer = Consumer(kind)
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, pipe_max())
    return save(consumer, w, r, size, Span())


def build_hop(directory: str) -> str | None:
    """``bare_state_relay.c`` built with gcc (None without gcc)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    binary = f"{directory}/bare_state_relay"
    subprocess.run([gcc, "-O2", "-o", binary, str(HOP_SOURCE)], check=True)
    return binary


def hop(binary: str, size: int, kind: str) -> tuple[float, float]:
    """Through the C relay that keeps nothing: writer's pipe -> splice -> reader's pipe."""
    consumer = Consumer(kind)
    writer_r, writer_w = os.pipe()
    reader_r, reader_w = os.pipe()
    for fd in (writer_w, reader_w):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, pipe_max())
    span = Span()
    relay = subprocess.Popen([binary], stdin=writer_r, stdout=reader_w)
    os.close(writer_r)
    os.close(reader_w)
    measured = save(consumer, writer_w, reader_r, size, span)
    relay.wait(60)
    return measured


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


def proxied(directory: str, size: int, payload: str, kind: str) -> tuple[tuple[float, float], int]:
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
        span = Span()
        sock.sendmsg(
            [encode("SET_DEVICE_STATE_FD", direction=0, phase=0)],
            [(socket.SOL_SOCKET, socket.SCM_RIGHTS, w.to_bytes(4, "little"))],
        )
        os.close(w)
        sock.recv(20, socket.MSG_WAITALL)
        assert consumer.consume(r) == size
        consumer.finish()
        measured = span.stop()
        sock.close()
        server.join()
    finally:
        proxy.terminate()
        proxy.wait(60)
        os.unlink(back_path)
    captured = os.path.getsize(capture)
    os.unlink(capture)
    return measured, captured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="state size in MiB (default 1024)")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many rounds")
    args = parser.parse_args()
    size = args.size_mib << 20
    best: dict[tuple[str, str], tuple[float, float]] = {}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="vtstate") as directory:
        binary = build_hop(directory)
        page_cache = min(page_cache_seconds(directory, size) for _ in range(args.rounds))
        for _ in range(args.rounds):
            for kind in CONSUMERS:
                runs = {"direct": direct(size, kind)}
                for payload in ("full", "hash"):
                    runs[payload], sizes[payload] = proxied(directory, size, payload, kind)
                if binary:
                    runs["hop"] = hop(binary, size, kind)
                for name, run in runs.items():
                    best[kind, name] = min(best.get((kind, name), (float("inf"), 0.0)), run)
    cpus = os.cpu_count() or 1
    print(f"state save of {args.size_mib} MiB, best of {args.rounds} rounds; {cpus} CPUs")
    print(f"sha256 on this CPU, one stream: {sha256_rate():.0f} MB/s (the hash capture hashes every byte twice)")
    print(
        f"storing it in the page cache alone (1 MiB writes, one CPU): {page_cache:.2f} s ({size / page_cache / 1e6:.0f}"
        " MB/s), the copy a full capture adds"
    )
    print("  machine CPU: CPU-seconds all CPUs were busy during the transfer (other jobs included)")
    print("  CPU bound: the ratio the path could reach if it kept every CPU busy: direct time / (machine CPU / CPUs)")
    for kind, description in CONSUMERS.items():
        direct_time = best[kind, "direct"][0]
        print(f"front-end {kind}: {description}")
        names = {"direct": "direct pipe", "full": "proxy, full capture", "hash": "proxy, hash capture"}
        names["hop"] = "C relay, no capture"
        for name, label in names.items():
            if (kind, name) not in best:
                continue
            elapsed, cpu = best[kind, name]
            line = f"  {label:20} {size / elapsed / 1e6:6.0f} MB/s   ratio {direct_time / elapsed:4.2f}"
            line += f"   machine CPU {cpu:5.2f} s   CPU bound {direct_time / max(direct_time, cpu / cpus):4.2f}"
            if name in sizes:
                line += f"   capture {sizes[name] / 1e6:.0f} MB"
            print(line)
    print("target: proxied / direct throughput >= 0.9")
    return 0


if __name__ == "__main__":
    sys.exit(main())
