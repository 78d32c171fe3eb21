"""Message relays: both directions of a vhost-user socket pair, driven by the connection's event loop.

A :class:`MessageRelay` cuts the incoming byte stream into messages (12-byte header, then
``size`` bytes), however the peer split or coalesced them, reading exactly up to the end of the
current message so every FD is known to belong to the message whose bytes it came with. It
forwards each message with one sendmsg carrying exactly those FDs (on its first byte), takes the
message's place in the capture just before the send and fills it right after (bytes, FD
descriptions, how many FDs came late), so a capture lists a request before its reply while the
recording costs the forwarding nothing. Nothing blocks: a message the destination cannot take
yet waits, and the relay stops reading its source until it is through.

A :class:`Link` pairs the two directions of one socket pair (the main connection or the back-end
channel) and propagates closes: end-of-file from one peer becomes a shutdown for writing towards
the other, a send that fails or an error closes both sides.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from dissectors.header import Header
from dissectors.spec import HEADER_FORMAT, HEADER_SIZE, lookup
from vutrace.capture.model import EventName, FdAction, FdInfo, RecordChannel
from vutrace.proxy.fdinfo import describe
from vutrace.proxy.framing import ANCILLARY_BUFFER, MSG_CTRUNC, RECV_FLAGS, close_fds, fds_from_ancillary, send_some
from vutrace.proxy.loop import HUP, IN, OUT, EventLoop
from vutrace.proxy.recorder import Recorder

MAX_BUFFERED_MESSAGE = 1 << 20
"""A message up to this size (header included) is forwarded with one sendmsg and recorded whole.

A larger one (no real peer sends one: the biggest real payload is about 4 KiB) is forwarded as a
stream: its first piece of this size once it is there, then the rest as it arrives; its record
keeps the first piece and a ``message_truncated`` event after the last piece gives the real size.
"""
HOLD_TIMEOUT_S = 5.0
"""The longest a message waits for the condition an interceptor holds it on (then it goes anyway)."""
_INITIAL_BUFFER = 64 * 1024
_HEADER = struct.Struct(HEADER_FORMAT)
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
    fd_infos: tuple[FdInfo, ...] | None = None
    """What the record says about the FDs; None describes the received FDs (after the send)."""
    fd_action: FdAction = FdAction.PASSED
    """What the proxy did with the received FDs, when they are described after the send."""
    modified: dict | None = None
    """Set when ``data`` differs from what was received: the record keeps the forwarded bytes and a
    ``message_modified`` event with these attributes (the original bytes among them) follows it."""
    on_sent: Callable[[bool], None] | None = None
    """Called once the message is through (True) or could not be delivered (False)."""
    hold: Callable[[], bool] | None = None
    """Forward only once this returns True (asked again at each :meth:`Link.recheck_holds`), or after
    HOLD_TIMEOUT_S with an ``error`` event; the source is not read meanwhile."""
    hold_reason: str = ""
    """What the message waits for, for that error event."""


@dataclass(frozen=True)
class Interceptor:
    """Sees the messages whose request id is in ``requests`` before they go; may return what to send instead."""

    requests: frozenset[int]
    function: Callable[[Header, memoryview, list[int]], Outgoing | None]


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


@dataclass
class _Unsent:
    """The rest of a message the destination could not take yet."""

    data: memoryview
    fds: list[int]
    """FDs still to send (emptied once a first byte went out with them)."""
    done: Callable[[bool], None]


@dataclass
class _Held:
    out: Outgoing
    received_fds: list[int]
    late_fds: int


@dataclass
class _BigMessage:
    """A message larger than MAX_BUFFERED_MESSAGE being streamed through."""

    header: Header
    forwarded: int = 0
    """Bytes sent on so far (0 until the first piece is complete)."""
    later_fds: list[FdInfo] = field(default_factory=list)
    """FDs that came with the pieces after the first (forwarded with their piece)."""


def _finished(out: Outgoing | None, received_fds: list[int], delivered: bool) -> None:
    """A message is through (or given up): close the proxy's FD copies and tell the interceptor."""
    if out is None:
        if received_fds:
            close_fds(received_fds)
        return
    if out.close_fds:
        close_fds(out.close_fds)
    if out.on_sent:
        out.on_sent(delivered)


