"""One proxied vhost-user connection: the main socket relay plus the channels it interposes.

Everything of a connection (both directions of the main socket, every back-end channel, every
device-state transfer) runs on one event loop thread (:mod:`vutrace.proxy.loop`). The main socket
is relayed as is, except for four messages:

* ``SET_BACKEND_REQ_FD`` (front-end request): the back-end gets one end of a proxy socketpair
  instead of the front-end's socket, and a :class:`~vutrace.proxy.relay.Link` relays the
  back-end channel between them. A later ``SET_BACKEND_REQ_FD`` replaces (closes) the earlier relay.
* ``SET_DEVICE_STATE_FD`` (front-end request and its reply): the back-end gets one end of a
  proxy pipe, made when the request arrives; when the reply accepts the transfer, a
  :class:`~vutrace.proxy.state.StateStream` relays between the front-end's FD and the proxy pipe,
  starting as soon as the reply is out. If the reply returns the back-end's own FD, that FD is
  interposed instead and the front-end gets the proxy's pipe end.
* ``CHECK_DEVICE_STATE`` (front-end request): the front-end sends it after closing its end of
  the state channel (LOAD) or reading end-of-file (SAVE). It is held until every state relay of
  the connection has passed end-of-file on, so the back-end sees the same order as directly
  (at most HOLD_TIMEOUT_S, then it goes with an ``error`` event).
* ``GET_PROTOCOL_FEATURES`` (back-end reply): bits given with ``hide_protocol_features`` are
  cleared, the only case where the proxy changes bytes; the record holds the forwarded bytes and a
  ``message_modified`` event the original ones.
"""

from __future__ import annotations

import socket
import struct
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from dissectors.header import Header
from dissectors.spec import (
    DEVICE_STATE_ERROR_MASK,
    FIXED_LAYOUTS,
    HEADER_SIZE,
    PROTOCOL_FEATURE_NAMES,
    Channel,
    Payload,
    Sender,
    by_name,
    feature_names,
)
from vutrace.capture.model import EventName, FdAction, FdKind, RecordChannel
from vutrace.proxy.fdinfo import describe
from vutrace.proxy.framing import close_fds
from vutrace.proxy.loop import EventLoop
from vutrace.proxy.pipes import make_pipe
from vutrace.proxy.recorder import Recorder
from vutrace.proxy.relay import Interceptor, Link, Outgoing, RelayEnd
from vutrace.proxy.state import LOAD, SAVE, StateStream

SET_BACKEND_REQ_FD = by_name(Channel.MAIN, "SET_BACKEND_REQ_FD").id
SET_DEVICE_STATE_FD = by_name(Channel.MAIN, "SET_DEVICE_STATE_FD").id
CHECK_DEVICE_STATE = by_name(Channel.MAIN, "CHECK_DEVICE_STATE").id
GET_PROTOCOL_FEATURES = by_name(Channel.MAIN, "GET_PROTOCOL_FEATURES").id
FRONTEND_INTERCEPTED = frozenset({SET_BACKEND_REQ_FD, SET_DEVICE_STATE_FD, CHECK_DEVICE_STATE})
BACKEND_INTERCEPTED = frozenset({SET_DEVICE_STATE_FD, GET_PROTOCOL_FEATURES})


def _layout(kind: Payload) -> struct.Struct:
    return struct.Struct("<" + "".join(field.fmt for field in FIXED_LAYOUTS[kind]))


_STATE_PARAMS = _layout(Payload.DEVICE_STATE)
_STATE_RESULT = _layout(Payload.DEVICE_STATE_RESULT)
_PROTOCOL_FEATURES = _layout(Payload.PROTOCOL_FEATURES)
FRONTEND = str(Sender.FRONTEND)
BACKEND = str(Sender.BACKEND)


@dataclass(frozen=True)
class Options:
    """What a connection does beyond plain forwarding."""

    hide_protocol_features: int = 0
    """Mask of protocol feature bits cleared in GET_PROTOCOL_FEATURES replies (negative tests)."""
    hash_state: bool = False
    """Record device-state chunks by length and SHA-256 (and hash each whole stream) instead of their bytes."""


@dataclass
class _PendingState:
    """A SET_DEVICE_STATE_FD request forwarded, its reply not seen yet."""

    direction: int
    src: int
    dst: int

    def close(self) -> None:
        close_fds((self.src, self.dst))


