"""Real-software scenarios run through vutrace proxies: virtiofs live migration, DPDK, vhost-user-blk.

Each scenario starts the real programs (see ``vutrace.realpeers``), puts a ``vutrace proxy``
process in front of every back-end, drives the run and returns the capture paths plus what the
programs themselves reported. Two scenarios put vutrace's own peers (``vutrace sim``) opposite
real software: the reference front-end migrating virtiofsd's state, and the reference back-end
serving DPDK's virtio-user. The interop tests assert on the results; ``scripts/make-samples``
keeps the captures as samples.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vutrace import realpeers
from vutrace.realpeers import PeerPaths, Process

GUEST_SCRIPT = """\
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo content-$i > /mnt/file-$i; done
mkdir -p /mnt/dir/sub && echo deep > /mnt/dir/sub/deep
exec 3</mnt/file-1
exec 4>>/mnt/appended
echo before >&4
echo "vutrace-guest: files ready"
while true; do
    if [ -f /mnt/go ]; then
        read line <&3
        echo after >&4
        echo "vutrace-guest: read $line"
        rm /mnt/go
    fi
    sleep 0.2
done
"""
"""Runs in the guest from the virtiofs share: creates files, keeps two open, reads after migration."""


class Processes:
    """Starts processes with their logs in one folder and stops all of them, newest first."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[Process] = []

    def start(self, name: str, argv: Sequence[str]) -> Process:
        process = Process(argv, self.workdir / f"{name}.log", name)
        self.started.append(process)
        return process

    def proxy(self, name: str, listen: Path, connect: Path, capture: Path, *extra: str) -> Process:
        argv = [sys.executable, "-m", "vutrace.cli", "proxy", "--listen", str(listen), "--connect", str(connect)]
        process = self.start(name, [*argv, "-w", str(capture), *extra])
        realpeers.wait_for(lambda: listen.exists() or not process.alive(), 15, f"proxy {name} to listen")
        if not process.alive():
            raise RuntimeError(f"proxy {name} exited: {process.output()}")
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop()


@dataclass
class MigrationOutcome:
    """A virtiofs live migration, through two proxies unless run with ``proxied=False``."""

    source_capture: Path | None
    destination_capture: Path | None
    shared: Path
    destination_console: str
    query_migrate: dict
    logs: dict[str, str] = field(default_factory=dict)
    qemu_traces: dict[str, Path] = field(default_factory=dict)
    """QEMU's vhost_user_read/vhost_user_write trace per side ("src", "dst"), with ``trace_vhost_user``."""
    qmp_events: dict[str, list[dict]] = field(default_factory=dict)
    """The QMP events (STOP, RESUME, ... with QEMU's µs timestamps) each side sent while QMP was driven."""


QEMU_VHOST_USER_TRACE = ("-trace", "vhost_user_read", "-trace", "vhost_user_write", "-msg", "timestamp=on")
"""QEMU options that log every vhost-user message QEMU writes or reads, with a µs wall-clock time."""


def qemu_trace_argv(trace_file: Path) -> list[str]:
    return [*QEMU_VHOST_USER_TRACE, "-D", str(trace_file)]


