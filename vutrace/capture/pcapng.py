"""Write and read vutrace capture files (pcapng, capture format version 1; see docs/capture-format.md).

``CaptureWriter`` streams records into a file: one Enhanced Packet Block per record, each
written with a single ``writev()`` straight to the OS (no user-space buffer), so another process
can follow the file while it grows and a writer killed at any moment leaves a file that reads
up to its last complete record. ``read_records`` gives the records back.
"""

from __future__ import annotations

import contextlib
import os
import platform
import stat
import struct
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

from vutrace import __version__
from vutrace.capture import blocks
from vutrace.capture import record_format as rf
from vutrace.capture.blocks import CaptureError, CaptureFormatError, CaptureWriteError, WalkState
from vutrace.capture.model import CaptureRecord, FdInfo, RecordChannel, RecordKind
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
CACHED_MESSAGE_BYTES = 512
"""Messages up to this size without FDs have their encoded block reused (most messages repeat)."""
CACHED_BLOCKS = 4096
_EPB_HEAD = struct.Struct("<IIIIIII")
"""EPB: block type, total length, interface, timestamp high and low, captured and original length."""
_EPB_TIMESTAMP = struct.Struct("<II")
_EPB_TIMESTAMP_OFFSET = 12
_EPB_FLAGS_OPTION = struct.Struct("<HHIHH")
"""epb_flags (code, length 4, value), then opt_endofopt."""
_BLOCK_TRAILER = struct.Struct("<I")


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
        self._blocks: dict[tuple, bytes] = {}
        """Encoded blocks of small FD-less messages, by everything but the timestamp (see write)."""
        try:
            self._write(
                [
                    blocks.section_header(
                        userappl=f"vutrace {__version__}",
                        os_name=f"{platform.system()} {platform.release()}",
                        hardware=platform.machine(),
                        comment=f"vutrace capture format {rf.FORMAT_VERSION}",
                    )
                ]
            )
        except BaseException:
            self.close()
            raise

    def write(self, record: CaptureRecord) -> None:
        """Append one record (one EPB, plus the IDB of a connection's channel the first time it is seen).

        The block goes to the OS in one ``writev`` of its parts (the record's bytes are not copied).
        A small message without FDs that was written before (same connection, channel, sender and
        bytes) reuses its encoded block with the new timestamp.
        """
        stored = rf.state_record(record, self.state_payload)
        direction = rf.EPB_DIRECTION.get(stored.sender, 0)
        cache_key = None
        if stored.kind == RecordKind.MESSAGE and not stored.fds and len(stored.data) <= CACHED_MESSAGE_BYTES:
            cache_key = (stored.conn, stored.channel, stored.sender, stored.stream, stored.late_fds, stored.data)
            block = self._blocks.get(cache_key)
            if block is not None:
                self._write_stamped(block, stored.ts_ns)
                return
        with self._lock:
            if self._fd is None:
                raise ValueError("write to a closed CaptureWriter")
            parts, interface = self._interface_parts(stored)
            block_parts = _epb_parts(interface, stored, direction)
            self._write(parts + block_parts)
            self._interfaces[stored.conn, stored.channel] = interface
            if cache_key is not None:
                if len(self._blocks) >= CACHED_BLOCKS:
                    self._blocks.clear()
                self._blocks[cache_key] = b"".join(block_parts)

    def write_piped(self, record: CaptureRecord, pipe: int) -> None:
        """Append a state chunk whose ``record.length`` bytes wait in ``pipe`` (``record.data`` is empty).

        The bytes go from the pipe into the file with ``splice(2)``, never through user space. They
        are taken out of the pipe whatever happens: if the file cannot take them, the rest is read
        and dropped, the file is cut back to its last complete block and the error raised.
        """
        if record.kind != RecordKind.STATE_CHUNK or record.data or self.state_payload != "full":
            raise ValueError("write_piped takes a state chunk without bytes, in full state-payload mode")
        length = record.length
        with self._lock:
            if self._fd is None:
                _discard(pipe, length)
                raise ValueError("write to a closed CaptureWriter")
            parts, interface = self._interface_parts(record)
            head, tail = _epb_frame(interface, record, rf.EPB_DIRECTION.get(record.sender, 0), length)
            parts.append(head)
            try:
                _write_all(self._fd, parts)
                while length:
                    length -= os.splice(pipe, self._fd, length)
                _write_all(self._fd, [tail])
            except BaseException:
                _discard(pipe, length)
                self._cut_back()
                raise
            self._size = os.lseek(self._fd, 0, os.SEEK_CUR)
            self._interfaces[record.conn, record.channel] = interface

    def write_message(
        self,
        ts_ns: int,
        conn: int,
        channel: str,
        sender: str,
        data: bytes,
        fds: tuple[FdInfo, ...] = (),
        late_fds: int = 0,
    ) -> None:
        """``write`` of a MESSAGE record with these fields, without building the record when its block is cached."""
        block = self._blocks.get((conn, channel, sender, 0, late_fds, data)) if not fds else None
        if block is None:
            record = CaptureRecord(
                kind=RecordKind.MESSAGE,
                ts_ns=ts_ns,
                conn=conn,
                channel=RecordChannel(channel),
                sender=sender,
                data=data,
                fds=fds,
                late_fds=late_fds,
            )
            self.write(record)
        else:
            self._write_stamped(block, ts_ns)

    def _write_stamped(self, block: bytes, ts_ns: int) -> None:
        """Write a cached block with its timestamp set to ``ts_ns``."""
        stamped = bytearray(block)
        _EPB_TIMESTAMP.pack_into(stamped, _EPB_TIMESTAMP_OFFSET, ts_ns >> 32 & 0xFFFFFFFF, ts_ns & 0xFFFFFFFF)
        with self._lock:
            if self._fd is None:
                raise ValueError("write to a closed CaptureWriter")
            self._write([stamped])

    def _interface_parts(self, record: CaptureRecord) -> tuple[list[bytes | bytearray], int]:
        """The interface of the record's connection and channel, and its IDB to write first if it is new."""
        interface = self._interfaces.get((record.conn, record.channel))
        if interface is not None:
            return [], interface
        channel = RecordChannel(record.channel).value
        idb = blocks.interface_description(
            f"vu:{self.socket_path}#{record.conn}/{channel}",
            f"vutrace: {channel} channel of connection {record.conn}",
        )
        return [idb], len(self._interfaces)

    def _write(self, parts: list[bytes | bytearray]) -> None:
        """Write whole blocks; if that fails (disk full...), cut the file back to its last complete block."""
        assert self._fd is not None
        try:
            _write_all(self._fd, parts)
        except BaseException:
            self._cut_back()
            raise
        self._size += sum(map(len, parts))

    def _cut_back(self) -> None:
        """Cut the file back to its last complete block (after a failed write)."""
        assert self._fd is not None
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, self._size)
            os.lseek(self._fd, self._size, os.SEEK_SET)

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


