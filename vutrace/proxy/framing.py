"""Socket I/O with SCM_RIGHTS: receive bytes with the FDs that came with them, send a message with its FDs.

The proxy reads a message as its 12-byte header and then its payload, collecting every FD that
arrives while the message's bytes are read, and sends each message with one sendmsg whose
ancillary data carries that message's FDs (so they travel with its first byte).
"""

from __future__ import annotations

import array
import contextlib
import os
import socket
from typing import NamedTuple

ANCILLARY_BUFFER = socket.CMSG_SPACE(253 * 4)
"""Room for SCM_MAX_FD (253) descriptors: a message never loses FDs to a small buffer."""
_FD_ITEM = array.array("i").itemsize
_SOL_SOCKET = int(socket.SOL_SOCKET)
_SCM_RIGHTS = int(socket.SCM_RIGHTS)
MSG_CTRUNC = int(socket.MSG_CTRUNC)
MSG_CMSG_CLOEXEC = int(socket.MSG_CMSG_CLOEXEC)
_MSG_NOSIGNAL = int(socket.MSG_NOSIGNAL)


class Received(NamedTuple):
    nbytes: int
    fds: list[int]
    truncated_ancillary: bool
    """MSG_CTRUNC: the kernel dropped ancillary data (FDs) that did not fit."""


def fds_from_ancillary(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    """The FDs of every SCM_RIGHTS control message (an empty one, as DPDK sends, gives none)."""
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == _SOL_SOCKET and kind == _SCM_RIGHTS:
            usable = len(data) - len(data) % _FD_ITEM
            fds.extend(array.array("i", data[:usable]))
    return fds


def receive_into(sock: socket.socket, view: memoryview) -> Received:
    """One recvmsg into ``view``; FDs are received close-on-exec."""
    nbytes, ancdata, flags, _ = sock.recvmsg_into([view], ANCILLARY_BUFFER, MSG_CMSG_CLOEXEC)
    return Received(nbytes, fds_from_ancillary(ancdata) if ancdata else [], bool(flags & MSG_CTRUNC))


def receive_exactly(sock: socket.socket, view: memoryview, fds: list[int]) -> tuple[int, bool]:
    """Fill ``view`` unless the peer closes first; FDs are appended to ``fds``.

    Returns the bytes received and whether any recvmsg reported truncated ancillary data.
    """
    got = 0
    truncated = False
    wanted = len(view)
    while got < wanted:
        received = receive_into(sock, view[got:])
        fds.extend(received.fds)
        truncated |= received.truncated_ancillary
        if received.nbytes == 0:
            break
        got += received.nbytes
    return got, truncated


def send_message(sock: socket.socket, data: bytes | bytearray | memoryview, fds: list[int] | tuple[int, ...]) -> None:
    """Send ``data`` with ``fds`` attached to its first byte; the rest follows if the kernel took less."""
    ancillary = [(_SOL_SOCKET, _SCM_RIGHTS, array.array("i", fds))] if fds else []
    sent = sock.sendmsg([data], ancillary, _MSG_NOSIGNAL)
    if sent < len(data):
        view = memoryview(data)
        while sent < len(view):
            sent += sock.send(view[sent:], _MSG_NOSIGNAL)


def close_fds(fds: list[int] | tuple[int, ...]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
