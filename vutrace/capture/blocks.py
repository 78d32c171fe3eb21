"""pcapng blocks: build the ones vutrace writes, and walk a buffer of them.

vutrace writes little-endian sections with a Section Header Block, Interface
Description Blocks (link type 252, nanosecond timestamps) and Enhanced Packet
Blocks. The walker reads any byte order, finds every EPB, and tells a cut-off
last block (a file still being written, or a writer that was killed) apart
from a file that is not pcapng at all.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

SHB_TYPE = 0x0A0D0D0A
IDB_TYPE = 0x00000001
EPB_TYPE = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
LINKTYPE_WIRESHARK_UPPER_PDU = 252

OPT_END = 0
OPT_COMMENT = 1
SHB_HARDWARE = 2
SHB_OS = 3
SHB_USERAPPL = 4
IF_NAME = 2
IF_DESCRIPTION = 3
IF_TSRESOL = 9
EPB_FLAGS = 2

MIN_BLOCK = 12
"""Type, length and trailing length: the smallest block."""
SHB_FIXED = 24
"""Type, length, byte-order magic, version, section length."""

_CLASSIC_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1",
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",
    b"\xa1\xb2\x3c\x4d",
}


class CaptureError(Exception):
    """A capture file cannot be read or written."""


class CaptureWriteError(CaptureError, OSError):
    """A capture file cannot be created (exists and is not a regular file, no permission, ...)."""


class CaptureFormatError(CaptureError):
    """The file is not a vutrace capture (not pcapng, foreign link type, corrupt block); one-line message."""


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(block_type: int, body: bytes) -> bytes:
    total = len(body) + 12
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def section_header(userappl: str, os_name: str = "", hardware: str = "", comment: str = "") -> bytes:
    options = b"".join(
        _option(code, text.encode())
        for code, text in (
            (OPT_COMMENT, comment),
            (SHB_HARDWARE, hardware),
            (SHB_OS, os_name),
            (SHB_USERAPPL, userappl),
        )
        if text
    )
    body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + options + _option(OPT_END, b"")
    return _block(SHB_TYPE, body)


def interface_description(name: str, description: str = "") -> bytes:
    """An IDB for link type 252 with if_tsresol 9 (timestamps in nanoseconds) and no snap length."""
    options = _option(IF_NAME, name.encode())
    if description:
        options += _option(IF_DESCRIPTION, description.encode())
    options += _option(IF_TSRESOL, bytes([9])) + _option(OPT_END, b"")
    return _block(IDB_TYPE, struct.pack("<HHI", LINKTYPE_WIRESHARK_UPPER_PDU, 0, 0) + options)


_EPB_HEAD = struct.Struct("<IIIIIII")
_EPB_FLAGS_OPTION = struct.Struct("<HHIHH")


def enhanced_packet(interface: int, ts_ns: int, packet: bytes, direction: int = 0) -> bytes:
    """An EPB; ``direction`` (1 inbound, 2 outbound) goes into epb_flags when set."""
    pad = -len(packet) % 4
    options = _EPB_FLAGS_OPTION.pack(EPB_FLAGS, 4, direction, OPT_END, 0) if direction else b""
    total = 32 + len(packet) + pad + len(options)
    head = _EPB_HEAD.pack(
        EPB_TYPE, total, interface, ts_ns >> 32 & 0xFFFFFFFF, ts_ns & 0xFFFFFFFF, len(packet), len(packet)
    )
    return b"".join((head, packet, b"\0" * pad, options, struct.pack("<I", total)))


@dataclass
class Interface:
    link_type: int
    ts_mul: int = 1
    """Nanoseconds per timestamp unit (when the unit is a whole number of nanoseconds)."""
    ts_div: int = 1
    """Timestamp units per nanosecond divisor (for resolutions finer than 1 ns, or binary ones)."""


@dataclass
class WalkState:
    """What the walker knows between calls: byte order of the current section and its interfaces."""

    order: str = ""
    interfaces: list[Interface] = field(default_factory=list)
    base: int = 0
    """Index in ``interfaces`` of the current section's interface 0."""
    offset: int = 0
    """File offset of the buffer's first byte (for error messages)."""


@dataclass
class Packets:
    """Where the EPBs of a buffer are: packet data offset, captured length, raw timestamp, interface index."""

    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ts_raw: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    interfaces: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.starts)


def check_file_start(head: bytes) -> None:
    """Raise CaptureFormatError unless ``head`` (the first bytes of a file) can start a pcapng file."""
    if not head:
        raise CaptureFormatError("empty file, not a pcapng capture")
    if head[:4] in _CLASSIC_PCAP_MAGICS:
        raise CaptureFormatError("classic pcap (libpcap) file, not pcapng; vutrace captures are pcapng")
    if head[:4] != struct.pack("<I", SHB_TYPE)[: len(head[:4])]:
        raise CaptureFormatError(f"not a pcapng file (starts with {head[:8].hex(' ')})")


