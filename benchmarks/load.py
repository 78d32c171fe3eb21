"""Benchmark: load a 1,000,000-message capture into a DataFrame, against scapy's rdpcap + dissection.

Builds a capture of QEMU-like traffic (start-up negotiation, device start with memory regions
and eventfds, steady traffic with in-band notifications and IOTLB misses/updates on the back-end
channel, live migration with a device-state transfer, reconnects), then measures in fresh
subprocesses: ``vutrace.load`` (time and peak RSS) and scapy's ``rdpcap`` with per-packet
dissection through the vutrace scapy layer on a subset, extrapolated to the whole file.

Targets: load <= 3 s, peak memory <= 1 GiB, >= 20x faster than scapy.

    .venv/bin/python benchmarks/load.py [--messages N] [--scapy-subset N] [--keep FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dissectors.encode import encode
from vutrace.capture.model import CaptureRecord, EventName, FdAction, FdInfo, FdKind, RecordChannel, RecordKind
from vutrace.capture.pcapng import CaptureWriter

TARGET_SECONDS = 3.0
TARGET_BYTES = 1 << 30
TARGET_RATIO = 20.0
GUEST_RAM = 512 << 20
FEATURES = 0x1_7000_0000 | 1 << 34
PROTOCOL_FEATURES = 0x8_7F3F


class Conversation:
    """Writes one QEMU-like vhost-user connection after another, with increasing timestamps."""

    def __init__(self, writer: CaptureWriter, seed: int = 1) -> None:
        self.writer = writer
        self.random = random.Random(seed)
        self.ts = 1_700_000_000_000_000_000
        self.conn = 0
        self.messages = 0
        self.fd = 20
        self.stream = 0

    def _tick(self, low: int = 2_000, high: int = 40_000) -> int:
        self.ts += self.random.randint(low, high)
        return self.ts

    def _fd(self, kind: FdKind, **details: object) -> FdInfo:
        self.fd = 20 + (self.fd - 19) % 40
        return FdInfo(kind=kind, fd=self.fd, ino=self.random.randint(1000, 1100), **details)

    def message(self, channel: str, sender: str, data: bytes, fds: tuple[FdInfo, ...] = ()) -> None:
        self.writer.write(
            CaptureRecord(RecordKind.MESSAGE, self._tick(), self.conn, RecordChannel(channel), sender, data, fds)
        )
        self.messages += 1

    def request(self, name: str, reply: dict | None = None, fds: tuple[FdInfo, ...] = (), **fields: object) -> None:
        """A front-end request on the main socket; ``reply`` (fields) makes the back-end answer it."""
        need = fields.pop("need_reply", False)
        self.message("main", "frontend", encode(name, need_reply=need, **fields), fds)
        if reply is not None:
            self.message("main", "backend", encode(name, reply=True, **reply))

    def backend_request(self, name: str, reply: dict | None = None, **fields: object) -> None:
        need = fields.pop("need_reply", False)
        self.message("backend", "backend", encode(name, "backend", need_reply=need, **fields))
        if reply is not None:
            self.message("backend", "frontend", encode(name, "backend", reply=True, **reply))

    def event(self, name: EventName, **attrs: object) -> None:
        self.writer.write(
            CaptureRecord(
                RecordKind.EVENT, self._tick(), self.conn, RecordChannel.EVENT, "proxy", event=name, attrs=attrs
            )
        )

    def connection(self, steady_rounds: int, migrate: bool) -> None:
        self.conn += 1
        self.event(EventName.ACCEPT, peer_pid=4242)
        self.startup()
        queues = 2
        self.device_start(queues)
        for _ in range(steady_rounds):
            self.steady(queues)
        if migrate:
            self.migrate(queues)
        self.event(EventName.DISCONNECT, reason="eof")

    def startup(self) -> None:
        ok = {"result": 0}
        self.request("GET_FEATURES", {"features": FEATURES})
        self.request("GET_PROTOCOL_FEATURES", {"protocol_features": PROTOCOL_FEATURES})
        self.request("SET_PROTOCOL_FEATURES", protocol_features=PROTOCOL_FEATURES)
        self.request("GET_QUEUE_NUM", {"queue_num": 2})
        self.request("GET_MAX_MEM_SLOTS", {"max_mem_slots": 509})
        sock = self._fd(FdKind.SOCKET, target="socket:[81234]")
        self.request("SET_BACKEND_REQ_FD", ok, (sock,), need_reply=True)
        self.event(EventName.BACKEND_CHANNEL_OPEN)
        self.request("SET_OWNER")
        for vring in range(2):
            self.request("SET_VRING_CALL", fds=(self._fd(FdKind.EVENTFD, target="anon_inode:[eventfd]"),), vring=vring)
            self.request("SET_VRING_ERR", fds=(self._fd(FdKind.EVENTFD, target="anon_inode:[eventfd]"),), vring=vring)

    def device_start(self, queues: int) -> None:
        ok = {"result": 0}
        self.request("RESET_DEVICE")
        self.request("SET_FEATURES", features=FEATURES)
        ram = self._fd(FdKind.MEMFD, size=GUEST_RAM, memfd_name="pc.ram", target="/memfd:pc.ram (deleted)", seals=0)
        self.request(
            "ADD_MEM_REG",
            ok,
            (ram,),
            need_reply=True,
            guest_addr=0,
            region_size=GUEST_RAM,
            user_addr=0x7F00_0000_0000,
            mmap_offset=0,
        )
        for vring in range(queues):
            base = 0x1_0000 * (vring + 1)
            self.request("SET_VRING_NUM", vring=vring, num=256)
            self.request("SET_VRING_BASE", vring=vring, num=0)
            self.request(
                "SET_VRING_ADDR", vring=vring, desc_addr=base, used_addr=base + 0x2000, avail_addr=base + 0x1000
            )
            self.request("SET_VRING_KICK", fds=(self._fd(FdKind.EVENTFD, target="anon_inode:[eventfd]"),), vring=vring)
        for vring in range(queues):
            self.request("SET_VRING_ENABLE", ok, need_reply=True, vring=vring, num=1)

    def steady(self, queues: int) -> None:
        """Traffic while the device runs: in-band kicks and calls, IOTLB misses and updates, status reads."""
        ok = {"result": 0}
        for _ in range(8):
            vring = self.random.randrange(queues)
            self.request("VRING_KICK", vring=vring, num=0)
            self.backend_request("VRING_CALL", vring=vring, num=0)
        iova = self.random.randrange(1 << 20) << 12
        perm = self.random.choice((1, 3))
        self.backend_request("IOTLB_MSG", ok, need_reply=True, iova=iova, iotlb_size=4096, perm=perm, iotlb_type=1)
        self.request(
            "IOTLB_MSG",
            ok,
            iova=iova,
            iotlb_size=4096,
            uaddr=0x7F00_0000_0000 + iova,
            perm=perm,
            iotlb_type=2,
        )
        self.request("GET_STATUS", {"status": 0xF})

    def migrate(self, queues: int) -> None:
        ok = {"result": 0}
        log = self._fd(FdKind.MEMFD, size=16 << 10, memfd_name="vhost-log", target="/memfd:vhost-log (deleted)")
        self.request("SET_LOG_BASE", {"log_size": 16 << 10, "log_offset": 0}, (log,), log_size=16 << 10, log_offset=0)
        self.request("SET_FEATURES", ok, need_reply=True, features=FEATURES | 1 << 26)
        for vring in range(queues):
            self.request("SET_VRING_ENABLE", ok, need_reply=True, vring=vring, num=0)
        for vring in range(queues):
            self.request("GET_VRING_BASE", {"vring": vring, "num": self.random.randrange(1 << 16)}, vring=vring)
        pipe = FdInfo(FdKind.PIPE, FdAction.SUBSTITUTED, fd=self._fd(FdKind.PIPE).fd, target="pipe:[9911]")
        self.request("SET_DEVICE_STATE_FD", {"u64": 0x100}, (pipe,), direction=0, phase=0)
        self.stream += 1
        self.event(EventName.STATE_OPEN, direction="save")
        state = self.random.randbytes(self.random.randint(10, 40_000))
        for offset in range(0, len(state), 16_384):
            chunk = state[offset : offset + 16_384]
            self.writer.write(
                CaptureRecord(
                    RecordKind.STATE_CHUNK,
                    self._tick(),
                    self.conn,
                    RecordChannel.STATE,
                    "backend",
                    chunk,
                    offset=offset,
                    length=len(chunk),
                    stream=self.stream,
                )
            )
        self.event(EventName.STATE_CLOSE, total=len(state))
        self.request("CHECK_DEVICE_STATE", ok)


def build_capture(path: Path, messages: int) -> int:
    """Write a capture of about ``messages`` messages (plus events and state chunks); returns the message count."""
    with CaptureWriter(path, socket_path="/run/vhost-user-fs.sock") as writer:
        talk = Conversation(writer)
        while talk.messages < messages:
            talk.connection(steady_rounds=talk.random.randint(20, 400), migrate=talk.random.random() < 0.5)
        return talk.messages


def _measure_load(path: str, runs: int = 3) -> dict:
    """Best of ``runs`` loads (wall and CPU seconds) and the peak RSS of this process."""
    import resource

    from vutrace.loader import load

    walls, cpus, rows = [], [], 0
    for _ in range(runs):
        start, cpu = time.perf_counter(), time.process_time()
        frame = load(path)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
        rows = len(frame)
        del frame
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"seconds": min(walls), "cpu": min(cpus), "rows": rows, "maxrss": peak}


def _measure_scapy(path: str) -> dict:
    from scapy.utils import rdpcap

    import vutrace.capture.scapy_layer as layer

    start = time.perf_counter()
    packets = rdpcap(path)
    fields = [layer.fields_of(p) for p in packets]
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": len(fields)}


def _child(function: str, path: str) -> dict:
    code = f"import json, benchmarks.load as b; print(json.dumps(b.{function}({path!r})))"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--scapy-subset", type=int, default=20_000, help="messages in the file scapy reads")
    parser.add_argument("--keep", type=Path, help="keep the big capture at this path")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vutrace-bench-") as tmp:
        big = args.keep or Path(tmp) / "big.pcapng"
        small = Path(tmp) / "small.pcapng"
        start = time.perf_counter()
        count = build_capture(big, args.messages)
        built = time.perf_counter() - start
        subset = build_capture(small, min(args.scapy_subset, args.messages))
        print(f"capture: {count:,} messages, {big.stat().st_size / 2**20:.0f} MiB, written in {built:.1f} s")
        ours = _child("_measure_load", str(big))
        ours_small = _child("_measure_load", str(small))
        scapy = _child("_measure_scapy", str(small))
        extrapolated = scapy["seconds"] * ours["rows"] / scapy["rows"]
        ratio = extrapolated / ours["seconds"]
        ratio_same = scapy["seconds"] / ours_small["seconds"]
        print(
            f"vutrace.load: {ours['rows']:,} rows in {ours['seconds']:.2f} s wall, {ours['cpu']:.2f} s CPU "
            f"(best of 3; target <= {TARGET_SECONDS:.0f} s); "
            f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        print(f"peak RSS of the loading process: {ours['maxrss'] / 2**20:.0f} MiB (target <= 1024 MiB)")
        print(
            f"scapy rdpcap + dissection: {scapy['rows']:,} records ({subset:,} messages) in {scapy['seconds']:.2f} s "
            f"(subset; vutrace.load takes {ours_small['seconds']:.3f} s for the same file, {ratio_same:.0f}x)"
        )
        print(
            f"scapy extrapolated to {ours['rows']:,} rows: {extrapolated:.0f} s -> vutrace.load is {ratio:.0f}x faster "
            f"(target >= {TARGET_RATIO:.0f}x)"
        )
        ok = ours["seconds"] <= TARGET_SECONDS and ours["maxrss"] <= TARGET_BYTES and ratio >= TARGET_RATIO
        print("targets met" if ok else "TARGETS MISSED")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
