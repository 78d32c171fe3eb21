"""Round trip of small request/reply messages: direct, through ``vutrace proxy``, and through bare relays.

A back-end process answers every GET_FEATURES with a reply; the front-end (this process) sends
requests one at a time and times each round trip, over five paths: straight to the back-end,
through a real ``vutrace proxy -w FILE`` process (as a user runs it), and through two floor
references that only copy bytes (one thread per connection with epoll, no framing, no FDs, no
recording): a bare Python relay and a bare C relay (``benchmarks/bare_relay.c``, built with gcc
if there is one), blocking in epoll and busy-polling for 200 µs before it blocks (no wake-up of the
relay when the reply comes soon). The paths take turns in blocks of ``--block`` round trips, so all of them see
the same machine load. It also prints the CPU time each relay process spent per round trip, and
times SET_DEVICE_STATE_FD round trips (with a pipe FD; the back-end closes it) direct and through
the proxy, where the proxy makes its pipe and starts a state relay.
Target: proxied / direct median <= 1.5.

    python benchmarks/proxy_rtt.py [--count 20000] [--block 500]
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing import Process
from pathlib import Path

from dissectors.encode import encode

TOP = Path(__file__).resolve().parent.parent
GET_FEATURES = 1
SET_DEVICE_STATE_FD = 42
PROXY = (sys.executable, "-m", "vutrace.cli", "proxy")
C_RELAY_SOURCE = Path(__file__).with_name("bare_relay.c")
SPIN_US = 200
"""How long the busy-polling C relay polls before it blocks."""


def backend(path: str) -> None:
    """Answer GET_FEATURES and SET_DEVICE_STATE_FD (closing the state FD: no state), one thread per connection."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    replies = {
        SET_DEVICE_STATE_FD: encode("SET_DEVICE_STATE_FD", reply=True, u64=0x100),
        GET_FEATURES: encode("GET_FEATURES", reply=True, features=1 << 30),
    }

    def serve(conn: socket.socket) -> None:
        while True:
            header, ancdata, _, _ = conn.recvmsg(12, socket.CMSG_SPACE(4), socket.MSG_WAITALL)
            if len(header) < 12:
                break
            for _, _, fd in ancdata:
                os.close(int.from_bytes(fd[:4], "little"))
            request, _, size = struct.unpack("<III", header)
            if size:
                conn.recv(size, socket.MSG_WAITALL)
            conn.sendall(replies.get(request, replies[GET_FEATURES]))
        conn.close()

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def bare_python_relay(listen: str, connect: str) -> None:
    """The Python floor: copy bytes both ways, one epoll thread per connection, nothing else."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(listen)
    listener.listen(8)

    def relay(a: socket.socket, b: socket.socket) -> None:
        buf = bytearray(65536)
        view = memoryview(buf)
        poller = select.epoll()
        ends = {a.fileno(): (a, b), b.fileno(): (b, a)}
        for fd in ends:
            poller.register(fd, select.EPOLLIN)
        while True:
            for fd, _ in poller.poll():
                src, dst = ends[fd]
                n = src.recv_into(buf)
                if not n:
                    a.close()
                    b.close()
                    return
                dst.sendall(view[:n])

    while True:
        accepted, _ = listener.accept()
        other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        other.connect(connect)
        threading.Thread(target=relay, args=(accepted, other), daemon=True).start()


def build_c_relay(directory: str) -> str | None:
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    binary = f"{directory}/bare_relay"
    subprocess.run([gcc, "-O2", "-pthread", "-o", binary, str(C_RELAY_SOURCE)], check=True)
    return binary


def wait_for_socket(path: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} did not appear")
        time.sleep(0.01)


class Client:
    """One connection to a path, timing round trips."""

    request = encode("GET_FEATURES")

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.reply = bytearray(20)
        self.times: list[int] = []
        self.state_times: list[int] = []

    def run_state(self, count: int) -> None:
        """SET_DEVICE_STATE_FD (SAVE, with a pipe) round trips; the transfer itself (empty) is not timed."""
        request = encode("SET_DEVICE_STATE_FD", direction=0, phase=0)
        for _ in range(count):
            r, w = os.pipe()
            start = time.perf_counter_ns()
            self.sock.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, w.to_bytes(4, "little"))])
            self.sock.recv_into(self.reply, 20, socket.MSG_WAITALL)
            self.state_times.append(time.perf_counter_ns() - start)
            os.close(w)
            while os.read(r, 65536):
                pass
            os.close(r)
            time.sleep(0.002)  # one transfer at a time, as in a migration: let the proxy finish this one

    def run(self, count: int, keep: bool = True) -> None:
        sock, request, reply, clock = self.sock, self.request, self.reply, time.perf_counter_ns
        times = self.times
        for _ in range(count):
            start = clock()
            sock.sendall(request)
            sock.recv_into(reply, 20, socket.MSG_WAITALL)
            if keep:
                times.append(clock() - start)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[int], fraction: float) -> float:
    return sorted(values)[int(len(values) * fraction)] / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000, help="round trips per path")
    parser.add_argument("--block", type=int, default=500, help="round trips per turn")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vtbench") as directory:
        backend_path = f"{directory}/be.sock"
        server = Process(target=backend, args=(backend_path,), daemon=True)
        server.start()
        wait_for_socket(backend_path)
        relays: dict[str, subprocess.Popen | Process] = {}
        paths = {"direct": backend_path}
        paths["vutrace proxy"] = f"{directory}/proxy.sock"
        relays["vutrace proxy"] = subprocess.Popen(
            [*PROXY, "--listen", paths["vutrace proxy"], "--connect", backend_path, "-w", f"{directory}/rtt.pcapng"],
            cwd=TOP,
            stderr=subprocess.DEVNULL,
        )
        paths["bare Python relay"] = f"{directory}/py.sock"
        relays["bare Python relay"] = Process(
            target=bare_python_relay, args=(paths["bare Python relay"], backend_path), daemon=True
        )
        relays["bare Python relay"].start()
        c_relay = build_c_relay(directory)
        if c_relay:
            paths["bare C relay"] = f"{directory}/c.sock"
            relays["bare C relay"] = subprocess.Popen([c_relay, paths["bare C relay"], backend_path])
            spinning = f"bare C relay, polls {SPIN_US} us"
            paths[spinning] = f"{directory}/c-spin.sock"
            relays[spinning] = subprocess.Popen([c_relay, paths[spinning], backend_path, str(SPIN_US)])
        try:
            for path in paths.values():
                wait_for_socket(path)
            clients = {name: Client(path) for name, path in paths.items()}
            for client in clients.values():
                client.run(args.count // 20, keep=False)  # warm-up
            cpu = {name: 0.0 for name in relays}
            names = list(clients)
            for turn in range(max(args.count // args.block, 1)):
                for name in names[turn % len(names) :] + names[: turn % len(names)]:
                    before = cpu_seconds(relays[name].pid) if name in relays else 0.0
                    clients[name].run(args.block)
                    if name in relays:
                        cpu[name] += cpu_seconds(relays[name].pid) - before
                for name in ("direct", "vutrace proxy"):
                    clients[name].run_state(max(args.block // 20, 1))
            for client in clients.values():
                client.sock.close()
        finally:
            for relay in relays.values():
                relay.terminate()
            relays["vutrace proxy"].wait(10)
            server.terminate()
        capture_size = os.path.getsize(f"{directory}/rtt.pcapng")
    direct = statistics.median(clients["direct"].times) / 1000
    count = len(clients["direct"].times)
    print(f"{count} round trips per path, in turns of {args.block}; capture {capture_size} bytes")
    print(f"{'path':26} {'median':>9} {'p90':>9} {'p99':>9} {'÷ direct':>9} {'relay CPU/rt':>13}")
    for name, client in clients.items():
        median = statistics.median(client.times) / 1000
        relay_cpu = f"{cpu[name] / len(client.times) * 1e6:10.1f} us" if name in cpu else ""
        p90, p99 = percentile(client.times, 0.9), percentile(client.times, 0.99)
        print(f"{name:26} {median:6.1f} us {p90:6.1f} us {p99:6.1f} us {median / direct:9.2f} {relay_cpu:>13}")
    proxied = statistics.median(clients["vutrace proxy"].times) / 1000
    print(f"ratio proxied/direct {proxied / direct:.2f} (target <= 1.5)")
    state_direct = statistics.median(clients["direct"].state_times) / 1000
    state_proxied = statistics.median(clients["vutrace proxy"].state_times) / 1000
    print(
        f"SET_DEVICE_STATE_FD round trip ({len(clients['direct'].state_times)} each): direct {state_direct:.1f} us,"
        f" proxied {state_proxied:.1f} us (p90 {percentile(clients['vutrace proxy'].state_times, 0.9):.1f} us)"
    )
    for floor in ("bare Python relay", "bare C relay", f"bare C relay, polls {SPIN_US} us"):
        if floor in clients:
            print(f"floor: {floor} {statistics.median(clients[floor].times) / 1000 / direct:.2f} x direct")
    return 0


if __name__ == "__main__":
    sys.exit(main())
