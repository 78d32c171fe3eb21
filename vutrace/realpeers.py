"""Start real vhost-user peers (QEMU, virtiofsd, qemu-storage-daemon, DPDK testpmd) and drive them.

Used by the interop tests, the real-migration benchmark and the script that makes the sample
captures. The programs come from ``scripts/install-peers``, which writes their paths to
``$VUTRACE_PEERS/env`` (default ``/opt/vutrace-peers/env``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PEERS_DIR = Path(os.environ.get("VUTRACE_PEERS", "/opt/vutrace-peers"))


@dataclass(frozen=True)
class PeerPaths:
    """Where the real peer programs are."""

    qemu: str
    qsd: str
    testpmd: str
    virtiofsd: str
    guest_kernel: str
    guest_initrd: str


def find_peers(peers_dir: Path = DEFAULT_PEERS_DIR) -> PeerPaths | None:
    """The installed peers, or None when scripts/install-peers has not run on this machine."""
    env_file = peers_dir / "env"
    if not env_file.exists():
        return None
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    paths = PeerPaths(
        qemu=values.get("QEMU", ""),
        qsd=values.get("QSD", ""),
        testpmd=values.get("TESTPMD", ""),
        virtiofsd=values.get("VIRTIOFSD", ""),
        guest_kernel=values.get("GUEST_KERNEL", ""),
        guest_initrd=values.get("GUEST_INITRD", ""),
    )
    if not all(os.path.exists(p) for p in vars(paths).values()):
        return None
    return paths


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it returns a true value; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class Process:
    """A child process with its output in a log file, stopped for sure on ``stop``."""

    def __init__(self, argv: Sequence[str], log: Path, name: str) -> None:
        self.name = name
        self.log = log
        self._log_file = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            list(argv), stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.alive():
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log_file.close()
        return self.popen.returncode


class QMP:
    """A minimal QEMU Machine Protocol client over a unix socket."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        wait_for(lambda: self._try_connect(path), timeout, f"QMP socket {path}")
        self._buffer = b""
        self.events: list[dict] = []
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _try_connect(self, path: Path) -> bool:
        try:
            self.sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return False
        return True

    def _read(self) -> dict:
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("QMP connection closed")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def execute(self, command: str, **arguments) -> object:
        request = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise RuntimeError(f"QMP {command}: {reply['error'].get('desc', reply['error'])}")
            return reply.get("return")

    def close(self) -> None:
        self.sock.close()


def virtiofsd_argv(
    paths: PeerPaths, sock: Path, shared_dir: Path, extra: Sequence[str] = (), log_level: str = "info"
) -> list[str]:
    return [
        paths.virtiofsd,
        "--socket-path",
        str(sock),
        "--shared-dir",
        str(shared_dir),
        "--log-level",
        log_level,
        *extra,
    ]


def qemu_argv(
    paths: PeerPaths,
    workdir: Path,
    name: str,
    devices: Sequence[str],
    *,
    guest: bool,
    incoming: bool = False,
    memory_mb: int = 512,
    append: str = "",
) -> list[str]:
    """A QEMU command line with shared memfd memory (vhost-user needs it), QMP and a serial log."""
    argv = [
        paths.qemu,
        "-machine",
        "q35,memory-backend=mem",
        "-accel",
        "tcg",
        "-smp",
        "1",
        "-m",
        f"{memory_mb}M",
        "-object",
        f"memory-backend-memfd,id=mem,size={memory_mb}M,share=on",
        "-nodefaults",
        "-display",
        "none",
        "-no-user-config",
        "-qmp",
        f"unix:{workdir / (name + '.qmp')},server=on,wait=off",
        "-chardev",
        f"file,id=con,path={workdir / (name + '.console')}",
        "-serial",
        "chardev:con",
        *devices,
    ]
    if guest:
        argv += ["-kernel", paths.guest_kernel, "-initrd", paths.guest_initrd]
        argv += ["-append", f"console=ttyS0 panic=-1 quiet {append}".strip()]
    else:
        argv.append("-S")
    if incoming:
        argv += ["-incoming", "defer"]
    return argv


def virtiofs_devices(chardev_path: Path, tag: str = "myfs") -> list[str]:
    return [
        "-chardev",
        f"socket,id=vfs,path={chardev_path}",
        "-device",
        f"vhost-user-fs-pci,chardev=vfs,tag={tag}",
    ]


def migrate(src: QMP, dst: QMP, uri: str, timeout: float = 60.0) -> dict:
    """Live-migrate ``src`` to ``dst`` over ``uri``; returns the source's final query-migrate."""
    dst.execute("migrate-incoming", uri=uri)
    src.execute("migrate", uri=uri)

    def finished() -> dict | None:
        info = src.execute("query-migrate")
        status = info.get("status")
        if status == "completed":
            return info
        if status in ("failed", "cancelled"):
            raise RuntimeError(f"migration {status}: {info.get('error-desc', '')}")
        return None

    result = wait_for(finished, timeout, "the migration to complete", interval=0.1)
    wait_for(
        lambda: (
            dst.execute("query-migrate").get("status") == "completed"
            or dst.execute("query-status").get("status") in ("running", "paused", "prelaunch")
        ),
        timeout,
        "the destination to finish loading",
        interval=0.1,
    )
    return result