def end_attrs(end: RelayEnd) -> dict:
    """Event attributes telling who closed a link and how."""
    attrs: dict = {"closed_by": end.sender}
    if end.mid_message:
        attrs["mid_message"] = True
        attrs["received"] = end.received
    if end.send_failed:
        attrs["closed_by"] = BACKEND if end.sender == FRONTEND else FRONTEND
    if end.error:
        attrs["error"] = end.error
    return attrs


class Connection:
    """A front-end socket and a back-end socket relayed, with the interposed channels of that pair."""

    def __init__(
        self,
        number: int,
        frontend: socket.socket,
        backend: socket.socket,
        *,
        recorder: Recorder,
        options: Options,
        on_finished: Callable[[Connection], None],
    ) -> None:
        self.number = number
        self.recorder = recorder
        self.options = options
        self._on_finished = on_finished
        self.loop = EventLoop(f"conn-{number}", on_error=self._loop_error, deferred=recorder)
        self._streams: set[StateStream] = set()
        """Device-state relays still running (loop thread only, like everything below)."""
        self._stream_count = 0
        self._pending: _PendingState | None = None
        self._backend_channel: Link | None = None
        self.main = Link(
            frontend,
            backend,
            loop=self.loop,
            conn=number,
            channel=RecordChannel.MAIN,
            a_sender=FRONTEND,
            b_sender=BACKEND,
            recorder=recorder,
            on_closed=self._main_closed,
            intercept_a=Interceptor(FRONTEND_INTERCEPTED, self._from_frontend),
            intercept_b=Interceptor(BACKEND_INTERCEPTED, self._from_backend),
        )
        self._links: set[Link] = {self.main}
        """Open links (main and back-end channels); only touched on the loop thread."""

    def start(self) -> None:
        self.main.start()
        self.loop.start()

    def stop(self) -> None:
        """Close everything of this connection (proxy shutdown)."""
        self.loop.call_soon(self._close_everything)

    def join(self, timeout: float) -> bool:
        return self.loop.join(timeout)

    # -- links and streams (loop thread) ----------------------------------------------------------

    def _close_everything(self) -> None:
        for link in list(self._links):
            link.abort()
        for stream in list(self._streams):
            stream.stop()

    def _part_closed(self) -> None:
        if self._links or self._streams:
            return
        self.loop.finish(then=lambda: self._on_finished(self))

    def _link_closed(self, link: Link) -> None:
        self._links.discard(link)
        self._part_closed()

    def _loop_error(self, error: BaseException) -> None:
        where = traceback.extract_tb(error.__traceback__)[-1]
        self.recorder.event(
            EventName.ERROR,
            self.number,
            error=f"proxy bug, connection closed: {error!r} at {where.filename}:{where.lineno}",
        )
        self._close_everything()

    def _main_closed(self, link: Link, end: RelayEnd) -> None:
        pending, self._pending = self._pending, None
        if pending:
            pending.close()
        counts = {f"{relay.sender}_messages": relay.messages for relay in link.relays}
        self.recorder.event(EventName.DISCONNECT, self.number, **end_attrs(end), **counts)
        self._link_closed(link)

    def _from_frontend(self, header: Header, message: memoryview, fds: list[int]) -> Outgoing | None:
        if header.is_reply:
            return None
        request = header.request
        if request == CHECK_DEVICE_STATE:
            return self._hold_check(message, fds)
        if len(fds) != 1:
            return None
        if request == SET_BACKEND_REQ_FD:
            return self._interpose_backend_channel(message, fds[0])
        if request == SET_DEVICE_STATE_FD and header.size >= _STATE_PARAMS.size:
            return self._interpose_state_request(message, fds[0])
        return None

    def _from_backend(self, header: Header, message: memoryview, fds: list[int]) -> Outgoing | None:
        if not header.is_reply:
            return None
        if header.request == SET_DEVICE_STATE_FD and header.size >= _STATE_RESULT.size:
            return self._state_reply(message, fds)
        if (
            header.request == GET_PROTOCOL_FEATURES
            and header.size >= _PROTOCOL_FEATURES.size
            and self.options.hide_protocol_features
        ):
            return self._hide_protocol_features(message, fds)
        return None

    # -- back-end request channel -----------------------------------------------------------------

    def _interpose_backend_channel(self, message: memoryview, fd: int) -> Outgoing | None:
        info = describe(fd, FdAction.SUBSTITUTED)
        if info.kind is not FdKind.SOCKET:
            return None
        frontend_side = socket.socket(fileno=fd)
        proxy_end, backend_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        link = Link(
            proxy_end,
            frontend_side,
            loop=self.loop,
            conn=self.number,
            channel=RecordChannel.BACKEND,
            a_sender=BACKEND,
            b_sender=FRONTEND,
            recorder=self.recorder,
            on_closed=self._channel_closed,
        )

        def sent(delivered: bool) -> None:
            backend_end.close()
            if not delivered:
                proxy_end.close()
                frontend_side.close()
                return
            replaced, self._backend_channel = self._backend_channel, link
            self._links.add(link)
            if replaced:
                replaced.abort("replaced")
            self.recorder.event(EventName.BACKEND_CHANNEL_OPEN, self.number, frontend_fd=info.describe())
            link.start()

        return Outgoing(message, [backend_end.fileno()], [], (info,), on_sent=sent)

    def _channel_closed(self, link: Link, end: RelayEnd) -> None:
        if self._backend_channel is link:
            self._backend_channel = None
        self.recorder.event(EventName.BACKEND_CHANNEL_CLOSE, self.number, **end_attrs(end))
        self._link_closed(link)

    # -- device state -----------------------------------------------------------------------------

    def _interpose_state_request(self, message: memoryview, fd: int) -> Outgoing | None:
        direction, _phase = _STATE_PARAMS.unpack_from(message, HEADER_SIZE)
        if direction not in (SAVE, LOAD):
            return None
        r, w = make_pipe()
        if direction == SAVE:  # the front-end reads what the back-end writes into our pipe
            pending, given = _PendingState(direction, src=r, dst=fd), w
        else:  # the back-end reads our pipe, we fill it from the front-end's
            pending, given = _PendingState(direction, src=fd, dst=w), r
        replaced, self._pending = self._pending, pending
        if replaced:
            replaced.close()

        def sent(delivered: bool) -> None:
            if not delivered and self._pending is pending:
                self._pending = None
                pending.close()

        return Outgoing(message, [given], [given], fd_action=FdAction.SUBSTITUTED, on_sent=sent)

    def _state_reply(self, message: memoryview, fds: list[int]) -> Outgoing | None:
        """Forward the reply, then start relaying the accepted transfer here (the capture lists the reply first)."""
        (value,) = _STATE_RESULT.unpack_from(message, HEADER_SIZE)
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        if value & DEVICE_STATE_ERROR_MASK or len(fds) > 1:
            pending.close()
            return None
        if not fds:
            src, dst, provider, given = pending.src, pending.dst, FRONTEND, []
        else:
            pending.close()
            provided = fds[0]
            r, w = make_pipe()
            if pending.direction == SAVE:  # the front-end will read our pipe; we fill it from the back-end's FD
                src, dst, given = provided, w, [r]
            else:  # the front-end will write into our pipe; we drain it into the back-end's FD
                src, dst, given = r, provided, [w]
            provider = BACKEND

        def sent(delivered: bool) -> None:
            if delivered:
                self._start_stream(pending.direction, provider, src, dst)
            else:
                close_fds((src, dst))

        return Outgoing(message, given, given, fd_action=FdAction.SUBSTITUTED, on_sent=sent)

    def _start_stream(self, direction: int, provider: str, src: int, dst: int) -> None:
        self._stream_count += 1
        stream = StateStream(
            loop=self.loop,
            conn=self.number,
            stream=self._stream_count,
            direction=direction,
            provider=provider,
            src=src,
            dst=dst,
            recorder=self.recorder,
            hash_payload=self.options.hash_state,
            on_finished=self._stream_finished,
        )
        self._streams.add(stream)
        stream.start()

    def _streams_finished(self) -> bool:
        return not self._streams

    def _hold_check(self, message: memoryview, fds: list[int]) -> Outgoing | None:
        if self._streams_finished():
            return None
        return Outgoing(message, fds, fds, hold=self._streams_finished, hold_reason="the device-state relay to end")

    def _stream_finished(self, stream: StateStream) -> None:
        self._streams.discard(stream)
        self.main.recheck_holds()
        self._part_closed()

    # -- negative tests ---------------------------------------------------------------------------

    def _hide_protocol_features(self, message: memoryview, fds: list[int]) -> Outgoing | None:
        (value,) = _PROTOCOL_FEATURES.unpack_from(message, HEADER_SIZE)
        hidden = value & self.options.hide_protocol_features
        if not hidden:
            return None
        data = bytearray(message)
        _PROTOCOL_FEATURES.pack_into(data, HEADER_SIZE, value & ~hidden)
        modified = {
            "reason": "hide_protocol_features",
            "original": bytes(message).hex(),
            "forwarded": data.hex(),
            "hidden": feature_names(hidden, PROTOCOL_FEATURE_NAMES),
        }
        return Outgoing(bytes(data), fds, fds, modified=modified)
