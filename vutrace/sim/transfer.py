"""Moving the device state over its channel (a pipe or the back-end's own FD), and holding it in between.

``send_stream`` writes everything then the caller closes the FD (the end-of-data
signal); ``receive_stream`` reads until EOF in chunks, as QEMU does with 1 MiB
reads. Both wait at most ``timeout`` for the other side to make progress and
raise PeerClosed / PeerTimeout with how far they got. ``MigrationStream`` is
what the front-end keeps between the source and the destination: QEMU's
framing (be32 length + bytes per read, a 0 length at the end) in a spooled file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import select
import struct
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator

from vutrace.sim.errors import PeerClosed, PeerTimeout
from vutrace.sim.fds import wait_writable

QEMU_CHUNK = 1 << 20
"""QEMU reads the state channel in 1 MiB chunks."""
_BE32 = struct.Struct(">I")


def send_stream(
    fd: int, chunks: Iterable[bytes], timeout: float, what: str, progress: Callable[[int], None] | None = None
) -> int:
    """Write every chunk to ``fd``; returns the byte count (``progress`` sees each write). The caller closes ``fd``."""
    os.set_blocking(fd, False)
    sent = 0
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                wait_writable(fd, timeout, f"{what} after {sent} bytes")
                continue
            except OSError as error:
                if error.errno in (errno.EPIPE, errno.ECONNRESET):
                    raise PeerClosed(f"{what}: the reading end was closed after {sent} bytes (EPIPE)") from error
                raise
            sent += written
            view = view[written:]
            if progress:
                progress(written)
    return sent


def receive_stream(fd: int, sink: Callable[[bytes], None], timeout: float, what: str, chunk: int = QEMU_CHUNK) -> int:
    """Read ``fd`` to EOF, handing each read to ``sink``; returns the byte count."""
    os.set_blocking(fd, False)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    received = 0
    while True:
        try:
            data = os.read(fd, chunk)
        except BlockingIOError:
            if not poller.poll(timeout * 1000):
                raise PeerTimeout(f"{what}: no data and no EOF for {timeout:g} s after {received} bytes") from None
            continue
        except ConnectionResetError as error:
            raise PeerClosed(f"{what}: channel reset after {received} bytes") from error
        if not data:
            return received
        received += len(data)
        sink(data)


class MigrationStream:
    """The state as the front-end carries it from source to destination, framed like QEMU's vmstate field."""

    def __init__(self, spool_limit: int = 64 << 20) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=spool_limit)  # noqa: SIM115 - closed by close()
        self.size = 0
        self.chunks = 0
        self._sha = hashlib.sha256()
        self.started = time.monotonic()
        self._ended = False

    def append(self, data: bytes) -> None:
        """One read() of the source channel becomes one length-prefixed chunk."""
        self._file.write(_BE32.pack(len(data)))
        self._file.write(data)
        self._sha.update(data)
        self.size += len(data)
        self.chunks += 1

    def end(self) -> None:
        self._file.write(_BE32.pack(0))
        self._ended = True

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def read_chunks(self) -> Iterator[bytes]:
        """The chunks back, in order, until the 0 terminator."""
        self._file.seek(0)
        while True:
            head = self._file.read(_BE32.size)
            if len(head) < _BE32.size:
                raise PeerClosed("migration stream: ended without its 0-length terminator")
            (length,) = _BE32.unpack(head)
            if length == 0:
                return
            yield self._file.read(length)

    def corrupt(self, offset: int) -> None:
        """Flip one bit of state byte ``offset`` (to show that the destination notices)."""
        self._file.seek(0)
        position = 0
        while True:
            head = self._file.read(_BE32.size)
            (length,) = _BE32.unpack(head)
            if length == 0:
                raise ValueError(f"offset {offset} is beyond the {self.size}-byte state")
            if position + length > offset:
                where = self._file.tell() + offset - position
                self._file.seek(where)
                byte = self._file.read(1)[0]
                self._file.seek(where)
                self._file.write(bytes([byte ^ 0x01]))
                self._file.seek(0, os.SEEK_END)
                return
            self._file.seek(length, os.SEEK_CUR)
            position += length

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> MigrationStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