def walk(buf: bytes | bytearray | memoryview, state: WalkState, pos: int = 0) -> tuple[Packets, int]:
    """Find the EPBs of ``buf`` from ``pos``; returns them and the offset of the first incomplete block.

    The returned offset equals ``len(buf)`` when the buffer ends on a block boundary; anything
    after it is the start of a block that is not complete yet. Raises CaptureFormatError for a
    file that is not pcapng, an interface with a foreign link type, or a corrupt block.
    """
    end = len(buf)
    sections: list[Packets] = []
    epbs: list[int] = []
    head = struct.Struct(state.order + "II").unpack_from if state.order else None
    while pos < end:
        if head is None:
            check_file_start(bytes(buf[pos : pos + 4]))
            if pos + SHB_FIXED > end:
                break
            after = _section(buf, pos, end, state)
            if after is None:
                break
            pos = after
            head = struct.Struct(state.order + "II").unpack_from
            continue
        pos = _run_of_packets(buf, pos, head, epbs)
        if pos + MIN_BLOCK > end:
            if pos > end:
                pos = epbs.pop()
            break
        block_type, total = head(buf, pos)
        after = pos + total
        if block_type == SHB_TYPE:
            sections.append(_packets(buf, epbs, state))
            epbs = []
            state.order = ""
            head = None
            continue
        if total < MIN_BLOCK or total & 3 or (block_type == EPB_TYPE and total < 32):
            raise CaptureFormatError(f"corrupt pcapng block at offset {state.offset + pos} (length {total})")
        if after > end:
            break
        if struct.unpack_from(state.order + "I", buf, after - 4)[0] != total:
            raise CaptureFormatError(f"corrupt pcapng block at offset {state.offset + pos} (trailing length differs)")
        if block_type == IDB_TYPE:
            state.interfaces.append(_interface(buf, pos, total, state))
        pos = after
    if state.order:
        sections.append(_packets(buf, epbs, state))
    return _concat(sections), pos


def _run_of_packets(buf: bytes | bytearray | memoryview, pos: int, head: Callable, epbs: list[int]) -> int:
    """Note the EPBs that follow each other from ``pos`` (the hot loop: type and length only, the rest
    is checked for all of them at once in ``_packets``); returns where the run stops. That may be past
    the end of ``buf`` when the last EPB is incomplete."""
    limit = len(buf) - MIN_BLOCK
    append = epbs.append
    while pos <= limit:
        block_type, total = head(buf, pos)
        if block_type != EPB_TYPE or total < 32:
            break
        append(pos)
        pos += total
    return pos


def _packets(buf: bytes | bytearray | memoryview, epbs: list[int], state: WalkState) -> Packets:
    """Read the fixed EPB fields of one section's packets at once, and check them."""
    if not epbs:
        return Packets()
    view = np.frombuffer(buf, dtype=np.uint8)
    u32 = np.ndarray((len(view) - 3,), dtype=state.order + "u4", buffer=view, strides=(1,))
    pos = np.asarray(epbs, dtype=np.int64)
    total = u32[pos + 4].astype(np.int64)
    caplen = u32[pos + 20].astype(np.int64)
    iface = u32[pos + 8].astype(np.int64)
    bad = (total & 3 != 0) | (caplen > total - 32) | (iface >= len(state.interfaces) - state.base)
    bad |= u32[np.minimum(pos + total - 4, len(u32) - 1)] != total
    if bad.any():
        first = int(pos[np.argmax(bad)])
        raise CaptureFormatError(f"corrupt packet block at offset {state.offset + first}")
    raw = u32[pos + 12].astype(np.uint64) << np.uint64(32) | u32[pos + 16].astype(np.uint64)
    return Packets(starts=pos + 28, lengths=caplen, ts_raw=raw, interfaces=iface + state.base)


def _concat(sections: list[Packets]) -> Packets:
    sections = [p for p in sections if len(p)]
    if len(sections) <= 1:
        return sections[0] if sections else Packets()
    return Packets(
        *(
            np.concatenate([getattr(p, name) for p in sections])
            for name in ("starts", "lengths", "ts_raw", "interfaces")
        )
    )


def _section(buf: bytes | bytearray | memoryview, pos: int, end: int, state: WalkState) -> int | None:
    """Read an SHB at ``pos``; returns the offset after it, or None if it is not complete yet."""
    magic = bytes(buf[pos + 8 : pos + 12])
    if magic == struct.pack("<I", BYTE_ORDER_MAGIC):
        order = "<"
    elif magic == struct.pack(">I", BYTE_ORDER_MAGIC):
        order = ">"
    else:
        raise CaptureFormatError(f"not a pcapng file (bad byte-order magic at offset {state.offset + pos})")
    (total,) = struct.unpack_from(order + "I", buf, pos + 4)
    major = struct.unpack_from(order + "H", buf, pos + 12)[0]
    if total < 28 or total & 3:
        raise CaptureFormatError(f"corrupt section header at offset {state.offset + pos}")
    if major != 1:
        raise CaptureFormatError(f"unsupported pcapng version {major} at offset {state.offset + pos}")
    if pos + total > end:
        return None
    state.order = order
    state.base = len(state.interfaces)
    return pos + total


def _interface(buf: bytes | bytearray | memoryview, pos: int, total: int, state: WalkState) -> Interface:
    (link_type,) = struct.unpack_from(state.order + "H", buf, pos + 8)
    if link_type != LINKTYPE_WIRESHARK_UPPER_PDU:
        raise CaptureFormatError(
            f"interface with link type {link_type}; vutrace captures use link type "
            f"{LINKTYPE_WIRESHARK_UPPER_PDU} (Wireshark exported PDU)"
        )
    interface = Interface(link_type, ts_mul=1000)
    opt = pos + 16
    stop = pos + total - 4
    while opt + 4 <= stop:
        code, length = struct.unpack_from(state.order + "HH", buf, opt)
        if code == OPT_END:
            break
        if code == IF_TSRESOL and length >= 1:
            interface.ts_mul, interface.ts_div = _resolution(buf[opt + 4])
        opt += 4 + length + (-length % 4)
    return interface


def _resolution(value: int) -> tuple[int, int]:
    """(multiplier, divisor) turning timestamp units into nanoseconds for an if_tsresol byte."""
    if value & 0x80:
        return 10**9, 2 ** (value & 0x7F)
    if value <= 9:
        return 10 ** (9 - value), 1
    return 1, 10 ** (value - 9)
