"""Message relays: one thread per direction of a vhost-user socket, forwarding whole messages with their FDs.

A :class:`MessageRelay` cuts the incoming byte stream into messages (12-byte header, then
``size`` bytes), however the peer split or coalesced them, and forwards each message with one
sendmsg carrying exactly the FDs that arrived with it. Every message is recorded before it is
forwarded, so a capture lists a request before its reply. A :class:`Link` pairs the two
directions of one socket pair (the main connection or the back-end channel) and propagates
closes: end-of-file from one peer becomes a shutdown for writing towards the other, a send
that fails closes both sides.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from dissectors.header import Header, parse_header
from dissectors.spec import HEADER_SIZE
from vutrace.capture.model import EventName, FdInfo, RecordChannel
from vutrace.proxy.fdinfo import describe
from vutrace.proxy.framing import (
    ANCILLARY_BUFFER,
    MSG_CMSG_CLOEXEC,
    MSG_CTRUNC,
    close_fds,
    fds_from_ancillary,
    receive_exactly,
    receive_into,
    send_message,
)
from vutrace.proxy.recorder import Recorder, now_ns

MAX_BUFFERED_MESSAGE = 1 << 20
"""A message up to this size (header included) is forwarded with one sendmsg and recorded whole.

A larger one (no real peer sends one: the biggest real payload is about 4 KiB) is forwarded as a
stream in pieces of this size; its record keeps the first piece and a ``message_truncated`` event
after it gives the real size.
"""
_INITIAL_BUFFER = 64 * 1024
MESSAGE_MODIFIED = "message_modified"
"""Event after a message the proxy changed (only --hide-protocol-features does)."""
MESSAGE_TRUNCATED = "message_truncated"
"""Event after a message whose record keeps only its first MAX_BUFFERED_MESSAGE bytes."""


@dataclass
class Outgoing:
    """What to forward for one received message, when an interceptor changes the default."""

    data: bytes | memoryview
    send_fds: list[int]
    close_fds: list[int]
    """The proxy's copies to close once the message is sent (substituted FDs are kept by their relays)."""
    fd_infos: tuple[FdInfo, ...]
    modified: dict | None = None
    """Set when ``data`` differs from what was received: the record keeps the forwarded bytes and a
    ``message_modified`` event with these attributes (the original bytes among them) follows it."""
    on_sent: Callable[[bool], None] | None = None
    """Called after the send with True (delivered) or False (the destination was gone)."""


Interceptor = Callable[[Header, memoryview, list[int]], Outgoing | None]


@dataclass(frozen=True)
class RelayEnd:
    """Why a relay stopped."""

    sender: str
    """The peer whose socket the relay read."""
    peer_closed: bool
    """The peer closed its side (end-of-file); False for a receive or send error."""
    mid_message: bool = False
    received: int = 0
    """Bytes of the unfinished message that arrived before the end."""
    error: str = ""
    send_failed: bool = False


class _SendFailed(Exception):
    """Sending to the destination failed (its peer is gone); the OSError is the cause."""