class MessageRelay:
    """Forwards messages from ``src`` to ``dst``; its :class:`Link` calls it when the sockets are ready."""

    def __init__(
        self, src: socket.socket, dst: socket.socket, *, link: Link, sender: str, intercept: Interceptor | None
    ) -> None:
        self.src = src
        self.dst = dst
        self.link = link
        self.sender = sender
        self.intercept = intercept
        self.recorder = link.recorder
        self.conn = link.conn
        self.channel = link.channel
        self.messages = 0
        self.reading = True
        self.unsent: _Unsent | None = None
        self._buf = bytearray(_INITIAL_BUFFER)
        self._view = memoryview(self._buf)
        self._header: tuple[int, int, int] = (0, 0, 0)
        self._intercepted = intercept.requests if intercept else frozenset()
        self._have = 0
        self._want = HEADER_SIZE
        self._fds: list[int] = []
        self._late = 0
        self._big: _BigMessage | None = None
        self._held: _Held | None = None
        self._end: RelayEnd | None = None

    # -- reading ----------------------------------------------------------------------------------

    def on_readable(self) -> None:
        """Read what is there, up to the end of the current message; forward it once complete.

        One message per call: the event loop calls again while more is there.
        """
        src = self.src
        while self.reading:
            big = self._big
            if big is not None and big.forwarded:
                if not self._read_big_piece(big):
                    return
                continue
            try:
                nbytes, ancdata, flags, _ = src.recvmsg_into(
                    [self._view[self._have : self._want]], ANCILLARY_BUFFER, RECV_FLAGS
                )
            except BlockingIOError:
                return
            except OSError as error:
                self._ended(RelayEnd(self.sender, peer_closed=False, error=str(error)))
                return
            if ancdata or flags & MSG_CTRUNC:
                fds = self._ancillary(ancdata, flags)
                if self._have:
                    self._late += len(fds)
                self._fds.extend(fds)
            if not nbytes:
                self._peer_closed()
                return
            self._have += nbytes
            if self._have == self._want and self._got_wanted():
                return

    def _ancillary(self, ancdata: list, flags: int) -> list[int]:
        if flags & MSG_CTRUNC:
            self._note(EventName.ERROR, error="ancillary data truncated (MSG_CTRUNC): FDs were lost by the kernel")
        return fds_from_ancillary(ancdata)

    def _got_wanted(self) -> bool:
        """The header or the whole message is in: True once a message (or a first piece) went out."""
        if self._want == HEADER_SIZE:
            self._header = request, flags, size = _HEADER.unpack_from(self._buf)
            if size:
                total = HEADER_SIZE + size
                if total > MAX_BUFFERED_MESSAGE:
                    self._big = _BigMessage(Header(request, flags, size))
                    self._grow(MAX_BUFFERED_MESSAGE)
                    self._want = MAX_BUFFERED_MESSAGE
                    return False
                self._grow(total)
                self._want = total
                return False
        if self._big is not None:
            self._big_first_piece(self._big)
            return True
        message = self._view[: self._want]
        fds, late = self._next_message()
        self.messages += 1
        request = self._header[0]
        out = None
        if request in self._intercepted:
            assert self.intercept is not None
            out = self.intercept.function(Header(*self._header), message, fds)
        if out is None:
            self._forward(message, fds, fds, late)
        elif out.hold is not None and not out.hold():
            self._hold(_Held(out, fds, late))
        else:
            self._forward(out.data, out.send_fds, fds, late, out)
        return True

    def _grow(self, size: int) -> None:
        if size > len(self._buf):
            grown = bytearray(size)
            grown[:HEADER_SIZE] = self._buf[:HEADER_SIZE]
            self._buf = grown
            self._view = memoryview(grown)

    def _next_message(self) -> tuple[list[int], int]:
        """The FDs and late-FD count of the message just read; the relay starts on the next one."""
        fds, late = self._fds, self._late
        self._fds, self._late, self._have, self._want = [], 0, 0, HEADER_SIZE
        return fds, late

    # -- forwarding -------------------------------------------------------------------------------

    def _forward(
        self,
        data: bytes | memoryview,
        send_fds: list[int],
        received_fds: list[int],
        late: int,
        out: Outgoing | None = None,
    ) -> None:
        """Send a message and record it: its place (and timestamp) is taken before the send, its contents after.

        Without ``out`` (an interceptor's changes) the message goes as received and the proxy's
        copies of its FDs are closed once it is through.
        """
        slot = self.recorder.reserve()
        try:
            sent = send_some(self.dst, data, send_fds)
            error = None
        except OSError as failure:
            sent, error = 0, failure
        data = bytes(data)
        if out is None:
            infos = tuple(describe(fd) for fd in received_fds) if received_fds else ()
        elif out.fd_infos is None:
            infos = tuple(describe(fd, out.fd_action) for fd in received_fds)
        else:
            infos = out.fd_infos
        self.recorder.message(slot, self.conn, self.channel, self.sender, data, infos, late)
        if out is not None and out.modified:
            self._note(MESSAGE_MODIFIED, **out.modified)
        if error is None and sent == len(data):
            _finished(out, received_fds, True)
            return
        if error is not None:
            _finished(out, received_fds, False)
            self._send_failed(error)
            return
        unsent = _Unsent(memoryview(data)[sent:], [] if sent else send_fds, lambda ok: _finished(out, received_fds, ok))
        self._wait_for_destination(unsent)

    def _wait_for_destination(self, unsent: _Unsent) -> None:
        self.unsent = unsent
        self.reading = False
        self.link.update()

    def on_writable(self) -> None:
        """Send more of the message the destination could not take."""
        unsent = self.unsent
        if unsent is None:
            return
        try:
            sent = send_some(self.dst, unsent.data, unsent.fds)
        except OSError as error:
            self.unsent = None
            unsent.done(False)
            self._send_failed(error)
            return
        if sent:
            unsent.fds = []
            unsent.data = unsent.data[sent:]
        if unsent.data:
            return
        self.unsent = None
        unsent.done(True)
        if self._end is not None:
            self.link.relay_ended(self, self._end)
        elif self._held is None:
            self.reading = True
            self.link.update()

    def _send_failed(self, error: OSError) -> None:
        self._ended(RelayEnd(self.sender, peer_closed=False, error=str(error), send_failed=True))

    def _note(self, name: str, **attrs: object) -> None:
        self.recorder.event(name, self.conn, channel=str(self.channel), sender=self.sender, **attrs)

    # -- holding a message ------------------------------------------------------------------------

    def _hold(self, held: _Held) -> None:
        """Keep a message back until its condition holds; a ``message_held`` event marks when it arrived."""
        held.out.data = bytes(held.out.data)  # its own copy: the receive buffer is the next message's
        message = lookup(str(self.channel), _HEADER.unpack_from(held.out.data)[0])
        self._note(
            EventName.MESSAGE_HELD,
            request=message.name if message else "",
            reason=f"waiting for {held.out.hold_reason or 'a condition'}",
        )
        self._held = held
        self.reading = False
        self.link.update()
        self.link.loop.call_later(HOLD_TIMEOUT_S, lambda: self._release(held, timed_out=True))

    def recheck_hold(self) -> None:
        held = self._held
        if held is not None and held.out.hold is not None and held.out.hold():
            self._release(held, timed_out=False)

    def _release(self, held: _Held, timed_out: bool) -> None:
        if self._held is not held or self.link.closed:
            return
        self._held = None
        if timed_out:
            self._note(
                EventName.ERROR,
                error=f"held a message {HOLD_TIMEOUT_S:g} s waiting for {held.out.hold_reason or 'a condition'}; "
                "forwarded it anyway",
            )
        self._forward(held.out.data, held.out.send_fds, held.received_fds, held.late_fds, held.out)
        if self.unsent is None and self._end is None and not self.link.closed:
            self.reading = True
            self.link.update()

    # -- messages larger than MAX_BUFFERED_MESSAGE --------------------------------------------------

    def _big_first_piece(self, big: _BigMessage) -> None:
        fds, late = self._next_message()
        self.messages += 1
        big.forwarded = MAX_BUFFERED_MESSAGE
        self._forward(memoryview(self._buf)[:MAX_BUFFERED_MESSAGE], fds, fds, late)

    def _read_big_piece(self, big: _BigMessage) -> bool:
        """Receive the next piece of a big message and send it on at once, with the FDs that came with it;
        False when nothing was there."""
        view = self._view[: min(len(self._view), big.header.message_size - big.forwarded)]
        try:
            nbytes, ancdata, flags, _ = self.src.recvmsg_into([view], ANCILLARY_BUFFER, RECV_FLAGS)
        except BlockingIOError:
            return False
        except OSError as error:
            self._ended(RelayEnd(self.sender, peer_closed=False, error=str(error)))
            return True
        fds = self._ancillary(ancdata, flags) if ancdata or flags & MSG_CTRUNC else []
        self._big_piece(big, view[:nbytes], fds)
        return True

    def _big_piece(self, big: _BigMessage, piece: memoryview, fds: list[int]) -> None:
        big.later_fds.extend(describe(fd) for fd in fds)
        if not piece:
            close_fds(fds)
            self._big = None
            self._note_truncated(big, big.forwarded, MAX_BUFFERED_MESSAGE)
            self._ended(RelayEnd(self.sender, peer_closed=True, mid_message=True, received=big.forwarded))
            return
        big.forwarded += len(piece)
        if big.forwarded == big.header.message_size:
            self._big = None
            self._note_truncated(big, big.forwarded, MAX_BUFFERED_MESSAGE)
        try:
            sent = send_some(self.dst, piece, fds)
        except OSError as error:
            close_fds(fds)
            self._send_failed(error)
            return
        if sent == len(piece):
            close_fds(fds)
        else:
            self._wait_for_destination(
                _Unsent(memoryview(bytes(piece[sent:])), [] if sent else fds, lambda _delivered: close_fds(fds))
            )

    def _note_truncated(self, big: _BigMessage, received: int, recorded: int) -> None:
        attrs: dict = {"size": big.header.size, "received": received, "recorded": recorded}
        if big.later_fds:
            attrs["later_fds"] = [info.describe() for info in big.later_fds]
        self._note(MESSAGE_TRUNCATED, **attrs)

    # -- the end ----------------------------------------------------------------------------------

    def _peer_closed(self) -> None:
        """End-of-file: forward whatever part of a message came (as is), then report the end."""
        received = self._have
        big = self._big
        if received:
            fds, late = self._next_message()
            self._forward(memoryview(self._buf)[:received], fds, fds, late)
        else:
            close_fds(self._next_message()[0])
        if big is not None:
            self._big = None
            self.messages += 1
            self._note_truncated(big, received, received)
        self._ended(RelayEnd(self.sender, peer_closed=True, mid_message=bool(received), received=received))

    def _ended(self, end: RelayEnd) -> None:
        self.reading = False
        if self._end is None:
            self._end = end
        if end.peer_closed and self.unsent is not None:
            self.link.update()  # the end is reported once the destination took the rest
            return
        self.link.relay_ended(self, self._end)

    def discard(self) -> None:
        """The link is closing: give up what was not sent and close the proxy's copies of its FDs."""
        self.reading = False
        unsent, self.unsent = self.unsent, None
        if unsent is not None:
            unsent.done(False)
        held, self._held = self._held, None
        if held is not None:
            _finished(held.out, held.received_fds, False)
        close_fds(self._next_message()[0])


