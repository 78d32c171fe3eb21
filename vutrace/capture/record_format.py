"""The vutrace record inside each pcapng packet (capture format version 1), and how to encode it.

A packet is: exported-PDU tags (big-endian, for Wireshark), the vutrace pseudo-header
(little-endian, versioned), then the record's bytes unmodified. docs/capture-format.md
describes every field; the offsets and codes below are the ones that document lists, and the
scanner and the Wireshark dissector generator take them from here.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import replace

from dissectors.header import parse_header
from dissectors.spec import FLAG_REPLY, HEADER_SIZE, lookup
from vutrace.capture.model import CaptureRecord, FdAction, FdInfo, FdKind, RecordChannel, RecordKind

FORMAT_VERSION = 1
"""The capture format version documented in docs/capture-format.md."""
VERSION_MAJOR = 1
VERSION_MINOR = 1
"""Minor 1 added ``late_fds`` (byte 28 of a MESSAGE's pseudo-header, reserved and 0 in minor 0)."""
LATE_FDS_MINOR = 1
"""The first minor version whose MESSAGE records carry ``late_fds``; readers take 0 from older records."""

DISSECTOR_NAME = "vutrace"
"""Exported-PDU tag 12: the Wireshark dissector the packet is handed to."""
PROTOCOL_COLUMN = {RecordKind.MESSAGE: "vhost-user", RecordKind.STATE_CHUNK: "vhost-user", RecordKind.EVENT: "vutrace"}

TAG_END = 0
TAG_DISSECTOR_NAME = 12
TAG_COL_PROT_TEXT = 33
TAG_COL_INFO_TEXT = 36

MAGIC = b"VUTR"
COMMON = struct.Struct("<4sBBBBIBBHIIIB3x")
"""magic, major, minor, kind, channel, header_len, sender, nfds, flags, conn, stream, data_len, late_fds (then 3
reserved bytes)."""
COMMON_SIZE = COMMON.size
OFF_MAJOR = 4
OFF_MINOR = 5
OFF_KIND = 6
OFF_CHANNEL = 7
OFF_HEADER_LEN = 8
OFF_SENDER = 12
OFF_NFDS = 13
OFF_FLAGS = 14
OFF_CONN = 16
OFF_STREAM = 20
OFF_DATA_LEN = 24
OFF_LATE_FDS = 28

STATE_PART = struct.Struct("<QQ32s")
"""STATE_CHUNK part at offset 32: stream offset, chunk length, SHA-256 (zeros unless FLAG_SHA256)."""
EVENT_PART = struct.Struct("<HHI")
"""EVENT part at offset 32: name length, reserved, attrs length; then the name and the JSON attrs (UTF-8)."""
FD_ENTRY = struct.Struct("<HBBBBHHHiQQQII")
"""entry_len, kind, action, present, reserved, target_len, memfd_name_len, reserved, fd, size, dev, ino, seals,
reserved; then target and memfd name (UTF-8)."""

FLAG_SHA256 = 0x1
"""The STATE_CHUNK part's SHA-256 is set."""
FLAG_DATA_OMITTED = 0x2
"""The chunk bytes were not recorded (state_payload="hash"); only length and SHA-256."""

FD_HAS_SIZE = 0x1
FD_HAS_SEALS = 0x2

CHANNEL_CODES: dict[RecordChannel, int] = {
    RecordChannel.MAIN: 1,
    RecordChannel.BACKEND: 2,
    RecordChannel.STATE: 3,
    RecordChannel.EVENT: 4,
}
SENDER_CODES: dict[str, int] = {"frontend": 1, "backend": 2, "proxy": 3}
FD_KIND_CODES: dict[FdKind, int] = {
    FdKind.UNKNOWN: 0,
    FdKind.MEMFD: 1,
    FdKind.EVENTFD: 2,
    FdKind.PIPE: 3,
    FdKind.SOCKET: 4,
    FdKind.FILE: 5,
    FdKind.USERFAULTFD: 6,
    FdKind.DMABUF: 7,
    FdKind.OTHER: 8,
}
FD_ACTION_CODES: dict[FdAction, int] = {FdAction.PASSED: 1, FdAction.SUBSTITUTED: 2}

CHANNEL_NAMES = {code: channel for channel, code in CHANNEL_CODES.items()}
SENDER_NAMES = {code: sender for sender, code in SENDER_CODES.items()}
FD_KIND_NAMES = {code: kind for kind, code in FD_KIND_CODES.items()}
FD_ACTION_NAMES = {code: action for action, code in FD_ACTION_CODES.items()}

DIRECTION_INBOUND = 1
DIRECTION_OUTBOUND = 2
EPB_DIRECTION = {"frontend": DIRECTION_OUTBOUND, "backend": DIRECTION_INBOUND}
"""epb_flags direction by sender: as seen from the front-end, what it sends is outbound."""


def _tlv(tag: int, value: bytes) -> bytes:
    """One exported-PDU tag; the NUL padding to a multiple of 4 is counted in the length (tshark 4.0 needs it)."""
    padded = value + b"\0" * (-len(value) % 4)
    return struct.pack(">HH", tag, len(padded)) + padded


_NAME_TLV = _tlv(TAG_DISSECTOR_NAME, DISSECTOR_NAME.encode())
_PREFIX = {kind: _NAME_TLV + _tlv(TAG_COL_PROT_TEXT, text.encode()) for kind, text in PROTOCOL_COLUMN.items()}
_END_TLV = struct.pack(">HH", TAG_END, 0)
MAX_INFO_BYTES = 240


def exported_pdu_tags(kind: RecordKind, info: str) -> bytes:
    """The tags before the pseudo-header: dissector name, protocol column, info column, end."""
    return _PREFIX[kind] + _tlv(TAG_COL_INFO_TEXT, info.encode()[:MAX_INFO_BYTES]) + _END_TLV


def encode_fd(info: FdInfo) -> bytes:
    target = info.target.encode(errors="surrogateescape")[:0xFFFF]
    name = info.memfd_name.encode(errors="surrogateescape")[:0xFFFF]
    present = (FD_HAS_SIZE if info.size is not None else 0) | (FD_HAS_SEALS if info.seals is not None else 0)
    fixed = FD_ENTRY.pack(
        FD_ENTRY.size + len(target) + len(name),
        FD_KIND_CODES.get(info.kind, 0),
        FD_ACTION_CODES.get(info.action, 0),
        present,
        0,
        len(target),
        len(name),
        0,
        info.fd,
        info.size or 0,
        info.dev,
        info.ino,
        info.seals or 0,
        0,
    )
    return fixed + target + name


def state_record(record: CaptureRecord, state_payload: str) -> CaptureRecord:
    """The record as it is stored: in "hash" mode a state chunk keeps only its length and SHA-256."""
    if record.kind != RecordKind.STATE_CHUNK:
        return record
    length = record.length or len(record.data)
    if state_payload == "hash" and record.data:
        digest = record.sha256 or hashlib.sha256(record.data).digest()
        return replace(record, data=b"", length=length, sha256=digest)
    if length != record.length:
        return replace(record, length=length)
    return record


def encode_record(record: CaptureRecord) -> bytes:
    """Pseudo-header and bytes of a record (without the exported-PDU tags).

    A state chunk with a length but no bytes is marked FLAG_DATA_OMITTED (hash mode).
    """
    return encode_pseudo_header(record) + record.data


def encode_pseudo_header(record: CaptureRecord, data_length: int | None = None) -> bytes:
    """The pseudo-header of a record: what :func:`encode_record` puts before the record's bytes.

    ``data_length`` is how many bytes will follow it (``len(record.data)`` unless the bytes come
    from elsewhere, as a state chunk spliced from a pipe).
    """
    kind = RecordKind(record.kind)
    if data_length is None:
        data_length = len(record.data)
    flags = 0
    if kind is RecordKind.STATE_CHUNK:
        if record.sha256 is not None:
            flags |= FLAG_SHA256
        if record.length and not data_length:
            flags |= FLAG_DATA_OMITTED
        part = STATE_PART.pack(record.offset, record.length, record.sha256 or b"")
    elif kind is RecordKind.EVENT:
        name = str(record.event).encode()
        attrs = json.dumps(record.attrs, separators=(",", ":"), default=str).encode() if record.attrs else b""
        part = EVENT_PART.pack(len(name), 0, len(attrs)) + name + attrs
    else:
        part = b""
    fds = b"".join(encode_fd(fd) for fd in record.fds)
    _check_late_fds(record, kind)
    header_len = COMMON_SIZE + len(part) + len(fds)
    common = COMMON.pack(
        MAGIC,
        VERSION_MAJOR,
        VERSION_MINOR,
        kind.value,
        CHANNEL_CODES[RecordChannel(record.channel)],
        header_len,
        _sender_code(record.sender),
        len(record.fds),
        flags,
        record.conn,
        record.stream,
        data_length,
        record.late_fds,
    )
    return common + part + fds


def _check_late_fds(record: CaptureRecord, kind: RecordKind) -> None:
    """``late_fds`` counts some of a message's FDs; any other value cannot be stored."""
    late = record.late_fds
    if kind is not RecordKind.MESSAGE and late:
        raise ValueError(f"late_fds={late} on a {kind.name} record (only messages have it)")
    if not 0 <= late <= len(record.fds):
        raise ValueError(f"late_fds={late} is not between 0 and the message's {len(record.fds)} FDs")


def _sender_code(sender: str) -> int:
    try:
        return SENDER_CODES[sender]
    except KeyError:
        raise ValueError(f"unknown sender {sender!r} (expected frontend, backend or proxy)") from None


def info_text(record: CaptureRecord) -> str:
    """The Info column text Wireshark 4.2+ shows without the Lua dissector: a short summary of the record."""
    kind = record.kind
    if kind == RecordKind.MESSAGE:
        data = record.data
        if len(data) < HEADER_SIZE:
            return f"#{record.conn} {record.channel} TRUNCATED ({len(data)} bytes)"
        header = parse_header(data)
        message = lookup(record.channel, header.request) if record.channel in ("main", "backend") else None
        name = message.name if message else f"UNKNOWN_{header.request}"
        reply = " reply" if header.flags & FLAG_REPLY else ""
        return f"#{record.conn} {record.channel} {record.sender} {name}{reply}"
    if kind == RecordKind.STATE_CHUNK:
        return f"#{record.conn} state {record.sender} stream {record.stream} offset {record.offset} +{record.length}"
    return f"#{record.conn} event {record.event}"


def decode_fds(buf: bytes | memoryview, pos: int, end: int, nfds: int) -> tuple[tuple[FdInfo, ...], int]:
    """The FD entries at ``pos``; returns them and the offset after the last. Raises ValueError if malformed."""
    fds = []
    for _ in range(nfds):
        if pos + FD_ENTRY.size > end:
            raise ValueError("FD entry runs past the pseudo-header")
        (entry_len, kind, action, present, _, target_len, name_len, _, fd, size, dev, ino, seals, _) = (
            FD_ENTRY.unpack_from(buf, pos)
        )
        strings = pos + FD_ENTRY.size
        if entry_len < FD_ENTRY.size + target_len + name_len or pos + entry_len > end:
            raise ValueError("FD entry length is inconsistent")
        target = bytes(buf[strings : strings + target_len]).decode(errors="surrogateescape")
        name = bytes(buf[strings + target_len : strings + target_len + name_len]).decode(errors="surrogateescape")
        fds.append(
            FdInfo(
                kind=FD_KIND_NAMES.get(kind, FdKind.UNKNOWN),
                action=FD_ACTION_NAMES.get(action, FdAction.PASSED),
                fd=fd,
                size=size if present & FD_HAS_SIZE else None,
                dev=dev,
                ino=ino,
                target=target,
                memfd_name=name,
                seals=seals if present & FD_HAS_SEALS else None,
            )
        )
        pos += entry_len
    return tuple(fds), pos


def decode_event(buf: bytes | memoryview, pos: int, end: int) -> tuple[str, dict, int]:
    """The EVENT part at ``pos``: name, attrs and the offset after it. Raises ValueError if malformed."""
    if pos + EVENT_PART.size > end:
        raise ValueError("event part runs past the pseudo-header")
    name_len, _, attrs_len = EVENT_PART.unpack_from(buf, pos)
    start = pos + EVENT_PART.size
    stop = start + name_len + attrs_len
    if stop > end:
        raise ValueError("event name or attributes run past the pseudo-header")
    name = bytes(buf[start : start + name_len]).decode(errors="replace")
    attrs = json.loads(bytes(buf[start + name_len : stop])) if attrs_len else {}
    if not isinstance(attrs, dict):
        raise ValueError("event attributes are not a JSON object")
    return name, attrs, stop