def _epb_parts(interface: int, record: CaptureRecord, direction: int) -> list[bytes]:
    """An EPB for ``record`` as the parts to write one after the other (the record's bytes unjoined)."""
    head, tail = _epb_frame(interface, record, direction, len(record.data))
    return [head, record.data, tail] if record.data else [head + tail]


def _epb_frame(interface: int, record: CaptureRecord, direction: int, data_length: int) -> tuple[bytes, bytes]:
    """What an EPB for ``record`` has before and after the record's ``data_length`` bytes."""
    tags_and_header = rf.exported_pdu_tags(record.kind, rf.info_text(record)) + rf.encode_pseudo_header(
        record, data_length
    )
    length = len(tags_and_header) + data_length
    pad = -length % 4
    options = _EPB_FLAGS_OPTION.pack(blocks.EPB_FLAGS, 4, direction, blocks.OPT_END, 0) if direction else b""
    total = _EPB_HEAD.size + length + pad + len(options) + _BLOCK_TRAILER.size
    ts = record.ts_ns
    head = _EPB_HEAD.pack(blocks.EPB_TYPE, total, interface, ts >> 32 & 0xFFFFFFFF, ts & 0xFFFFFFFF, length, length)
    return head + tags_and_header, b"\0" * pad + options + _BLOCK_TRAILER.pack(total)


def _write_all(fd: int, parts: list[bytes | bytearray]) -> None:
    """``writev`` the parts, and whatever a short write left."""
    written = os.writev(fd, parts)
    total = sum(map(len, parts))
    if written < total:
        rest = memoryview(b"".join(parts))[written:]
        while rest:
            rest = rest[os.write(fd, rest) :]


def _discard(pipe: int, length: int) -> None:
    """Read and drop ``length`` bytes waiting in ``pipe`` (fewer if it ends first)."""
    while length > 0:
        try:
            dropped = len(os.read(pipe, min(length, 1 << 20)))
        except OSError:
            return
        if not dropped:
            return
        length -= dropped


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