class MessageRelay:
    """Forwards messages from ``src`` to ``dst`` on its own thread until end-of-file or an error."""

    def __init__(
        self,
        src: socket.socket,
        dst: socket.socket,
        *,
        conn: int,
        channel: RecordChannel,
        sender: str,
        recorder: Recorder,
        on_done: Callable[[MessageRelay, RelayEnd], None],
        intercept: Interceptor | None = None,
    ) -> None:
        self.src = src
        self.dst = dst
        self.conn = conn
        self.channel = channel
        self.sender = sender
        self.recorder = recorder
        self.intercept = intercept
        self._on_done = on_done
        self._buf = bytearray(_INITIAL_BUFFER)
        self.messages = 0
        self.thread = threading.Thread(target=self._run, name=f"relay-{conn}-{channel}-{sender}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            end = None
            while end is None:
                end = self._forward_one()
        except _SendFailed as failed:
            end = RelayEnd(self.sender, peer_closed=False, error=str(failed.__cause__), send_failed=True)
        except OSError as error:
            end = RelayEnd(self.sender, peer_closed=False, error=str(error))
        self._on_done(self, end)

    def _buffer(self, size: int) -> memoryview:
        if size > len(self._buf):
            grown = bytearray(size)
            grown[:HEADER_SIZE] = self._buf[:HEADER_SIZE]
            self._buf = grown
        return memoryview(self._buf)

    def _record(self, ts: int, data: bytes, infos: tuple[FdInfo, ...]) -> None:
        self.recorder.emit_message(ts, self.conn, self.channel, self.sender, data, infos)

    def _note(self, name: str, **attrs: object) -> None:
        self.recorder.event(name, self.conn, channel=str(self.channel), sender=self.sender, **attrs)

    def _ancillary_truncated(self) -> None:
        self._note(EventName.ERROR, error="ancillary data truncated (MSG_CTRUNC): FDs were lost by the kernel")

    def _send(self, data: bytes | memoryview, fds: list[int]) -> None:
        try:
            send_message(self.dst, data, fds)
        except OSError as error:
            raise _SendFailed from error

    def _forward_one(self) -> RelayEnd | None:
        buf = memoryview(self._buf)
        got, ancdata, flags, _ = self.src.recvmsg_into([buf[:HEADER_SIZE]], ANCILLARY_BUFFER, MSG_CMSG_CLOEXEC)
        ts = now_ns()
        fds = fds_from_ancillary(ancdata) if ancdata else []
        truncated = bool(flags & MSG_CTRUNC)
        if 0 < got < HEADER_SIZE:
            more, more_truncated = receive_exactly(self.src, buf[got:HEADER_SIZE], fds)
            got += more
            truncated |= more_truncated
        if truncated:
            self._ancillary_truncated()
        if got < HEADER_SIZE:
            if got == 0 and not fds:
                return RelayEnd(self.sender, peer_closed=True)
            return self._forward_partial(ts, buf[:got], fds)
        header = parse_header(buf)
        total = header.message_size
        if total > MAX_BUFFERED_MESSAGE:
            return self._forward_stream(ts, header, fds)
        buf = self._buffer(total)
        try:
            got, truncated = receive_exactly(self.src, buf[HEADER_SIZE:total], fds) if header.size else (0, False)
        except OSError:
            close_fds(fds)
            raise
        if truncated:
            self._ancillary_truncated()
        if got < header.size:
            return self._forward_partial(ts, buf[: HEADER_SIZE + got], fds)
        message = buf[:total]
        out = self.intercept(header, message, fds) if self.intercept else None
        if out is None:
            infos = tuple(describe(fd) for fd in fds)
            self._record(ts, bytes(message), infos)
            try:
                self._send(message, fds)
            finally:
                close_fds(fds)
        else:
            self._record(ts, bytes(out.data) if out.modified else bytes(message), out.fd_infos)
            if out.modified:
                self._note(MESSAGE_MODIFIED, **out.modified)
            delivered = False
            try:
                self._send(out.data, out.send_fds)
                delivered = True
            finally:
                close_fds(out.close_fds)
                if out.on_sent:
                    out.on_sent(delivered)
        self.messages += 1
        return None

    def _forward_partial(self, ts: int, data: memoryview, fds: list[int]) -> RelayEnd:
        """The peer closed inside a message: record and forward what came, then report the end."""
        infos = tuple(describe(fd) for fd in fds)
        self._record(ts, bytes(data), infos)
        try:
            if data:
                self._send(data, fds)
        finally:
            close_fds(fds)
        return RelayEnd(self.sender, peer_closed=True, mid_message=True, received=len(data))

    def _forward_stream(self, ts: int, header: Header, fds: list[int]) -> RelayEnd | None:
        """Forward a message too big to buffer in pieces; record its first piece and real length."""
        piece = self._buffer(MAX_BUFFERED_MESSAGE)
        try:
            got, truncated = receive_exactly(self.src, piece[HEADER_SIZE:], fds)
        except OSError:
            close_fds(fds)
            raise
        sent = HEADER_SIZE + got
        first = bytes(piece[:sent])
        infos = [describe(fd) for fd in fds]
        try:
            self._send(piece[:sent], fds)
        finally:
            close_fds(fds)
        remaining = header.message_size - sent
        while remaining > 0 and got > 0:
            received = receive_into(self.src, piece[: min(len(piece), remaining)])
            truncated |= received.truncated_ancillary
            got = received.nbytes
            infos.extend(describe(fd) for fd in received.fds)
            try:
                if got:
                    self._send(piece[:got], received.fds)
            finally:
                close_fds(received.fds)
            sent += got
            remaining -= got
        if truncated:
            self._ancillary_truncated()
        self._record(ts, first, tuple(infos))
        self._note(MESSAGE_TRUNCATED, size=header.size, received=sent, recorded=len(first))
        self.messages += 1
        if remaining > 0:
            return RelayEnd(self.sender, peer_closed=True, mid_message=True, received=sent)
        return None


class Link:
    """Both directions between two sockets, closed together.

    End-of-file from one peer is passed on as a shutdown for writing to the other, as a direct
    connection would show it; once both directions ended (or a send failed, or :meth:`abort`),
    both sockets are closed and ``on_closed`` runs once with the first end.
    """

    def __init__(
        self,
        a: socket.socket,
        b: socket.socket,
        *,
        conn: int,
        channel: RecordChannel,
        a_sender: str,
        b_sender: str,
        recorder: Recorder,
        on_closed: Callable[[Link, RelayEnd], None],
        intercept_a: Interceptor | None = None,
        intercept_b: Interceptor | None = None,
    ) -> None:
        self.sockets = (a, b)
        self.conn = conn
        self._on_closed = on_closed
        self._lock = threading.Lock()
        self._first_end: RelayEnd | None = None
        self._done = 0
        self._aborted = False
        self.closed = threading.Event()
        common = {"conn": conn, "channel": channel, "recorder": recorder, "on_done": self._relay_done}
        self.relays = (
            MessageRelay(a, b, sender=a_sender, intercept=intercept_a, **common),
            MessageRelay(b, a, sender=b_sender, intercept=intercept_b, **common),
        )

    def start(self) -> None:
        for relay in self.relays:
            relay.start()

    def abort(self, reason: str = "proxy") -> None:
        """Close both sides now (proxy shutdown or a replaced channel)."""
        with self._lock:
            if self._first_end is None:
                self._first_end = RelayEnd(reason, peer_closed=False)
            self._aborted = True
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def join(self, timeout: float) -> bool:
        return self.closed.wait(timeout)

    def _relay_done(self, relay: MessageRelay, end: RelayEnd) -> None:
        with self._lock:
            if self._first_end is None:
                self._first_end = end
            self._done += 1
            last = self._done == len(self.relays)
            abort = not end.peer_closed and not self._aborted
        if abort:
            self.abort(end.sender)
        elif not last:
            with contextlib.suppress(OSError):
                relay.dst.shutdown(socket.SHUT_WR)
        if last:
            for sock in self.sockets:
                sock.close()
            assert self._first_end is not None
            self._on_closed(self, self._first_end)
            self.closed.set()
