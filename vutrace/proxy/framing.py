"""Socket I/O with SCM_RIGHTS, without blocking: the flags and buffers to receive FDs, sending with FDs.

Every call passes MSG_DONTWAIT instead of switching the socket to non-blocking mode, so the
sockets' own flags (shared with whoever else holds the same open file) stay as they were. The
relays receive a message as its 12-byte header and then its payload (``recvmsg_into`` with
RECV_FLAGS and ANCILLARY_BUFFER), collecting every FD that arrives while the message's bytes are
read, and send each message with a sendmsg whose ancillary data carries that message's FDs (so
they travel with its first byte).
"""

from __future__ import annotations

import array
import contextlib
import os
import socket

ANCILLARY_BUFFER = socket.CMSG_SPACE(253 * 4)
"""Room for SCM_MAX_FD (253) descriptors: a message never loses FDs to a small buffer."""
_FD_ITEM = array.array("i").itemsize
_SOL_SOCKET = int(socket.SOL_SOCKET)
_SCM_RIGHTS = int(socket.SCM_RIGHTS)
MSG_CTRUNC = int(socket.MSG_CTRUNC)
RECV_FLAGS = int(socket.MSG_CMSG_CLOEXEC | socket.MSG_DONTWAIT)
_SEND_FLAGS = int(socket.MSG_NOSIGNAL | socket.MSG_DONTWAIT)


def fds_from_ancillary(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    """The FDs of every SCM_RIGHTS control message (an empty one, as DPDK sends, gives none)."""
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == _SOL_SOCKET and kind == _SCM_RIGHTS:
            usable = len(data) - len(data) % _FD_ITEM
            fds.extend(array.array("i", data[:usable]))
    return fds


def send_some(sock: socket.socket, data: bytes | bytearray | memoryview, fds: list[int] | tuple[int, ...] = ()) -> int:
    """One sendmsg of ``data`` with ``fds`` on its first byte; returns how much the kernel took.

    0 means the socket is full and nothing (not even the FDs) was sent. Raises OSError when the
    peer is gone (EPIPE, ECONNRESET...).
    """
    ancillary = [(_SOL_SOCKET, _SCM_RIGHTS, array.array("i", fds))] if fds else []
    try:
        return sock.sendmsg([data], ancillary, _SEND_FLAGS)
    except BlockingIOError:
        return 0


def close_fds(fds: list[int] | tuple[int, ...]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
