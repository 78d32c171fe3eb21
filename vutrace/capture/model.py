"""Capture records: what the proxy observed, before any dissection.

A capture is a sequence of these records. The proxy produces them, the
pcapng writer stores them, the reader gives them back unchanged, and the
loader turns them into DataFrame rows. Message bytes are kept exactly as
they crossed the socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class RecordKind(IntEnum):
    """What a record holds; stored in the pseudo-header, unknown kinds are skipped by readers."""

    MESSAGE = 1
    """One whole vhost-user message (header + payload) on the main socket or back-end channel."""
    STATE_CHUNK = 2
    """Bytes of the device-state stream as one read() of the relay returned them."""
    EVENT = 3
    """A proxy event (listen, accept, connect, disconnect, error, state channel open/close...)."""


class RecordChannel(StrEnum):
    """The channel column of a record."""

    MAIN = "main"
    BACKEND = "backend"
    STATE = "state"
    EVENT = "event"


class FdKind(StrEnum):
    """What an FD passed with a message refers to, as fstat/readlink tell."""

    MEMFD = "memfd"
    EVENTFD = "eventfd"
    PIPE = "pipe"
    SOCKET = "socket"
    FILE = "file"
    USERFAULTFD = "userfaultfd"
    DMABUF = "dmabuf"
    OTHER = "other"
    UNKNOWN = "unknown"


class FdAction(StrEnum):
    """What the proxy did with an FD."""

    PASSED = "passed"
    """Forwarded as it came (the receiver gets a duplicate of the same open file)."""
    SUBSTITUTED = "substituted"
    """Replaced by one end of a proxy-owned socketpair or pipe, which the proxy relays."""


@dataclass(frozen=True)
class FdInfo:
    """Metadata of one FD that travelled with a message."""

    kind: FdKind
    action: FdAction = FdAction.PASSED
    fd: int = -1
    """The FD number in the proxy at the time it was received."""
    size: int | None = None
    dev: int = 0
    ino: int = 0
    target: str = ""
    """readlink of /proc/self/fd/N, e.g. ``/memfd:guest-ram (deleted)`` or ``anon_inode:[eventfd]``."""
    memfd_name: str = ""
    seals: int | None = None
    """F_GET_SEALS of a memfd."""

    def describe(self) -> str:
        """A one-line description, e.g. ``memfd:guest-ram 512MiB passed``."""
        parts = [self.kind.value + (f":{self.memfd_name}" if self.memfd_name else "")]
        if self.size is not None and self.kind in (FdKind.MEMFD, FdKind.FILE):
            parts.append(_human_size(self.size))
        if self.ino:
            parts.append(f"ino={self.ino}")
        parts.append(self.action.value)
        return " ".join(parts)


def _human_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n}{unit}" if unit == "B" else f"{n:.4g}{unit}"
        n /= 1024
    return f"{n}"


class EventName(StrEnum):
    """Names of proxy events."""

    LISTEN = "listen"
    ACCEPT = "accept"
    CONNECT = "connect"
    DISCONNECT = "disconnect"
    ERROR = "error"
    BACKEND_CHANNEL_OPEN = "backend_channel_open"
    BACKEND_CHANNEL_CLOSE = "backend_channel_close"
    STATE_OPEN = "state_open"
    STATE_CLOSE = "state_close"
    SHUTDOWN = "shutdown"
    MESSAGE_TRUNCATED = "message_truncated"
    MESSAGE_MODIFIED = "message_modified"
    MESSAGE_HELD = "message_held"


@dataclass(frozen=True)
class CaptureRecord:
    """One record of a capture.

    * MESSAGE: ``data`` is the whole message, ``fds`` its FDs, ``channel`` main or backend,
      ``sender`` frontend or backend.
    * STATE_CHUNK: ``data`` the chunk bytes (empty when only the hash was recorded),
      ``offset`` its position in the stream, ``length`` its real length, ``sha256`` set when
      the bytes were not kept; ``sender`` is the writer side of the stream.
    * EVENT: ``event`` the name and ``attrs`` its details (JSON-serialisable), sender proxy.
    """

    kind: RecordKind
    ts_ns: int
    conn: int
    channel: RecordChannel
    sender: str
    data: bytes = b""
    fds: tuple[FdInfo, ...] = ()
    offset: int = 0
    length: int = 0
    sha256: bytes | None = None
    event: str = ""
    attrs: dict = field(default_factory=dict)
    stream: int = 0
    """For STATE_CHUNK and state events: the number of the state transfer within the connection."""
    late_fds: int = 0
    """For MESSAGE: how many of ``fds`` arrived on a read after the one that returned the message's
    first byte (the spec wants every FD on the sendmsg carrying the first header byte)."""