def virtiofs_migration(
    peers: PeerPaths,
    procs: Processes,
    *,
    guest: bool,
    virtiofsd_extra: Sequence[str] = (),
    source_proxy_extra: Sequence[str] = (),
    timeout: float = 90.0,
    proxied: bool = True,
    trace_vhost_user: bool = False,
) -> MigrationOutcome:
    """Source and destination QEMU + virtiofsd, each back-end behind a proxy; local live migration.

    With ``guest`` a Linux guest mounts the share, creates files and keeps two open; after the
    migration the destination guest reads through a pre-migration FD. With ``proxied=False`` each
    QEMU connects straight to its virtiofsd (no captures: the same run without vutrace). With
    ``trace_vhost_user`` each QEMU logs the vhost-user messages it writes and reads (see
    ``qemu_traces``).
    """
    workdir = procs.workdir
    shared = workdir / "shared"
    shared.mkdir(exist_ok=True)
    (shared / ".vutrace-guest.sh").write_text(GUEST_SCRIPT)
    sockets = {name: workdir / f"{name}.sock" for name in ("vsrc", "vdst", "psrc", "pdst")}
    captures = {side: workdir / f"{side}.pcapng" for side in ("src", "dst")}
    traces = {side: workdir / f"{side}.trace" for side in ("src", "dst")} if trace_vhost_user else {}
    vsrc = procs.start("virtiofsd-src", realpeers.virtiofsd_argv(peers, sockets["vsrc"], shared, virtiofsd_extra))
    vdst = procs.start("virtiofsd-dst", realpeers.virtiofsd_argv(peers, sockets["vdst"], shared, virtiofsd_extra))
    started = [vsrc, vdst]
    realpeers.wait_for(lambda: sockets["vsrc"].exists() and sockets["vdst"].exists(), 15, "virtiofsd sockets")
    if proxied:
        started.append(procs.proxy("proxy-src", sockets["psrc"], sockets["vsrc"], captures["src"], *source_proxy_extra))
        started.append(procs.proxy("proxy-dst", sockets["pdst"], sockets["vdst"], captures["dst"]))
        chardevs = {"src": sockets["psrc"], "dst": sockets["pdst"]}
    else:
        chardevs = {"src": sockets["vsrc"], "dst": sockets["vdst"]}

    def qemu(side: str) -> Process:
        argv = realpeers.qemu_argv(
            peers, workdir, side, realpeers.virtiofs_devices(chardevs[side]), guest=guest, incoming=side == "dst"
        )
        if side in traces:
            argv += qemu_trace_argv(traces[side])
        return procs.start(f"qemu-{side}", argv)

    qsrc, qdst = qemu("src"), qemu("dst")
    started = [qsrc, qdst, *started]
    src_qmp = realpeers.QMP(workdir / "src.qmp")
    dst_qmp = realpeers.QMP(workdir / "dst.qmp")
    console_src, console_dst = workdir / "src.console", workdir / "dst.console"
    try:
        if guest:
            realpeers.wait_for(
                lambda: console_src.exists() and "files ready" in console_src.read_text(), timeout, "the source guest"
            )
        info = realpeers.migrate(src_qmp, dst_qmp, f"unix:{workdir / 'migration.sock'}", timeout=timeout)
        if guest:
            (shared / "go").touch()
            realpeers.wait_for(
                lambda: "vutrace-guest: read" in console_dst.read_text(),
                timeout,
                "the destination guest to read its file",
            )
    finally:
        src_qmp.close()
        dst_qmp.close()
        for process in started:
            process.stop()
    return MigrationOutcome(
        captures["src"] if proxied else None,
        captures["dst"] if proxied else None,
        shared,
        console_dst.read_text() if console_dst.exists() else "",
        info,
        {p.name: p.output() for p in started},
        traces,
        {"src": src_qmp.events, "dst": dst_qmp.events},
    )


def virtiofs_migration_refused(peers: PeerPaths, procs: Processes, hidden_bit: int = 19) -> tuple[Path, str]:
    """Migrate with the source proxy hiding a protocol feature bit; returns (capture, QEMU's error)."""
    workdir = procs.workdir
    shared = workdir / "shared"
    shared.mkdir(exist_ok=True)
    sockets = {name: workdir / f"{name}.sock" for name in ("vsrc", "vdst", "psrc", "pdst")}
    capture = workdir / "src.pcapng"
    procs.start("virtiofsd-src", realpeers.virtiofsd_argv(peers, sockets["vsrc"], shared))
    procs.start("virtiofsd-dst", realpeers.virtiofsd_argv(peers, sockets["vdst"], shared))
    realpeers.wait_for(lambda: sockets["vsrc"].exists() and sockets["vdst"].exists(), 15, "virtiofsd sockets")
    procs.proxy("proxy-src", sockets["psrc"], sockets["vsrc"], capture, "--hide-protocol-features", str(hidden_bit))
    procs.proxy("proxy-dst", sockets["pdst"], sockets["vdst"], workdir / "dst.pcapng")
    procs.start(
        "qemu-src", realpeers.qemu_argv(peers, workdir, "src", realpeers.virtiofs_devices(sockets["psrc"]), guest=False)
    )
    procs.start(
        "qemu-dst",
        realpeers.qemu_argv(
            peers, workdir, "dst", realpeers.virtiofs_devices(sockets["pdst"]), guest=False, incoming=True
        ),
    )
    src_qmp = realpeers.QMP(workdir / "src.qmp")
    dst_qmp = realpeers.QMP(workdir / "dst.qmp")
    try:
        realpeers.migrate(src_qmp, dst_qmp, f"unix:{workdir / 'migration.sock'}", timeout=60)
    except RuntimeError as error:
        message = str(error)
    else:
        message = ""
    finally:
        src_qmp.close()
        dst_qmp.close()
        procs.stop_all()
    return capture, message


DPDK_SETUP_REQUESTS = (
    "SET_OWNER",
    "GET_FEATURES",
    "SET_FEATURES",
    "SET_MEM_TABLE",
    "SET_VRING_NUM",
    "SET_VRING_BASE",
    "SET_VRING_ADDR",
    "SET_VRING_KICK",
    "SET_VRING_CALL",
    "SET_VRING_ENABLE",
    "GET_VRING_BASE",
)
"""Front-end requests DPDK virtio-user sends while it sets a device up and stops it (observed with 22.11)."""


