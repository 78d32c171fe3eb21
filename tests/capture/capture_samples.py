"""Capture records built from real message bytes (``dissectors.encode``), for the capture tests.

``sample_records()`` is a short conversation that uses every record kind, both channels, many
message layouts (fixed and variable), FDs of several kinds, state chunks and every event.
"""

from __future__ import annotations

from pathlib import Path

from dissectors.encode import encode
from vutrace.capture.model import CaptureRecord, EventName, FdAction, FdInfo, FdKind, RecordChannel, RecordKind
from vutrace.capture.pcapng import CaptureWriter

T0 = 1_764_000_000_000_000_000

EVENTFD = FdInfo(FdKind.EVENTFD, fd=31, dev=14, ino=2051, target="anon_inode:[eventfd]")
RAM = FdInfo(
    FdKind.MEMFD,
    fd=32,
    size=512 << 20,
    dev=1,
    ino=77,
    target="/memfd:pc.ram (deleted)",
    memfd_name="pc.ram",
    seals=0x8,
)
SOCKET = FdInfo(FdKind.SOCKET, fd=33, dev=8, ino=90210, target="socket:[90210]")
PIPE = FdInfo(FdKind.PIPE, FdAction.SUBSTITUTED, fd=34, dev=13, ino=555, target="pipe:[555]")
ODD = FdInfo(FdKind.OTHER, fd=35, target="anon_inode:[üñí\udcff]")

MESSAGES: list[tuple[str, str, bytes, tuple[FdInfo, ...]]] = [
    ("main", "frontend", encode("GET_FEATURES"), ()),
    ("main", "backend", encode("GET_FEATURES", reply=True, features=0x1_7000_0000 | 1 << 63), ()),
    ("main", "frontend", encode("GET_PROTOCOL_FEATURES"), ()),
    ("main", "backend", encode("GET_PROTOCOL_FEATURES", reply=True, protocol_features=0x8_7F3F), ()),
    ("main", "frontend", encode("SET_PROTOCOL_FEATURES", protocol_features=0x8_7F3F), ()),
    ("main", "frontend", encode("SET_BACKEND_REQ_FD", need_reply=True), (SOCKET,)),
    ("main", "backend", encode("SET_BACKEND_REQ_FD", reply=True, result=0), ()),
    ("main", "frontend", encode("SET_OWNER"), ()),
    ("main", "frontend", encode("SET_MEM_TABLE", regions=[(0, 512 << 20, 0x7F00_0000_0000, 0)]), (RAM,)),
    ("main", "frontend", encode("SET_VRING_NUM", vring=0, num=256), ()),
    ("main", "frontend", encode("SET_VRING_ADDR", vring=0, desc_addr=0x1000, used_addr=0x3000, avail_addr=0x2000), ()),
    ("main", "frontend", encode("SET_VRING_KICK", vring=0), (EVENTFD,)),
    ("main", "frontend", encode("SET_VRING_CALL", vring=1, nofd=True), ()),
    ("main", "frontend", encode("GET_CONFIG", config_offset=0, config_size=4, config_data=bytes(4)), ()),
    ("main", "backend", encode("GET_CONFIG", reply=True, config_offset=0, config_size=4, config_data=b"tag0"), ()),
    ("main", "frontend", encode("SET_VRING_ENABLE", need_reply=True, vring=0, num=1), ()),
    ("main", "backend", encode("SET_VRING_ENABLE", reply=True, result=0), ()),
    ("backend", "backend", encode("IOTLB_MSG", "backend", need_reply=True, iova=0x4000, perm=3, iotlb_type=1), ()),
    ("backend", "frontend", encode("IOTLB_MSG", "backend", reply=True, result=0), ()),
    ("backend", "backend", encode("VRING_HOST_NOTIFIER_MSG", "backend", vring=1, area_size=4096), (ODD,)),
    ("main", "frontend", encode("GET_VRING_BASE", vring=0), ()),
    ("main", "backend", encode("GET_VRING_BASE", reply=True, vring=0, num=77), ()),
    ("main", "frontend", encode("SET_DEVICE_STATE_FD", direction=0, phase=0), (PIPE,)),
    ("main", "backend", encode("SET_DEVICE_STATE_FD", reply=True, state_error=0, nofd=True), ()),
    ("main", "frontend", encode("CHECK_DEVICE_STATE"), ()),
    ("main", "backend", encode("CHECK_DEVICE_STATE", reply=True, result=0), ()),
    ("main", "frontend", encode(99, size=4, body=b"\x01\x02\x03\x04"), ()),
    ("main", "frontend", bytes.fromhex("0100000001"), ()),
]
"""(channel, sender, message bytes, FDs) in conversation order, including an unknown id and a cut header."""
LATE_FDS = {8: 1, 19: 1}
"""Position in MESSAGES -> FDs that came after the first byte (SET_MEM_TABLE, VRING_HOST_NOTIFIER_MSG)."""

