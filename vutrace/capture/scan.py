"""Decode the vutrace records of a pcapng buffer column by column (numpy), without a Python object per field.

The block walker finds the packets; this module walks their exported-PDU tags and reads the
fixed pseudo-header fields of all packets at once. The result, a ``RecordBatch``, is what both
``read_records`` (one ``CaptureRecord`` per row) and the DataFrame loader build on, so there is
one reader of the format.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vutrace.capture import record_format as rf
from vutrace.capture.blocks import Packets, WalkState
from vutrace.capture.model import CaptureRecord, FdInfo, RecordKind

MAX_TAGS = 64
"""Most exported-PDU tags looked at before the end tag; more means the packet is not a vutrace record."""

_NAME = rf.DISSECTOR_NAME.encode() + b"\0" * (-len(rf.DISSECTOR_NAME) % 4)
_NAME_U64 = int.from_bytes(_NAME, "little")
"""The padded dissector name tag value (8 bytes), compared as one integer."""
KNOWN_KINDS = np.array([int(k) for k in RecordKind], dtype=np.uint8)


@dataclass
class RecordBatch:
    """The records of one buffer, as columns. ``buf`` holds the bytes the offsets point into."""

    buf: bytes
    ts_ns: np.ndarray
    kind: np.ndarray
    channel: np.ndarray
    """Channel codes (record_format.CHANNEL_CODES)."""
    sender: np.ndarray
    """Sender codes (record_format.SENDER_CODES)."""
    conn: np.ndarray
    stream: np.ndarray
    flags: np.ndarray
    nfds: np.ndarray
    late_fds: np.ndarray
    """For messages: how many of the FDs came after the first byte (0 for other records and older minors)."""
    header: np.ndarray
    """Offset of each pseudo-header in ``buf``."""
    data_start: np.ndarray
    data_end: np.ndarray
    state_offset: np.ndarray
    state_length: np.ndarray
    problems: list[str] = field(default_factory=list)
    """Packets skipped (not vutrace records, unknown version or kind, malformed), as sentences."""

    def __len__(self) -> int:
        return len(self.ts_ns)

    def data(self, i: int) -> bytes:
        return self.buf[self.data_start[i] : self.data_end[i]]

    def fd_part(self, i: int) -> tuple[int, int]:
        """Where the FD entries of row ``i`` start (for messages and state chunks) and the header end."""
        start = int(self.header[i]) + rf.COMMON_SIZE
        if self.kind[i] == RecordKind.STATE_CHUNK:
            start += rf.STATE_PART.size
        return start, int(self.data_start[i])

    def fds(self, i: int) -> tuple[FdInfo, ...]:
        if not self.nfds[i]:
            return ()
        start, end = self.fd_part(i)
        if self.kind[i] == RecordKind.EVENT:
            start = rf.decode_event(self.buf, start, end)[2]
        return rf.decode_fds(self.buf, start, end, int(self.nfds[i]))[0]

    def event(self, i: int) -> tuple[str, dict]:
        name, attrs, _ = rf.decode_event(self.buf, int(self.header[i]) + rf.COMMON_SIZE, int(self.data_start[i]))
        return name, attrs

    def sha256(self, i: int) -> bytes | None:
        if not self.flags[i] & rf.FLAG_SHA256:
            return None
        start = int(self.header[i]) + rf.COMMON_SIZE + 16
        return self.buf[start : start + 32]

    def record(self, i: int) -> CaptureRecord:
        kind = RecordKind(int(self.kind[i]))
        common = {
            "kind": kind,
            "ts_ns": int(self.ts_ns[i]),
            "conn": int(self.conn[i]),
            "channel": rf.CHANNEL_NAMES[int(self.channel[i])],
            "sender": rf.SENDER_NAMES[int(self.sender[i])],
            "data": self.data(i),
            "fds": self.fds(i),
            "stream": int(self.stream[i]),
            "late_fds": int(self.late_fds[i]),
        }
        if kind is RecordKind.STATE_CHUNK:
            common.update(offset=int(self.state_offset[i]), length=int(self.state_length[i]), sha256=self.sha256(i))
        elif kind is RecordKind.EVENT:
            common["event"], common["attrs"] = self.event(i)
        return CaptureRecord(**common)


class _Bytes:
    """Little-endian integers at arbitrary byte offsets of a buffer, many offsets at once."""

    def __init__(self, buf: bytes) -> None:
        n = len(buf)
        self.u8 = np.frombuffer(buf, dtype=np.uint8)
        self.u16 = np.ndarray((max(n - 1, 0),), dtype="<u2", buffer=buf, strides=(1,)) if n >= 2 else None
        self.u32 = np.ndarray((max(n - 3, 0),), dtype="<u4", buffer=buf, strides=(1,)) if n >= 4 else None
        self.u64 = np.ndarray((max(n - 7, 0),), dtype="<u8", buffer=buf, strides=(1,)) if n >= 8 else None
        self.be16 = np.ndarray((max(n - 1, 0),), dtype=">u2", buffer=buf, strides=(1,)) if n >= 2 else None


def scan(buf: bytes, packets: Packets, state: WalkState) -> RecordBatch:
    """Decode the pseudo-headers of ``packets`` (found in ``buf`` by the block walker)."""
    problems: list[str] = []
    start = packets.starts
    end = start + packets.lengths
    ts = _timestamps(packets, state)
    at = _Bytes(buf)
    pos, ok = _skip_tags(at, start, end)
    fits = ok & (pos + rf.COMMON_SIZE <= end)
    _note(problems, ~fits, "packets that are not vutrace records (no pseudo-header after the exported-PDU tags)")
    pos, end, ts = pos[fits], end[fits], ts[fits]
    magic = at.u32[pos] if at.u32 is not None else np.zeros(0, np.uint32)
    good = magic == int.from_bytes(rf.MAGIC, "little")
    _note(problems, ~good, "packets without the vutrace magic (not vutrace records)")
    pos, end, ts = pos[good], end[good], ts[good]
    major = at.u8[pos + rf.OFF_MAJOR]
    known = major == rf.VERSION_MAJOR
    _note(problems, ~known, f"records of a record version other than {rf.VERSION_MAJOR}.x")
    pos, end, ts = pos[known], end[known], ts[known]
    kind = at.u8[pos + rf.OFF_KIND]
    known = np.isin(kind, KNOWN_KINDS)
    _note(problems, ~known, "records of an unknown kind")
    pos, end, ts, kind = pos[known], end[known], ts[known], kind[known]
    header_len = at.u32[pos + rf.OFF_HEADER_LEN].astype(np.int64) if len(pos) else np.zeros(0, np.int64)
    data_len = at.u32[pos + rf.OFF_DATA_LEN].astype(np.int64) if len(pos) else np.zeros(0, np.int64)
    data_start = pos + header_len
    data_end = data_start + data_len
    minimum = np.where(kind == RecordKind.STATE_CHUNK, rf.COMMON_SIZE + rf.STATE_PART.size, rf.COMMON_SIZE)
    minimum = np.where(kind == RecordKind.EVENT, rf.COMMON_SIZE + rf.EVENT_PART.size, minimum)
    channel = at.u8[pos + rf.OFF_CHANNEL]
    sender = at.u8[pos + rf.OFF_SENDER]
    nfds = at.u8[pos + rf.OFF_NFDS]
    carries_late = (kind == RecordKind.MESSAGE) & (at.u8[pos + rf.OFF_MINOR] >= rf.LATE_FDS_MINOR)
    late_fds = np.where(carries_late, at.u8[pos + rf.OFF_LATE_FDS], 0).astype(np.uint8)
    sound = (
        (header_len >= minimum)
        & (data_end <= end)
        & np.isin(channel, list(rf.CHANNEL_NAMES))
        & np.isin(sender, list(rf.SENDER_NAMES))
        & (late_fds <= nfds)
    )
    _note(problems, ~sound, "malformed records (lengths or codes out of range)")
    keep = np.flatnonzero(sound)
    pos = pos[keep]
    kind = kind[keep]
    is_state = kind == RecordKind.STATE_CHUNK
    state_offset = np.zeros(len(pos), np.uint64)
    state_length = np.zeros(len(pos), np.uint64)
    if is_state.any():
        state_offset[is_state] = at.u64[pos[is_state] + rf.COMMON_SIZE]
        state_length[is_state] = at.u64[pos[is_state] + rf.COMMON_SIZE + 8]
    return RecordBatch(
        buf=buf,
        ts_ns=ts[keep],
        kind=kind,
        channel=channel[keep],
        sender=sender[keep],
        conn=at.u32[pos + rf.OFF_CONN].astype(np.int64),
        stream=at.u32[pos + rf.OFF_STREAM].astype(np.int64),
        flags=at.u16[pos + rf.OFF_FLAGS] if len(pos) else np.zeros(0, np.uint16),
        nfds=nfds[keep],
        late_fds=late_fds[keep],
        header=pos,
        data_start=data_start[keep],
        data_end=data_end[keep],
        state_offset=state_offset,
        state_length=state_length,
        problems=problems,
    )


def _skip_tags(at: _Bytes, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walk the exported-PDU tags of every packet; returns where each pseudo-header starts and which are sane."""
    pos = start.copy()
    ok = np.ones(len(pos), dtype=bool)
    active = np.ones(len(pos), dtype=bool)
    dissector = np.zeros(len(pos), dtype=bool)
    for _ in range(MAX_TAGS):
        idx = np.flatnonzero(active)
        if not len(idx):
            break
        here = pos[idx]
        inside = here + 4 <= end[idx]
        ok[idx[~inside]] = False
        active[idx[~inside]] = False
        idx, here = idx[inside], here[inside]
        tag = at.be16[here]
        length = at.be16[here + 2].astype(np.int64)
        is_name = np.flatnonzero((tag == rf.TAG_DISSECTOR_NAME) & (length == len(_NAME)) & (here + 12 <= len(at.u8)))
        if len(is_name):
            dissector[idx[is_name]] = at.u64[here[is_name] + 4] == _NAME_U64
        finished = tag == rf.TAG_END
        pos[idx] = here + 4 + np.where(finished, 0, length)
        active[idx[finished]] = False
    ok &= ~active & dissector
    return pos, ok


def _timestamps(packets: Packets, state: WalkState) -> np.ndarray:
    """Nanoseconds since the epoch, from each packet's raw timestamp and its interface's resolution."""
    ts = packets.ts_raw.astype(np.int64)
    for index in np.unique(packets.interfaces).tolist():
        iface = state.interfaces[index]
        if iface.ts_mul != 1 or iface.ts_div != 1:
            sel = packets.interfaces == index
            ts[sel] = [v * iface.ts_mul // iface.ts_div for v in packets.ts_raw[sel].tolist()]
    return ts


def _note(problems: list[str], mask: np.ndarray, what: str) -> None:
    count = int(mask.sum())
    if count:
        problems.append(f"skipped {count} {what}")
