"""Fixtures for the simulated peers: short socket directories, back-ends in threads, an FD-leak check."""

from __future__ import annotations

import contextlib
import faulthandler
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vutrace.sim import Backend, BackendOptions

WATCHDOG_S = 60


def _open_fds() -> dict[int, str]:
    out = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return out


@pytest.fixture(autouse=True)
def no_fd_leak() -> Iterator[None]:
    """Every test ends with the FDs it started with (threads get a short, bounded grace to close theirs)."""
    before = _open_fds()
    yield
    deadline = time.monotonic() + 2
    while len(_open_fds()) != len(before) and time.monotonic() < deadline:
        time.sleep(0.01)
    after = _open_fds()
    leaked = {fd: target for fd, target in after.items() if before.get(fd) != target}
    assert len(after) == len(before), f"FD leak: {leaked}"


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    """A hang anywhere dumps every thread's stack and ends the run instead of blocking CI."""
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short directory for unix sockets (paths must stay under 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="vs-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def backend(sockdir: Path) -> Iterator[Callable[..., Backend]]:
    """Start back-ends in threads: ``backend("src", faults=frozenset({...}))``; all closed at teardown."""
    started: list[Backend] = []

    def start(name: str = "backend", **options: object) -> Backend:
        made = Backend(sockdir / f"{name}.sock", BackendOptions(**options)).start()  # type: ignore[arg-type]
        started.append(made)
        return made

    yield start
    for made in started:
        made.close()
