"""The reference back-end: listens on a unix socket and serves one front-end connection at a time.

``Backend(path, BackendOptions(...))`` is usable in-process (``start()`` runs it
in a thread, ``close()`` stops it) and by ``vutrace sim backend``. The device
(an echo/checksum device, see ``device``) outlives connections, so a front-end
that reconnects finds its sequence numbers where it left them. What the
back-end noticed (spec problems in what it received, faults it injected on
purpose, transfers) is kept in ``events`` and ``transfers``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from dissectors.spec import F_LOG_ALL, F_PROTOCOL_FEATURES, ProtocolFeature
from vutrace.sim.device import EchoDevice
from vutrace.sim.errors import SimError
from vutrace.sim.fds import close_all, new_eventfd, notify, wait_readable
from vutrace.sim.reports import Event, TransferReport
from vutrace.sim.session import Session
from vutrace.sim.state import DeviceSnapshot
from vutrace.sim.wire import Transcript

log = logging.getLogger("vutrace.sim.backend")

VIRTIO_F_VERSION_1 = 32
BACKEND_FEATURES = 1 << VIRTIO_F_VERSION_1 | 1 << F_PROTOCOL_FEATURES | 1 << F_LOG_ALL
"""Virtio features the back-end offers: VERSION_1, PROTOCOL_FEATURES (bit 30), LOG_ALL (bit 26)."""
BACKEND_PROTOCOL_FEATURES = sum(
    1 << f
    for f in (
        ProtocolFeature.MQ,
        ProtocolFeature.LOG_SHMFD,
        ProtocolFeature.REPLY_ACK,
        ProtocolFeature.BACKEND_REQ,
        ProtocolFeature.CONFIG,
        ProtocolFeature.CONFIGURE_MEM_SLOTS,
        ProtocolFeature.DEVICE_STATE,
    )
)

FAULTS = {
    "state-fd-error": "SET_DEVICE_STATE_FD reply reports an error (0x101, no FD)",
    "error-with-fd": "SET_DEVICE_STATE_FD reply reports an error AND returns an FD (forbidden by the spec)",
    "check-fails": "CHECK_DEVICE_STATE replies 1 (failure)",
    "own-channel": "SET_DEVICE_STATE_FD reply returns the back-end's own pipe (0x0 + FD)",
    "skip-dirty-log": "ignore LOG_ALL: write guest memory without marking the dirty log",
}
"""Named behaviours a back-end can be asked for (besides the ones that take a value)."""


@dataclass
class BackendOptions:
    queue_pairs: int = 8
    """Queue pairs the back-end supports (GET_QUEUE_NUM); rings = 2 x queue pairs."""
    features: int = BACKEND_FEATURES
    protocol_features: int = BACKEND_PROTOCOL_FEATURES
    max_mem_slots: int = 32
    state_size: int = 4096
    """Payload bytes of the device state it saves (plus header, ring table and digest)."""
    seed: int = 1
    timeout: float = 5.0
    config_change: bool = True
    """Send BACKEND_CONFIG_CHANGE_MSG once per connection, on the first request processed."""
    faults: frozenset[str] = frozenset()
    """Names from FAULTS."""
    wrong_reply_flags: str | None = None
    """Message whose reply goes out with flags 0x1 (REPLY bit missing)."""
    missing_reply: str | None = None
    """Message whose reply is never sent."""
    disconnect_after: int | None = None
    """Close the first connection after processing this many requests."""

    def __post_init__(self) -> None:
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; known: {sorted(FAULTS)}")
        if not 1 <= self.queue_pairs <= 8:
            raise ValueError(f"queue pairs {self.queue_pairs}: 1 to 8 are supported")


@dataclass
class _Counters:
    connections: int = 0
    finished: int = 0


class Backend:
    """A vhost-user back-end serving connections on ``socket_path``."""

    def __init__(self, socket_path: str | os.PathLike[str], options: BackendOptions | None = None) -> None:
        self.path = Path(socket_path)
        self.options = options or BackendOptions()
        self.device = EchoDevice(self.options.queue_pairs)
        self.events: list[Event] = []
        self.transfers: list[TransferReport] = []
        self.transcript = Transcript()
        self.loaded: DeviceSnapshot | None = None
        """The device state last loaded and verified (SET_VRING_BASE is checked against it)."""
        self.disconnect_done = False
        self._counters = _Counters()
        self._cond = threading.Condition()
        self._stop_fd = new_eventfd()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def report(self, level: str, text: str) -> None:
        self.events.append(Event(time.time(), level, text))
        log.log(logging.INFO if level == "info" else logging.WARNING, "%s: %s", level, text)

    def problems(self) -> list[str]:
        return [e.text for e in self.events if e.level == "problem"]

    def listen(self) -> None:
        if self.path.exists() and stat.S_ISSOCK(self.path.stat().st_mode):
            self.path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            listener.bind(str(self.path))
            listener.listen(1)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self.report("info", f"listening on {self.path}")

    def serve(self, connections: int | None = None) -> None:
        """Serve connections one after the other until ``connections`` were served or ``close()``."""
        if self._listener is None:
            self.listen()
        assert self._listener is not None
        served = 0
        while connections is None or served < connections:
            ready = wait_readable([self._listener.fileno(), self._stop_fd], None, "connection")
            if self._stop_fd in ready:
                return
            conn, _ = self._listener.accept()
            served += 1
            with self._cond:
                self._counters.connections += 1
            self.report("info", f"connection {served} accepted")
            try:
                Session(self, conn, self._stop_fd).run()
            except SimError as error:
                self.report("problem", f"connection {served}: {error}")
            finally:
                with self._cond:
                    self._counters.finished += 1
                    self._cond.notify_all()

    def start(self, connections: int | None = None) -> Backend:
        """Listen now and serve in a daemon thread."""
        self.listen()
        self._thread = threading.Thread(target=self.serve, args=(connections,), name=f"backend {self.path.name}")
        self._thread.daemon = True
        self._thread.start()
        return self

    def wait_finished(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` connections have ended."""
        with self._cond:
            return self._cond.wait_for(lambda: self._counters.finished >= count, timeout)

    @property
    def connections(self) -> int:
        return self._counters.connections

    def request_stop(self) -> None:
        """Ask ``serve`` (and a running connection) to end; safe to call from a signal handler."""
        if self._stop_fd >= 0:
            notify(self._stop_fd)

    def close(self) -> None:
        """Stop serving, close the listening socket and remove it; closing twice is harmless."""
        if self._stop_fd < 0:
            return
        self.request_stop()
        if self._thread is not None:
            self._thread.join(self.options.timeout * 2)
            if self._thread.is_alive():
                self.report("problem", "the serving thread did not stop in time")
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        close_all([self._stop_fd])
        self._stop_fd = -1

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def summary(backend: Backend) -> dict:
    """A JSON-friendly account of what the back-end saw (printed by ``vutrace sim backend --json``)."""
    return {
        "socket": str(backend.path),
        "connections": backend.connections,
        "processed": list(backend.device.processed),
        "config_generation": backend.device.config_generation,
        "events": [{"level": e.level, "text": e.text} for e in backend.events],
        "transfers": [
            {
                "direction": t.direction,
                "channel": t.channel,
                "bytes": t.bytes,
                "sha256": t.sha256,
                "seconds": round(t.seconds, 6),
                "error": t.error,
            }
            for t in backend.transfers
        ],
    }
