"""Message I/O on a vhost-user socket: whole messages, FDs attached to the header's first byte.

Both peers and both channels (the main socket and the back-end channel) use
``Endpoint``: ``send`` writes one message with one ``sendmsg`` (its FDs in
SCM_RIGHTS), ``receive`` reads one message (header with ``recvmsg`` so the FDs
come with it, then the payload) and decodes it into a flat record. Every wait is
bounded, and everything sent or received is appended to a ``Transcript``.
"""

from __future__ import annotations

import array
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dissectors.header import parse_header
from dissectors.records import decode
from dissectors.spec import HEADER_SIZE, MAX_PAYLOAD_SIZE, Channel
from vutrace.sim.errors import PeerClosed, PeerTimeout, ProtocolViolation
from vutrace.sim.fds import close_all, wait_readable

_FD_ROOM = 32
"""FDs one recvmsg can take: more than the spec's 8, so a peer sending too many is reported, not truncated."""
_ANCILLARY_SIZE = socket.CMSG_SPACE(_FD_ROOM * 4)


@dataclass(frozen=True)
class WireEntry:
    """One message as a peer saw it: the transcript row tests and docs look at."""

    ts: float
    peer: str
    direction: str
    """``sent`` or ``received``."""
    channel: str
    request: str
    request_id: int | None
    flags: int
    size: int
    nfds: int
    is_reply: bool
    data: bytes = field(repr=False, default=b"")

    def describe(self) -> str:
        arrow = "->" if self.direction == "sent" else "<-"
        kind = "reply" if self.is_reply else "request"
        return (
            f"{self.peer} {arrow} {self.channel:7} {self.request} {kind} flags=0x{self.flags:x} "
            f"size={self.size} fds={self.nfds}"
        )


Observer = Callable[[WireEntry, Sequence[int]], None]
"""Called for every message with its FDs (still open): a capture tap can describe them."""


class Transcript:
    """Thread-safe list of ``WireEntry`` rows plus optional observers."""

    def __init__(self, observers: Sequence[Observer] = ()) -> None:
        self._lock = threading.Lock()
        self._rows: list[WireEntry] = []
        self._observers = list(observers)

    def add(self, entry: WireEntry, fds: Sequence[int]) -> None:
        with self._lock:
            self._rows.append(entry)
        for observer in self._observers:
            observer(entry, fds)

    def rows(self) -> list[WireEntry]:
        with self._lock:
            return list(self._rows)


@dataclass
class Received:
    """One received message: its bytes, the FDs that came with it (owned by the receiver) and its record."""

    data: bytes
    fds: list[int]
    record: dict
    late_fds: int = 0
    """FDs that arrived after the first byte of the header (a spec violation; they are closed)."""

    @property
    def name(self) -> str:
        return self.record["request"]

    def take_fd(self) -> int:
        """Take ownership of the first FD (the caller closes it)."""
        return self.fds.pop(0)

    def close(self) -> None:
        """Close every FD nobody took."""
        close_all(self.fds)
        self.fds.clear()


class Endpoint:
    """One side of a vhost-user channel (main socket or back-end channel)."""

    def __init__(
        self,
        sock: socket.socket,
        channel: Channel,
        *,
        peer: str,
        timeout: float,
        transcript: Transcript | None = None,
    ) -> None:
        self.sock = sock
        self.channel = channel
        self.peer = peer
        self.timeout = timeout
        self.transcript = transcript if transcript is not None else Transcript()
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, data: bytes, fds: Sequence[int] = ()) -> None:
        """Send one whole message; its FDs ride on the sendmsg that carries the header's first byte."""
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        self.sock.settimeout(self.timeout)
        try:
            sent = self.sock.sendmsg([data], ancillary)
            if sent < len(data):
                self.sock.sendall(data[sent:])
        except TimeoutError as error:
            raise PeerTimeout(f"{self._name(data)}: the peer took no data for {self.timeout:g} s") from error
        except OSError as error:
            raise PeerClosed(f"{self._name(data)}: cannot send, the peer is gone ({error.strerror})") from error
        self._log("sent", data, fds, decode(data, self.channel.value, len(fds)))

    def receive(self, timeout: float | None, *, what: str = "message", cancel_fd: int | None = None) -> Received:
        """Read one message. Waits at most ``timeout`` for it to start (None: until ``cancel_fd`` fires)."""
        watch = [self.fileno()] + ([cancel_fd] if cancel_fd is not None else [])
        ready = wait_readable(watch, timeout, what)
        if cancel_fd is not None and cancel_fd in ready and self.fileno() not in ready:
            raise PeerClosed("stopped while waiting")
        header, fds, late = self._read(HEADER_SIZE, what, first=True)
        parsed = parse_header(header)
        if parsed.size > MAX_PAYLOAD_SIZE:
            close_all(fds)
            raise ProtocolViolation(
                f"{self._name(header)}: header size field {parsed.size} exceeds the largest payload "
                f"({MAX_PAYLOAD_SIZE}); the stream cannot be framed"
            )
        payload, more, late_more = self._read(parsed.size, what, first=False) if parsed.size else (b"", [], 0)
        close_all(more)
        data = header + payload
        record = decode(data, self.channel.value, len(fds))
        self._log("received", data, fds, record)
        return Received(data, fds, record, late + late_more + len(more))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()

    def _read(self, count: int, what: str, *, first: bool) -> tuple[bytes, list[int], int]:
        """Read exactly ``count`` bytes; FDs from the first recvmsg are returned, later ones counted."""
        chunks: list[bytes] = []
        fds: list[int] = []
        late = 0
        got = 0
        deadline = time.monotonic() + self.timeout
        while got < count:
            self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                data, ancillary, msg_flags, _ = self.sock.recvmsg(count - got, _ANCILLARY_SIZE)
            except TimeoutError as error:
                close_all(fds)
                raise PeerTimeout(
                    f"{what}: message incomplete after {self.timeout:g} s ({got} of {count} bytes)"
                ) from error
            except OSError as error:
                close_all(fds)
                raise PeerClosed(f"{what}: connection lost ({error.strerror})") from error
            received = _fds_from(ancillary)
            if first and got == 0:
                fds.extend(received)
            else:
                late += len(received)
                close_all(received)
            if msg_flags & socket.MSG_CTRUNC:
                close_all(fds)
                raise ProtocolViolation(f"{what}: more than {_FD_ROOM} FDs attached; ancillary data truncated")
            if not data:
                close_all(fds)
                if got == 0 and first:
                    raise PeerClosed(f"the peer closed the connection while we waited for {what}")
                raise PeerClosed(f"{what}: the peer closed the connection mid-message ({got} of {count} bytes)")
            chunks.append(data)
            got += len(data)
        return b"".join(chunks), fds, late

    def _log(self, direction: str, data: bytes, fds: Sequence[int], record: dict) -> None:
        entry = WireEntry(
            ts=time.time(),
            peer=self.peer,
            direction=direction,
            channel=self.channel.value,
            request=record["request"],
            request_id=record["request_id"],
            flags=record["flags"],
            size=record["size"],
            nfds=len(fds),
            is_reply=record["is_reply"],
            data=data,
        )
        self.transcript.add(entry, fds)

    def _name(self, data: bytes) -> str:
        if len(data) < HEADER_SIZE:
            return "message"
        return decode(data, self.channel.value, 0)["request"]


def _fds_from(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            values = array.array("i")
            values.frombytes(payload[: len(payload) - len(payload) % values.itemsize])
            fds.extend(values)
    return fds