def testpmd_argv(peers: PeerPaths, prefix: str, cpu: int, vdev: str, *extra: str) -> list[str]:
    """DPDK testpmd without hugepages (memfd-backed memory, so SET_MEM_TABLE can pass FDs)."""
    return [
        peers.testpmd,
        *("--lcores", f"0@{cpu},1@{cpu}", "--no-pci", "--no-huge", "--no-shconf", "--no-telemetry"),
        *("-m", "256", "--file-prefix", prefix, "--vdev", vdev, "--"),
        *("--no-numa", "--total-num-mbufs", "8192", "--stats-period", "1", "--nb-cores", "1", *extra),
    ]


def forwarded_packets(testpmd_output: str) -> int:
    """RX packets from testpmd's final 'Accumulated forward statistics' block."""
    final = testpmd_output.rsplit("Accumulated forward statistics", 1)[-1]
    match = re.search(r"RX-packets:\s*(\d+)", final)
    return int(match.group(1)) if match else 0


def forward_statistics(testpmd_output: str) -> dict[str, int]:
    """Every counter of testpmd's final 'Accumulated forward statistics' block (RX-packets, TX-dropped, ...)."""
    if "Accumulated forward statistics" not in testpmd_output:
        return {}
    final = testpmd_output.rsplit("Accumulated forward statistics", 1)[-1].split("\n\n", 1)[0]
    return {name: int(value) for name, value in re.findall(r"([RT]X-[a-z]+):\s*(\d+)", final)}


@dataclass
class DatapathOutcome:
    capture: Path
    frontend_rx: int
    backend_rx: int
    logs: dict[str, str]


def dpdk_testpmd(peers: PeerPaths, procs: Processes, seconds: float = 3.0) -> DatapathOutcome:
    """testpmd virtio-user front-end ↔ testpmd vhost PMD back-end through a proxy, io forwarding."""
    workdir = procs.workdir
    backend_sock, proxy_sock, capture = workdir / "vhost.sock", workdir / "proxy.sock", workdir / "dpdk.pcapng"
    backend = procs.start("testpmd-backend", testpmd_argv(peers, "vu-be", 1, f"net_vhost0,iface={backend_sock}"))
    realpeers.wait_for(lambda: backend_sock.exists() or not backend.alive(), 30, "the vhost PMD socket")
    if not backend.alive():
        raise RuntimeError(f"testpmd back-end exited: {backend.output()[-2000:]}")
    proxy = procs.proxy("proxy", proxy_sock, backend_sock, capture)
    frontend = procs.start(
        "testpmd-frontend",
        testpmd_argv(peers, "vu-fe", 0, f"net_virtio_user0,path={proxy_sock},queues=1", "--tx-first"),
    )
    realpeers.wait_for(
        lambda: "Port statistics" in frontend.output() or not frontend.alive(), 60, "the front-end datapath"
    )
    time.sleep(seconds)
    frontend.stop(signal.SIGINT, timeout=20)
    backend.stop(signal.SIGINT, timeout=20)
    proxy.stop()
    return DatapathOutcome(
        capture,
        forwarded_packets(frontend.output()),
        forwarded_packets(backend.output()),
        {p.name: p.output() for p in (frontend, backend, proxy)},
    )


@dataclass
class BlockOutcome:
    capture: Path
    disk: Path
    console: str


def vhost_user_blk(peers: PeerPaths, procs: Processes, timeout: float = 90.0) -> BlockOutcome:
    """qemu-storage-daemon vhost-user-blk behind a proxy, QEMU as front-end; the guest writes and reads."""
    workdir = procs.workdir
    disk, qsd_sock, proxy_sock = workdir / "disk.img", workdir / "qsd.sock", workdir / "proxy.sock"
    capture = workdir / "blk.pcapng"
    with open(disk, "wb") as image:
        image.truncate(16 * 1024 * 1024)
    export = f"type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path={qsd_sock},writable=on"
    qsd = procs.start(
        "qsd",
        [peers.qsd, "--blockdev", f"driver=file,filename={disk},node-name=disk0,cache.direct=off", "--export", export],
    )
    realpeers.wait_for(lambda: qsd_sock.exists() or not qsd.alive(), 15, "qemu-storage-daemon's socket")
    proxy = procs.proxy("proxy", proxy_sock, qsd_sock, capture)
    devices = ["-chardev", f"socket,id=blk,path={proxy_sock}", "-device", "vhost-user-blk-pci,chardev=blk,num-queues=1"]
    qemu = procs.start("qemu", realpeers.qemu_argv(peers, workdir, "blk", devices, guest=True, append="vutrace.blk=1"))
    console = workdir / "blk.console"
    try:
        realpeers.wait_for(lambda: console.exists() and "blk ok" in console.read_text(), timeout, "guest disk I/O")
    finally:
        qemu.stop()
        proxy.stop()
        qsd.stop()
    return BlockOutcome(capture, disk, console.read_text())


