"""Tiny front-end / back-end stand-ins for the proxy tests: real unix sockets, real FDs, bounded waits."""

from __future__ import annotations

import array
import os
import select
import socket
import time

from dissectors.header import parse_header
from dissectors.spec import HEADER_SIZE

TIMEOUT_S = 5.0


class Endpoint:
    """One side of a vhost-user socket as a test peer sees it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(TIMEOUT_S)

    def send(self, data: bytes, fds: list[int] | tuple[int, ...] = (), empty_rights: bool = False) -> None:
        """Send ``data`` with ``fds`` in one sendmsg (``empty_rights``: an SCM_RIGHTS cmsg with no FDs, as DPDK)."""
        if fds or empty_rights:
            ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
        else:
            ancillary = []
        sent = self.sock.sendmsg([data], ancillary)
        assert sent == len(data)

    def recv_exactly(self, n: int) -> tuple[bytes, list[int]]:
        data = bytearray()
        fds: list[int] = []
        while len(data) < n:
            chunk, ancdata, flags, _ = self.sock.recvmsg(n - len(data), socket.CMSG_SPACE(64 * 4))
            assert not flags & socket.MSG_CTRUNC
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(array.array("i", payload[: len(payload) - len(payload) % 4]))
            if not chunk:
                break
            data += chunk
        return bytes(data), fds

    def recv_message(self) -> tuple[bytes, list[int]]:
        """One whole message (header then payload) with every FD that came with its bytes."""
        header, fds = self.recv_exactly(HEADER_SIZE)
        assert len(header) == HEADER_SIZE, f"connection closed after {len(header)} header bytes"
        payload, more = self.recv_exactly(parse_header(header).size)
        return header + payload, fds + more

    def recv_all_until_eof(self) -> tuple[bytes, list[int]]:
        data = bytearray()
        fds: list[int] = []
        while True:
            chunk, more = self.recv_exactly(65536)
            data += chunk
            fds += more
            if len(chunk) < 65536:
                return bytes(data), fds

    def at_eof(self, timeout: float = TIMEOUT_S) -> bool:
        """True once the other side closed (a read returns end-of-file) within ``timeout``."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        return bool(ready) and self.sock.recv(1, socket.MSG_PEEK) == b""

    def close(self) -> None:
        self.sock.close()


class Listener:
    """A listening socket standing in for a back-end (or a front-end in the reverse roles)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.sock.settimeout(TIMEOUT_S)

    def accept(self) -> Endpoint:
        conn, _ = self.sock.accept()
        return Endpoint(conn)

    def close(self) -> None:
        self.sock.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


def connect(path: str) -> Endpoint:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return Endpoint(sock)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def read_some(fd: int, n: int = 1 << 20, timeout: float = TIMEOUT_S) -> bytes:
    """One read of what is there, failing instead of hanging if nothing arrives within ``timeout``."""
    ready, _, _ = select.select([fd], [], [], timeout)
    assert ready, f"nothing to read within {timeout}s"
    return os.read(fd, n)


def read_fd_fully(fd: int, timeout: float = TIMEOUT_S) -> bytes:
    """Everything until end-of-file; fails if nothing (not even EOF) arrives within ``timeout``."""
    out = bytearray()
    while True:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"no data and no end-of-file within {timeout}s"
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return bytes(out)
        out += chunk


def write_fd_fully(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
