"""The capturing man-in-the-middle proxy as a library: listen, connect the other side, relay, record.

Usage::

    with Proxy(listen="/run/fe.sock", connect="/run/be.sock", capture="out.pcapng") as proxy:
        records = proxy.subscribe()        # live records, or pass on_record=callable
        ...

In the usual set-up the front-end connects to the proxy (``listen``) and the proxy connects to the
back-end (``connect``) for each accepted connection. For a front-end that listens (QEMU
``server=on`` chardevs, DPDK vhost client mode) use ``listen_backend`` and ``connect_frontend``:
the proxy accepts the back-end and connects to the front-end.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vutrace.capture.model import CaptureRecord, EventName
from vutrace.capture.pcapng import CaptureError, CaptureWriter
from vutrace.proxy.connection import BACKEND, FRONTEND, Connection, Options
from vutrace.proxy.errors import ProxyError
from vutrace.proxy.recorder import Recorder, RecordSink
from vutrace.proxy.repeats import RepeatedErrors
from vutrace.proxy.sockets import ListeningSocket, check_path, connect

JOIN_TIMEOUT_S = 5.0
BACKOFF_FIRST_S = 0.05
"""After a connection attempt fails, the proxy waits this long before it accepts the next one ..."""
BACKOFF_MAX_S = 2.0
"""... doubling the wait at each further failure up to this, until a connection succeeds."""


class Proxy:
    """A running proxy between one listening path and one connecting path."""

    def __init__(
        self,
        *,
        listen: str | None = None,
        connect: str | None = None,
        listen_backend: str | None = None,
        connect_frontend: str | None = None,
        capture: str | os.PathLike[str] | RecordSink | None = None,
        state_payload: str = "full",
        mode: int = 0o600,
        force: bool = False,
        hide_protocol_features: int = 0,
        on_record: Callable[[CaptureRecord], None] | None = None,
    ) -> None:
        if listen and connect and not (listen_backend or connect_frontend):
            self.listen_for, self.listen_path, self.connect_path = FRONTEND, listen, connect
        elif listen_backend and connect_frontend and not (listen or connect):
            self.listen_for, self.listen_path, self.connect_path = BACKEND, listen_backend, connect_frontend
        else:
            raise ProxyError("give --listen and --connect, or --listen-backend and --connect-frontend")
        if state_payload not in ("full", "hash"):
            raise ProxyError(f"state payload must be full or hash, not {state_payload!r}")
        check_path(self.listen_path)
        check_path(self.connect_path)
        self.connect_for = BACKEND if self.listen_for == FRONTEND else FRONTEND
        self.state_payload = state_payload
        self.options = Options(hide_protocol_features=hide_protocol_features, hash_state=state_payload == "hash")
        self.mode = mode
        self.force = force
        self._capture = capture
        self._writer: Any = None
        self.recorder = Recorder()
        if on_record:
            self.recorder.add_listener(on_record)
        self._repeats = RepeatedErrors(self.recorder)
        self._lock = threading.Lock()
        self._connections: dict[int, Connection] = {}
        self._count = 0
        self._listener: ListeningSocket | None = None
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._stopped = False

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> Proxy:
        """Open the capture, bind the listening socket and start accepting; raises ProxyError."""
        self._listener = ListeningSocket(self.listen_path, mode=self.mode, force=self.force)
        try:
            self._writer = self._open_capture()
        except ProxyError:
            self._listener.close()
            raise
        self.recorder.writer = self._writer
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.recorder.event(
            EventName.LISTEN,
            path=self.listen_path,
            accepts=self.listen_for,
            connects_to=self.connect_path,
            connects=self.connect_for,
            mode=oct(self.mode),
        )
        self._thread = threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)
        self._thread.start()
        return self

    def stop(self, reason: str = "stopped") -> None:
        """Stop accepting, close every connection and channel, record SHUTDOWN, close the capture."""
        if self._stopped or self._thread is None:
            return
        self._stopped = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._thread.join(JOIN_TIMEOUT_S)
        if self._listener:
            self._listener.close()
        with self._lock:
            connections = list(self._connections.values())
        for connection in connections:
            connection.stop()
        for connection in connections:
            connection.join(JOIN_TIMEOUT_S)
        self._repeats.summarize()
        self.recorder.event(EventName.SHUTDOWN, reason=reason, connections=self._count)
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self._close_capture()

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- live records ---------------------------------------------------------------------------

    def subscribe(self, maxsize: int = 0):
        """A queue.Queue receiving every record from now on (see Recorder.subscribe)."""
        return self.recorder.subscribe(maxsize)

    def add_listener(self, listener: Callable[[CaptureRecord], None]) -> None:
        self.recorder.add_listener(listener)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record so far is in the capture and with the listeners."""
        return self.recorder.flush(timeout)

    @property
    def connections(self) -> int:
        """How many connections were numbered so far (accepted; repeats of a coalesced failure get no number)."""
        return self._count

    @property
    def active(self) -> int:
        """Connections with a main socket, back-end channel or state stream still open."""
        with self._lock:
            return len(self._connections)

    @property
    def write_error(self) -> BaseException | None:
        return self.recorder.write_error

    # -- internals ------------------------------------------------------------------------------

    def _open_capture(self) -> Any:
        capture = self._capture
        if capture is None or hasattr(capture, "write"):
            return capture
        path = Path(capture)
        try:
            return CaptureWriter(path, state_payload=self.state_payload, mode=0o600, socket_path=self.listen_path)
        except CaptureError as error:
            raise ProxyError(str(error)) from error
        except OSError as error:
            raise ProxyError(f"cannot write capture {path}: {error.strerror or error}") from error

    def _close_capture(self) -> None:
        self.recorder.close()
        self.recorder.writer = None
        if self._writer is not None and self._writer is not self._capture:
            self._writer.close()
        self._writer = None

    def _accept_loop(self) -> None:
        assert self._listener is not None
        delay = 0.0
        while not self._stopped:
            if delay and self._woken(delay):
                break
            ready, _, _ = select.select([self._listener.fileno(), self._wake_r], [], [])
            if self._wake_r in ready:
                break
            try:
                accepted = self._listener.accept()
            except OSError as error:
                if self._repeats.failed(f"accept failed: {error}"):
                    self.recorder.event(EventName.ERROR, error=f"accept failed: {error}")
                delay = _backoff(delay)
                continue
            if self._open_connection(accepted):
                delay = 0.0
                self._repeats.succeeded()
            else:
                delay = _backoff(delay)

    def _woken(self, timeout: float) -> bool:
        """Wait ``timeout`` seconds; True if stop() woke the accept loop meanwhile."""
        ready, _, _ = select.select([self._wake_r], [], [], timeout)
        return bool(ready)

    def _next_number(self) -> int:
        with self._lock:
            self._count += 1
            return self._count

    def _open_connection(self, accepted: Any) -> bool:
        """Connect the other side and start relaying; False (and the accepted socket closed) if it is not there."""
        try:
            other = connect(self.connect_path)
        except OSError as error:
            accepted.close()
            text = f"cannot connect to the {self.connect_for} at {self.connect_path}: {error.strerror or error}"
            if self._repeats.failed(text):
                number = self._next_number()
                self.recorder.event(EventName.ACCEPT, number, side=self.listen_for, path=self.listen_path)
                self.recorder.event(EventName.ERROR, number, error=text, side=self.connect_for)
                self.recorder.event(EventName.DISCONNECT, number, closed_by="proxy", reason="connect failed")
            return False
        number = self._next_number()
        self.recorder.event(EventName.ACCEPT, number, side=self.listen_for, path=self.listen_path)
        self.recorder.event(EventName.CONNECT, number, side=self.connect_for, path=self.connect_path)
        frontend, backend = (accepted, other) if self.listen_for == FRONTEND else (other, accepted)
        connection = Connection(
            number,
            frontend,
            backend,
            recorder=self.recorder,
            options=self.options,
            on_finished=self._finished,
        )
        with self._lock:
            self._connections[number] = connection
        connection.start()
        return True

    def _finished(self, connection: Connection) -> None:
        with self._lock:
            self._connections.pop(connection.number, None)


def _backoff(delay: float) -> float:
    return min(max(delay * 2, BACKOFF_FIRST_S), BACKOFF_MAX_S)
