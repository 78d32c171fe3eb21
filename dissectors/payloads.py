"""Payload layouts compiled from the spec table, and the rule that picks a message's layout.

Shared by the flat record decoder (``records``), the encoder (``encode``) and the
scapy layers (``layers``), so all three read a payload the same way: which
layout a message uses (request, or one of the reply alternatives chosen by
payload size), the precompiled ``struct.Struct`` of each fixed layout, and the
size rules of the variable ones.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

from dissectors.spec import (
    DEVICE_STATE_ERROR_MASK,
    DEVICE_STATE_NOFD_MASK,
    FIXED_LAYOUTS,
    MAX_FDS,
    MEM_REGION_FIELDS,
    MEM_REGION_SIZE,
    MEM_REGION_XEN_SIZE,
    SHMEM_MAX_REGIONS,
    VRING_IDX_MASK,
    VRING_NOFD_MASK,
    Field,
    Message,
    Payload,
)

MEM_TABLE_HEADER_SIZE = 8
"""num_regions u32 + padding u32 in front of the SET_MEM_TABLE regions."""
CONFIG_HEADER_SIZE = 12
"""offset, size, flags (u32 each) in front of the config space bytes."""
SHMEM_CONFIG_SIZE = 8 + SHMEM_MAX_REGIONS * 8
CRYPTO_MIN_SIZE = 16
"""op_code u64 at the start and session_id i64 at the end."""
XEN_EXTRA_SIZE = MEM_REGION_XEN_SIZE - MEM_REGION_SIZE
"""xen_flags u32 + domid u32 appended to a memory region with XEN_MMAP."""
XEN_FIELDS: tuple[Field, ...] = (
    Field("xen_flags", "I", "XEN_MMAP flags: 0x1 foreign, 0x2 grant, 0x100 map on demand"),
    Field("domid", "I", "Xen domain id"),
)
REGION_NAMES: tuple[str, ...] = tuple(f.name for f in MEM_REGION_FIELDS)
"""The 4 fields of one memory region, in the order of a ``regions`` tuple."""

U64_SPLITS: dict[Payload, tuple[str, int]] = {
    Payload.VRING_FD: ("vring", VRING_IDX_MASK),
    Payload.VRING_AREA: ("vring", VRING_IDX_MASK),
    Payload.DEVICE_STATE_RESULT: ("state_error", DEVICE_STATE_ERROR_MASK),
}
"""Kinds whose ``u64`` holds an 8-bit value (name, mask) and the no-FD flag (bit 8)."""
NOFD_MASK = VRING_NOFD_MASK
assert VRING_NOFD_MASK == DEVICE_STATE_NOFD_MASK


def is_padding(field: Field) -> bool:
    """Padding fields are kept by the scapy layers but left out of flat records."""
    return field.name.endswith("padding")


@dataclass(frozen=True)
class FixedLayout:
    """A fixed payload layout ready for unpacking: padding becomes struct pad bytes."""

    kind: Payload
    fields: tuple[Field, ...]
    names: tuple[str, ...]
    """Record names of the non-padding fields, in unpack order."""
    struct: struct.Struct
    """Unpacks exactly the non-padding fields."""

    @property
    def size(self) -> int:
        return self.struct.size


def _pad_format(field: Field) -> str:
    size = struct.calcsize("<" + field.fmt)
    return f"{size}x"


def _compile(kind: Payload, fields: tuple[Field, ...]) -> FixedLayout:
    fmt = "<" + "".join(_pad_format(f) if is_padding(f) else f.fmt for f in fields)
    names = tuple(f.name for f in fields if not is_padding(f))
    return FixedLayout(kind, fields, names, struct.Struct(fmt))


FIXED: dict[Payload, FixedLayout] = {kind: _compile(kind, fields) for kind, fields in FIXED_LAYOUTS.items()}
"""Every fixed layout of the spec table, compiled."""
MEM_REGION_XEN = _compile(Payload.MEM_REGION, FIXED_LAYOUTS[Payload.MEM_REGION] + XEN_FIELDS)
"""ADD_MEM_REG / REM_MEM_REG region with the two XEN_MMAP fields (48 bytes)."""
REGION = struct.Struct("<" + "".join(f.fmt for f in MEM_REGION_FIELDS))
REGION_XEN = struct.Struct(REGION.format + "".join(f.fmt for f in XEN_FIELDS))
MEM_TABLE_HEADER = struct.Struct("<I4x")
CONFIG_HEADER = struct.Struct("<III")
SHMEM_CONFIG = struct.Struct(f"<I4x{SHMEM_MAX_REGIONS}Q")
CRYPTO_OP_CODE = struct.Struct("<Q")
CRYPTO_SESSION_ID = struct.Struct("<q")
assert REGION.size == MEM_REGION_SIZE and REGION_XEN.size == MEM_REGION_XEN_SIZE
assert SHMEM_CONFIG.size == SHMEM_CONFIG_SIZE


class Choice(NamedTuple):
    """The layout picked for one payload."""

    kind: Payload
    xen: bool = False
    """Memory regions in the 40-byte XEN_MMAP form."""
    error: str | None = None
    """Set when no layout fits the payload size (the first alternative is used)."""


def alternatives(message: Message, is_reply: bool) -> tuple[Payload, ...]:
    """The layouts a message may carry in one direction, the usual one first."""
    return message.reply if is_reply else (message.request, *message.request_alt)


def mem_table_region_size(payload_len: int, num_regions: int) -> int | None:
    """32 or 40 (XEN_MMAP) if ``payload_len`` is 8 + num_regions regions, else None."""
    body = payload_len - MEM_TABLE_HEADER_SIZE
    if body == num_regions * MEM_REGION_SIZE:
        return MEM_REGION_SIZE
    if body == num_regions * MEM_REGION_XEN_SIZE:
        return MEM_REGION_XEN_SIZE
    return None


def mem_table_is_xen(payload: bytes) -> bool:
    """Whether a memory table payload has 40-byte (XEN_MMAP) regions, judged by num_regions and its size."""
    if len(payload) < MEM_TABLE_HEADER_SIZE:
        return False
    (num,) = MEM_TABLE_HEADER.unpack_from(payload)
    return num > 0 and mem_table_region_size(len(payload), num) == MEM_REGION_XEN_SIZE


def _fit(kind: Payload, payload_len: int, is_reply: bool) -> Choice | None:
    """``kind`` if a payload of this size can have that layout, else None.

    Variable layouts accept every size they could start with; their decoders report
    an inconsistent count or length themselves.
    """
    layout = FIXED.get(kind)
    if layout is not None:
        if payload_len == layout.size:
            return Choice(kind)
        if kind is Payload.MEM_REGION and payload_len == MEM_REGION_XEN.size:
            return Choice(kind, xen=True)
        return None
    if kind is Payload.MEM_TABLE:
        fits = payload_len == 0 or payload_len >= MEM_TABLE_HEADER_SIZE
    elif kind is Payload.CONFIG:
        fits = payload_len >= CONFIG_HEADER_SIZE or (is_reply and payload_len == 0)
    elif kind is Payload.SHMEM_CONFIG:
        fits = payload_len == SHMEM_CONFIG_SIZE
    elif kind is Payload.CRYPTO_SESSION:
        fits = payload_len >= CRYPTO_MIN_SIZE
    else:
        raise AssertionError(f"no size rule for payload kind {kind}")
    return Choice(kind) if fits else None


VARIABLE_MIN_SIZE: dict[Payload, int] = {
    Payload.MEM_TABLE: MEM_TABLE_HEADER_SIZE,
    Payload.CONFIG: CONFIG_HEADER_SIZE,
    Payload.SHMEM_CONFIG: SHMEM_CONFIG_SIZE,
    Payload.CRYPTO_SESSION: CRYPTO_MIN_SIZE,
}
"""Fewest payload bytes a variable layout needs before its fields can be read."""


def decodable(choice: Choice, payload_len: int) -> bool:
    """Whether a payload holds enough bytes to read the fields of the layout chosen for it."""
    if choice.kind in FIXED:
        return choice.xen or payload_len >= FIXED[choice.kind].size
    return payload_len >= VARIABLE_MIN_SIZE[choice.kind]


def expected_size(kind: Payload) -> str:
    """The size rule of a layout in words, for error messages."""
    layout = FIXED.get(kind)
    if layout is not None:
        if kind is Payload.MEM_REGION:
            return f"{layout.size} (or {MEM_REGION_XEN.size} with XEN_MMAP)"
        return str(layout.size)
    return {
        Payload.MEM_TABLE: f"8+32n (or 8+40n with XEN_MMAP), n <= {MAX_FDS}",
        Payload.CONFIG: "12+size",
        Payload.SHMEM_CONFIG: str(SHMEM_CONFIG_SIZE),
        Payload.CRYPTO_SESSION: f">= {CRYPTO_MIN_SIZE}",
    }[kind]


def choose(message: Message, is_reply: bool, payload_len: int) -> Choice:
    """The layout of a payload: the first alternative that fits its size, else the first with an error."""
    options = alternatives(message, is_reply)
    for kind in options:
        fit = _fit(kind, payload_len, is_reply)
        if fit is not None:
            return fit
    expected = " or ".join(expected_size(kind) for kind in options)
    direction = "reply" if is_reply else "request"
    return Choice(options[0], error=f"payload size {payload_len}, expected {expected} for {message.name} {direction}")


class PackedVringBase(NamedTuple):
    """GET/SET_VRING_BASE ``num`` read as packed-ring indices (VIRTIO_F_RING_PACKED)."""

    avail_idx: int
    avail_wrap: bool
    used_idx: int
    used_wrap: bool


def packed_vring_base(num: int) -> PackedVringBase:
    """Split a packed-ring vring base: bits 0-14 avail idx, 15 avail wrap, 16-30 used idx, 31 used wrap."""
    return PackedVringBase(num & 0x7FFF, bool(num >> 15 & 1), num >> 16 & 0x7FFF, bool(num >> 31 & 1))


def split_vring_base(num: int) -> int:
    """A split-ring vring base: the next available index, bits 0-15 (bits 16-31 are reserved)."""
    return num & 0xFFFF