VUTRACE = (sys.executable, "-m", "vutrace.cli")
"""The vutrace command line, run with this interpreter."""


@dataclass
class SimStateOutcome:
    """vutrace's reference front-end saving a back-end's state on one socket and loading it on another."""

    source_capture: Path
    destination_capture: Path
    returncode: int
    result: dict
    """The front-end's ``--json`` result (scenario, ok, checks, migration)."""
    logs: dict[str, str] = field(default_factory=dict)


def sim_frontend_virtiofsd(
    peers: PeerPaths, procs: Processes, scenario: str = "migrate-state-only", timeout: float = 60.0
) -> SimStateOutcome:
    """``vutrace sim frontend`` drives two virtiofsd (each behind a proxy): set-up, SAVE + CHECK, LOAD + CHECK."""
    workdir = procs.workdir
    shared = workdir / "shared"
    shared.mkdir(exist_ok=True)
    sockets = {name: workdir / f"{name}.sock" for name in ("vsrc", "vdst", "psrc", "pdst")}
    captures = {side: workdir / f"sim-{side}.pcapng" for side in ("src", "dst")}
    started = [
        procs.start("virtiofsd-src", realpeers.virtiofsd_argv(peers, sockets["vsrc"], shared)),
        procs.start("virtiofsd-dst", realpeers.virtiofsd_argv(peers, sockets["vdst"], shared)),
    ]
    realpeers.wait_for(lambda: sockets["vsrc"].exists() and sockets["vdst"].exists(), 15, "virtiofsd sockets")
    started.append(procs.proxy("proxy-src", sockets["psrc"], sockets["vsrc"], captures["src"]))
    started.append(procs.proxy("proxy-dst", sockets["pdst"], sockets["vdst"], captures["dst"]))
    argv = [*VUTRACE, "sim", "frontend", "--socket", str(sockets["psrc"]), "--dest-socket", str(sockets["pdst"])]
    try:
        run = subprocess.run(
            [*argv, "--scenario", scenario, "--json"], capture_output=True, text=True, timeout=timeout, check=False
        )
    finally:
        for process in reversed(started):
            process.stop()
    logs = {p.name: p.output() for p in started}
    logs["sim-frontend"] = run.stdout + run.stderr
    try:
        result = json.loads(run.stdout)
    except json.JSONDecodeError:
        result = {}
    return SimStateOutcome(captures["src"], captures["dst"], run.returncode, result, logs)


@dataclass
class SimDatapathOutcome:
    """DPDK testpmd's virtio-user front-end served by vutrace's reference back-end."""

    capture: Path
    statistics: dict[str, int]
    """testpmd's accumulated forward statistics (RX-packets, TX-packets, TX-dropped, ...)."""
    summary: dict
    """The back-end's ``--json`` summary (events, per-ring request counts, transfers)."""
    logs: dict[str, str]


def sim_backend_testpmd(peers: PeerPaths, procs: Processes, seconds: float = 3.0) -> SimDatapathOutcome:
    """testpmd virtio-user ↔ proxy ↔ ``vutrace sim backend``, io forwarding with ``--tx-first``."""
    workdir = procs.workdir
    backend_sock, proxy_sock, capture = workdir / "sim.sock", workdir / "proxy.sock", workdir / "sim-dpdk.pcapng"
    backend = procs.start(
        "sim-backend", [*VUTRACE, "sim", "backend", "--socket", str(backend_sock), "--queue-pairs", "1", "--json"]
    )
    realpeers.wait_for(lambda: backend_sock.exists() or not backend.alive(), 15, "the sim back-end's socket")
    if not backend.alive():
        raise RuntimeError(f"sim back-end exited: {backend.output()[-2000:]}")
    proxy = procs.proxy("proxy", proxy_sock, backend_sock, capture)
    frontend = procs.start(
        "testpmd-frontend",
        testpmd_argv(peers, "sim-fe", 0, f"net_virtio_user0,path={proxy_sock},queues=1", "--tx-first"),
    )
    try:
        realpeers.wait_for(
            lambda: "Port statistics" in frontend.output() or not frontend.alive(), 60, "the front-end datapath"
        )
        time.sleep(seconds)
    finally:
        frontend.stop(signal.SIGINT, timeout=20)
        proxy.stop()
        backend.stop(signal.SIGINT, timeout=20)
    lines = backend.output().strip().splitlines()
    try:
        summary = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        summary = {}
    return SimDatapathOutcome(
        capture,
        forward_statistics(frontend.output()),
        summary,
        {p.name: p.output() for p in (frontend, proxy, backend)},
    )
