"""Small helpers for the file descriptors the peers create and pass: eventfds, pipes, bounded waits."""

from __future__ import annotations

import contextlib
import os
import select
from collections.abc import Iterable

from vutrace.sim.errors import PeerTimeout


def new_eventfd() -> int:
    """A non-blocking eventfd (kick, call, err notifier)."""
    return os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)


def notify(fd: int) -> None:
    """Signal an eventfd (write the 8-byte counter increment)."""
    os.eventfd_write(fd, 1)


def drain(fd: int) -> int:
    """Read and reset an eventfd counter; 0 when it was not signalled."""
    try:
        return os.eventfd_read(fd)
    except BlockingIOError:
        return 0


def new_pipe(size: int | None = None) -> tuple[int, int]:
    """A close-on-exec pipe (read end, write end), optionally with a larger capacity."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    if size:
        import fcntl

        with contextlib.suppress(OSError):
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, size)
    return read_fd, write_fd


def close_all(fds: Iterable[int | None]) -> None:
    """Close every FD given, ignoring ones already closed."""
    for fd in fds:
        if fd is not None and fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


def wait_readable(fds: Iterable[int], timeout: float | None, what: str) -> list[int]:
    """Wait until at least one FD is readable (or hung up); PeerTimeout names ``what`` was awaited."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN | select.POLLPRI)
    events = poller.poll(None if timeout is None else max(0.0, timeout) * 1000)
    if not events:
        raise PeerTimeout(f"timed out after {timeout:g} s waiting for {what}")
    return [fd for fd, mask in events if not mask & select.POLLNVAL]


def wait_writable(fd: int, timeout: float, what: str) -> None:
    """Wait until an FD accepts data (or the reader is gone, which the next write reports)."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    if not poller.poll(timeout * 1000):
        raise PeerTimeout(f"{what}: the reader took no data for {timeout:g} s")
