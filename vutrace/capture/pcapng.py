"""Write and read vutrace capture files (pcapng, capture format version 1; see docs/capture-format.md).

``CaptureWriter`` streams records into a file: one Enhanced Packet Block per record, each
written with a single ``write()`` straight to the OS (no user-space buffer), so another process
can follow the file while it grows and a writer killed at any moment leaves a file that reads
up to its last complete record. ``read_records`` gives the records back.
"""

from __future__ import annotations

import contextlib
import os
import platform
import stat
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

from vutrace import __version__
from vutrace.capture import blocks
from vutrace.capture import record_format as rf
from vutrace.capture.blocks import CaptureError, CaptureFormatError, CaptureWriteError, WalkState
from vutrace.capture.model import CaptureRecord, RecordChannel
from vutrace.capture.scan import RecordBatch, scan

__all__ = [
    "CaptureError",
    "CaptureFormatError",
    "CaptureTruncatedWarning",
    "CaptureWarning",
    "CaptureWriteError",
    "CaptureWriter",
    "read_batch",
    "read_records",
]

STATE_PAYLOADS = ("full", "hash")


class CaptureWarning(UserWarning):
    """Something in a capture was skipped (unknown record kind or version, a packet that is no vutrace record)."""


class CaptureTruncatedWarning(CaptureWarning):
    """The capture ends with an incomplete block (cut while being written); records up to it were read."""


class CaptureWriter:
    """Writes capture records to a new pcapng file; safe to call ``write`` from several threads.

    ``state_payload`` "full" keeps the device-state bytes, "hash" only their length and SHA-256.
    The file gets permissions ``mode`` (0600: captures hold guest data and addresses). An existing
    regular file is replaced; anything else (a symlink, a FIFO, a device, a directory) is refused.
    ``socket_path`` names the interfaces (``vu:<socket_path>#<conn>/<channel>``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        state_payload: str = "full",
        mode: int = 0o600,
        socket_path: str = "",
    ) -> None:
        if state_payload not in STATE_PAYLOADS:
            raise ValueError(f"state_payload must be one of {', '.join(STATE_PAYLOADS)}, not {state_payload!r}")
        self.path = Path(path)
        self.state_payload = state_payload
        self.socket_path = socket_path
        self._lock = threading.Lock()
        self._interfaces: dict[tuple[int, str], int] = {}
        self._size = 0
        """Bytes of complete blocks in the file."""
        self._fd: int | None = _create(self.path, mode)
        try:
            self._write(
                blocks.section_header(
                    userappl=f"vutrace {__version__}",
                    os_name=f"{platform.system()} {platform.release()}",
                    hardware=platform.machine(),
                    comment=f"vutrace capture format {rf.FORMAT_VERSION}",
                )
            )
        except BaseException:
            self.close()
            raise

    def write(self, record: CaptureRecord) -> None:
        """Append one record (one EPB, plus the IDB of a connection's channel the first time it is seen)."""
        stored = rf.state_record(record, self.state_payload)
        packet = rf.exported_pdu_tags(stored.kind, rf.info_text(stored)) + rf.encode_record(stored)
        channel = RecordChannel(stored.channel)
        direction = rf.EPB_DIRECTION.get(stored.sender, 0)
        with self._lock:
            if self._fd is None:
                raise ValueError("write to a closed CaptureWriter")
            key = (stored.conn, channel.value)
            interface = self._interfaces.get(key)
            prefix = b""
            if interface is None:
                interface = len(self._interfaces)
                prefix = blocks.interface_description(
                    f"vu:{self.socket_path}#{stored.conn}/{channel.value}",
                    f"vutrace: {channel.value} channel of connection {stored.conn}",
                )
            self._write(prefix + blocks.enhanced_packet(interface, stored.ts_ns, packet, direction))
            self._interfaces[key] = interface

    def _write(self, data: bytes) -> None:
        """Write whole blocks; if that fails (disk full...), cut the file back to its last complete block."""
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
                os.lseek(self._fd, self._size, os.SEEK_SET)
            raise
        self._size += len(data)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    @property
    def closed(self) -> bool:
        return self._fd is None

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _create(path: Path, mode: int) -> int:
    """Open ``path`` for writing, truncated, with permissions ``mode``; refuse anything but a regular file."""
    try:
        existing = path.lstat()
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        raise CaptureWriteError(f"refusing to write capture to {path}: exists and is not a regular file")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, mode)
    except OSError as error:
        raise CaptureWriteError(f"cannot create capture {path}: {error.strerror}") from error
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CaptureWriteError(f"refusing to write capture to {path}: not a regular file")
        os.set_blocking(fd, True)
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_batch(path: str | os.PathLike[str]) -> RecordBatch:
    """All records of a capture as columns (see ``scan.RecordBatch``); warns about skipped or cut-off data."""
    path = Path(path)
    try:
        buf = path.read_bytes()
    except IsADirectoryError:
        raise CaptureError(f"{path} is a directory, not a capture file") from None
    except OSError as error:
        raise CaptureError(f"cannot read {path}: {error.strerror}") from error
    blocks.check_file_start(buf[:4])
    state = WalkState()
    packets, stop = blocks.walk(buf, state)
    if not state.order and not state.interfaces:
        raise CaptureFormatError(f"truncated pcapng section header ({len(buf)} bytes)")
    if stop < len(buf):
        warnings.warn(
            CaptureTruncatedWarning(
                f"{path}: capture ends with an incomplete block ({len(buf) - stop} bytes at offset {stop}); "
                "read up to the last complete record"
            ),
            stacklevel=2,
        )
    batch = scan(buf, packets, state)
    for problem in batch.problems:
        warnings.warn(CaptureWarning(f"{path}: {problem}"), stacklevel=2)
    return batch


def read_records(path: str | os.PathLike[str]) -> Iterator[CaptureRecord]:
    """The records of a capture file, in file order.

    Raises CaptureFormatError (one-line message) for a file that is not a vutrace pcapng capture.
    A cut-off last block gives a CaptureTruncatedWarning; unknown record kinds or versions are
    skipped with a CaptureWarning.
    """
    batch = read_batch(path)
    return (batch.record(i) for i in range(len(batch)))