class Link:
    """Both directions between two sockets, closed together.

    End-of-file from one peer is passed on as a shutdown for writing to the other, as a direct
    connection would show it; once both directions ended (or a send or receive failed, or
    :meth:`abort`), both sockets are closed and ``on_closed`` runs once with the first end.
    Everything runs on ``loop``'s thread.
    """

    def __init__(
        self,
        a: socket.socket,
        b: socket.socket,
        *,
        loop: EventLoop,
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
        self.loop = loop
        self.conn = conn
        self.channel = channel
        self.recorder = recorder
        self._on_closed = on_closed
        self._first_end: RelayEnd | None = None
        self._ended: set[MessageRelay] = set()
        self.closed = False
        self.relays = (
            MessageRelay(a, b, link=self, sender=a_sender, intercept=intercept_a),
            MessageRelay(b, a, link=self, sender=b_sender, intercept=intercept_b),
        )
        self._fds = (a.fileno(), b.fileno())
        self._handlers = (self._ready_a, self._ready_b)

    def start(self) -> None:
        self.update()

    def update(self) -> None:
        """Watch each socket for what its two relays need now: input to read, room to send."""
        if self.closed:
            return
        for i in (0, 1):
            mask = (IN if self.relays[i].reading else 0) | (OUT if self.relays[1 - i].unsent else 0)
            self.loop.watch(self._fds[i], mask, self._handlers[i])

    def _ready_a(self, bits: int) -> None:
        self._ready(self.relays[0], self.relays[1], bits)

    def _ready_b(self, bits: int) -> None:
        self._ready(self.relays[1], self.relays[0], bits)

    def _ready(self, reader: MessageRelay, writer: MessageRelay, bits: int) -> None:
        """A socket is ready: ``reader`` reads it, ``writer`` sends to it."""
        if writer.unsent is not None and bits & (OUT | HUP):
            writer.on_writable()
        if reader.reading and bits & (IN | HUP) and not self.closed:
            reader.on_readable()

    def recheck_holds(self) -> None:
        for relay in self.relays:
            relay.recheck_hold()

    def abort(self, reason: str = "proxy") -> None:
        """Close both sides now (proxy shutdown, a replaced channel, a failed send)."""
        if self.closed:
            return
        if self._first_end is None:
            self._first_end = RelayEnd(reason, peer_closed=False)
        self._close()

    def relay_ended(self, relay: MessageRelay, end: RelayEnd) -> None:
        if self.closed:
            return
        if self._first_end is None:
            self._first_end = end
        self._ended.add(relay)
        if not end.peer_closed or len(self._ended) == len(self.relays):
            self._close()
            return
        with contextlib.suppress(OSError):
            relay.dst.shutdown(socket.SHUT_WR)
        self.update()

    def _close(self) -> None:
        self.closed = True
        for relay in self.relays:
            relay.discard()
        for fd in self._fds:
            self.loop.forget(fd)
        for sock in self.sockets:
            sock.close()
        assert self._first_end is not None
        self._on_closed(self, self._first_end)
