"""Where the front-end connects: straight to a back-end's socket, or through a capturing proxy.

A route is a callable ``route(side, backend_socket)`` returning a context manager
that yields the socket path the front-end should connect to (``side`` is
``backend``, ``source`` or ``destination``). ``direct`` is the identity;
``ProxyThreads`` runs ``vutrace.proxy.Proxy`` in this process; ``ProxyProcesses``
runs ``vutrace proxy`` as real processes. With a capture directory each side's
proxy writes ``<side>.pcapng`` there.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from vutrace.sim.errors import PeerTimeout, SimError

Route = Callable[[str, Path], AbstractContextManager[Path]]
STOP_TIMEOUT = 10.0
STARTUP_TIMEOUT = 30.0
"""How long a freshly started process may take to listen (interpreter start-up on a busy machine)."""


@contextlib.contextmanager
def direct(side: str, backend: Path) -> Iterator[Path]:
    yield backend


def _proxy_socket(side: str, backend: Path) -> Path:
    return backend.with_name(f"{side}-proxy.sock")


class ProxyThreads:
    """Route through in-process proxies (``vutrace.proxy.Proxy``)."""

    def __init__(self, capture_dir: Path | None = None) -> None:
        self.capture_dir = capture_dir
        self.captures: list[Path] = []

    @contextlib.contextmanager
    def __call__(self, side: str, backend: Path) -> Iterator[Path]:
        from vutrace.proxy import Proxy

        listen = _proxy_socket(side, backend)
        capture = self.capture_dir / f"{side}.pcapng" if self.capture_dir else None
        with Proxy(listen=str(listen), connect=str(backend), capture=capture, force=True):
            if capture:
                self.captures.append(capture)
            yield listen


class ProxyProcesses:
    """Route through ``vutrace proxy`` processes, stopped with SIGTERM when the side is done."""

    def __init__(self, capture_dir: Path | None = None, timeout: float = STARTUP_TIMEOUT) -> None:
        self.capture_dir = capture_dir
        self.timeout = timeout
        self.captures: list[Path] = []

    @contextlib.contextmanager
    def __call__(self, side: str, backend: Path) -> Iterator[Path]:
        listen = _proxy_socket(side, backend)
        command = [sys.executable, "-m", "vutrace.cli", "proxy", "--listen", str(listen), "--connect", str(backend)]
        command += ["--force"]
        capture = self.capture_dir / f"{side}.pcapng" if self.capture_dir else None
        command += ["-w", str(capture)] if capture else ["--live"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_socket(listen, process, self.timeout, "proxy")
            if capture:
                self.captures.append(capture)
            yield listen
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stderr:
                process.stderr.close()


def wait_for_socket(path: Path, process: subprocess.Popen, timeout: float, what: str) -> None:
    """Wait until a process we started listens on ``path``; a process that exits first is an error."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            error = process.stderr.read().strip() if process.stderr else ""
            raise SimError(f"the {what} for {path.name} exited with status {process.returncode}: {error}")
        if time.monotonic() > deadline:
            raise PeerTimeout(f"the {what} did not listen on {path} within {timeout:g} s")
        time.sleep(0.02)