STATE = b"\x01\x00\x02\x00" + bytes(range(256)) * 3


def sample_records(t0: int = T0, conn: int = 1) -> list[CaptureRecord]:
    """Every record kind: messages (above), state chunks and each proxy event, 1 µs apart."""
    records: list[CaptureRecord] = []

    def add(**fields: object) -> None:
        records.append(CaptureRecord(ts_ns=t0 + 1000 * len(records), conn=conn, **fields))  # type: ignore[arg-type]

    add(
        kind=RecordKind.EVENT,
        channel=RecordChannel.EVENT,
        sender="proxy",
        event=EventName.LISTEN,
        attrs={"path": "/run/vu.sock"},
    )
    add(kind=RecordKind.EVENT, channel=RecordChannel.EVENT, sender="proxy", event=EventName.ACCEPT, attrs={"pid": 42})
    add(kind=RecordKind.EVENT, channel=RecordChannel.EVENT, sender="proxy", event=EventName.CONNECT, attrs={})
    for index, (channel, sender, data, fds) in enumerate(MESSAGES):
        late = LATE_FDS.get(index, 0)
        add(kind=RecordKind.MESSAGE, channel=RecordChannel(channel), sender=sender, data=data, fds=fds, late_fds=late)
    add(kind=RecordKind.EVENT, channel=RecordChannel.EVENT, sender="proxy", event=EventName.BACKEND_CHANNEL_OPEN)
    add(kind=RecordKind.EVENT, channel=RecordChannel.EVENT, sender="proxy", event=EventName.STATE_OPEN, stream=1)
    for offset in range(0, len(STATE), 300):
        chunk = STATE[offset : offset + 300]
        add(
            kind=RecordKind.STATE_CHUNK,
            channel=RecordChannel.STATE,
            sender="backend",
            data=chunk,
            offset=offset,
            length=len(chunk),
            stream=1,
        )
    add(
        kind=RecordKind.EVENT,
        channel=RecordChannel.EVENT,
        sender="proxy",
        event=EventName.STATE_CLOSE,
        stream=1,
        attrs={"total": len(STATE)},
    )
    add(kind=RecordKind.EVENT, channel=RecordChannel.EVENT, sender="proxy", event=EventName.BACKEND_CHANNEL_CLOSE)
    add(
        kind=RecordKind.EVENT,
        channel=RecordChannel.EVENT,
        sender="proxy",
        event=EventName.ERROR,
        attrs={"error": "peer sent garbage"},
    )
    add(
        kind=RecordKind.EVENT,
        channel=RecordChannel.EVENT,
        sender="proxy",
        event=EventName.DISCONNECT,
        attrs={"reason": "eof", "bytes": [1, 2]},
    )
    add(
        kind=RecordKind.EVENT,
        channel=RecordChannel.EVENT,
        sender="proxy",
        event=EventName.SHUTDOWN,
        attrs={"nested": {"a": None, "b": 1.5}},
    )
    return records


def write_capture(path: Path, records: list[CaptureRecord], **options: object) -> Path:
    with CaptureWriter(path, **options) as writer:  # type: ignore[arg-type]
        for record in records:
            writer.write(record)
    return path
