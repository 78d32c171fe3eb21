"""FD descriptions from real FDs: kind, memfd name and seals, size, inode."""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from vutrace.capture.model import FdAction, FdKind
from vutrace.proxy.fdinfo import describe


def test_memfd_name_size_and_seals() -> None:
    fd = os.memfd_create("guest-ram", os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, 2 << 20)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
        info = describe(fd)
        assert info.kind is FdKind.MEMFD
        assert info.memfd_name == "guest-ram"
        assert info.size == 2 << 20
        assert info.seals == fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
        assert info.ino == os.fstat(fd).st_ino
        assert info.action is FdAction.PASSED
    finally:
        os.close(fd)


def test_eventfd_pipe_socket_file_and_other(tmp_path: Path) -> None:
    event = os.eventfd(0)
    r, w = os.pipe()
    a, b = socket.socketpair()
    path = tmp_path / "log"
    path.write_bytes(b"12345")
    regular = os.open(path, os.O_RDONLY)
    null = os.open("/dev/null", os.O_RDONLY)
    try:
        kinds = [describe(fd).kind for fd in (event, r, w, a.fileno(), regular, null)]
        assert kinds == [FdKind.EVENTFD, FdKind.PIPE, FdKind.PIPE, FdKind.SOCKET, FdKind.FILE, FdKind.OTHER]
        assert describe(regular).size == 5
        assert describe(regular).target == str(path)
        assert describe(r).seals is None
    finally:
        for fd in (event, r, w, regular, null):
            os.close(fd)
        a.close()
        b.close()


def test_closed_fd_is_unknown_not_an_exception() -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    info = describe(r, FdAction.SUBSTITUTED)
    assert info.kind is FdKind.UNKNOWN and info.action is FdAction.SUBSTITUTED
