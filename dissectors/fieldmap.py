"""Where each field of a message lies in its bytes: ``(name, start, end)`` spans, for hex highlighting.

``field_spans(data, channel)`` walks the scapy layers of ``dissectors.layers`` field by field and
measures how many bytes each field takes, so the spans follow the same layouts as every other
dissection (the spec table). Names are the flat-record names (``request``, ``flags``, ``size``,
``features``, ``vring``, ``num_regions``...); list elements get an index and their own fields
(``regions[1]``, ``regions[1].guest_addr``). Bit fields (``vring`` and ``nofd`` of a u64) cover the
bytes that hold their bits, and ``u64`` the whole word they are cut from. Bytes no layer decodes
are ``payload`` (undecoded payload), ``extra`` (after the declared size) or ``undecoded`` (no
complete header).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scapy.fields import FieldListField, PacketListField, _BitField
from scapy.packet import Packet, Raw

from dissectors.layers import VhostUserHeader, VhostUserPayload, dissect
from dissectors.payloads import U64_SPLITS
from dissectors.spec import HEADER_SIZE


@dataclass(frozen=True)
class FieldSpan:
    """The bytes ``data[start:end]`` hold the field ``name``."""

    name: str
    start: int
    end: int


def field_spans(data: bytes | bytearray | memoryview, channel: str = "main") -> list[FieldSpan]:
    """The spans of the header and payload fields of one message, in byte order. Never raises."""
    raw = bytes(data)
    if not raw:
        return []
    packet = dissect(raw, channel)
    if not isinstance(packet, VhostUserHeader):
        return [FieldSpan("undecoded", 0, len(raw))]
    try:
        spans = _layer_spans(packet, raw[:HEADER_SIZE], 0, "")
        body = packet.payload
        end = HEADER_SIZE
        if isinstance(body, VhostUserPayload):
            size = len(raw) - HEADER_SIZE if packet.size is None else min(packet.size, len(raw) - HEADER_SIZE)
            payload_spans = _layer_spans(body, raw[HEADER_SIZE : HEADER_SIZE + size], HEADER_SIZE, "")
            spans += payload_spans
            end = max([end] + [s.end for s in payload_spans])
        elif isinstance(body, Raw) and body.load:
            spans.append(FieldSpan("payload", HEADER_SIZE, HEADER_SIZE + len(body.load)))
            end = HEADER_SIZE + len(body.load)
    except Exception:  # a layer scapy built but cannot measure: show the bytes as one undecoded block
        return [FieldSpan("undecoded", 0, len(raw))]
    if end < len(raw):
        spans.append(FieldSpan("extra", end, len(raw)))
    return spans


def _layer_spans(layer: Packet, data: bytes, base: int, prefix: str) -> list[FieldSpan]:
    """Spans of the fields of one dissected layer whose bytes are ``data`` (at offset ``base``)."""
    spans: list[FieldSpan] = []
    rest: Any = data
    bits: list[tuple[Any, int]] = []
    """The bit fields of the group being read, with their bit offset from the group's first bit."""
    group_start = 0
    for field in layer.fields_desc:
        consumed = len(data) - _remaining(rest)
        if isinstance(field, _BitField):
            if not bits:
                group_start = consumed
            offset = sum(f.size for f, _ in bits)
            bits.append((field, offset))
            rest, _ = field.getfield(layer, rest)
            if _group_done(bits):
                spans += _bit_spans(bits, base + group_start, prefix)
                if isinstance(layer, VhostUserPayload) and layer.kind in U64_SPLITS:
                    spans.append(FieldSpan(prefix + "u64", base + group_start, base + group_start + 8))
                bits = []
            continue
        rest, value = field.getfield(layer, rest)
        end = len(data) - _remaining(rest)
        name = prefix + field.name
        spans.append(FieldSpan(name, base + consumed, base + end))
        if isinstance(field, PacketListField):
            spans += _element_spans(value, data[consumed:end], base + consumed, name)
        elif isinstance(field, FieldListField) and value:
            width = (end - consumed) // len(value)
            spans += [
                FieldSpan(f"{name}[{i}]", base + consumed + i * width, base + consumed + (i + 1) * width)
                for i in range(len(value))
            ]
    return spans


def _element_spans(elements: list[Packet], data: bytes, base: int, name: str) -> list[FieldSpan]:
    spans: list[FieldSpan] = []
    offset = 0
    for index, element in enumerate(elements):
        size = len(bytes(element))
        label = f"{name}[{index}]"
        spans.append(FieldSpan(label, base + offset, base + offset + size))
        spans += _layer_spans(element, data[offset : offset + size], base + offset, label + ".")
        offset += size
    return spans


def _bit_spans(group: list[tuple[Any, int]], start: int, prefix: str) -> list[FieldSpan]:
    """Byte spans of a group of bit fields; a little-endian group counts its first field's bits from the top."""
    total = sum(f.size for f, _ in group)
    little = any(f.rev for f, _ in group)
    spans = []
    for field, offset in group:
        if little:
            low, high = total - offset - field.size, total - offset - 1
        else:
            low, high = offset, offset + field.size - 1
        spans.append(FieldSpan(prefix + field.name, start + low // 8, start + high // 8 + 1))
    return spans


def _group_done(group: list[tuple[Any, int]]) -> bool:
    """A group ends on a byte boundary; a little-endian one only after its declared size (``tot_size``)."""
    first, _ = group[0]
    total = sum(f.size for f, _ in group)
    if first.rev:
        return total == first.tot_size * 8
    return total % 8 == 0


def _remaining(rest: Any) -> int:
    """Bytes left to read (a bit-field read in progress is a (bytes, bits done) tuple)."""
    if isinstance(rest, tuple):
        return len(rest[0]) - rest[1] // 8
    return len(rest)
