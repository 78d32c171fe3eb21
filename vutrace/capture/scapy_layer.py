"""scapy support: importing this module makes ``rdpcap`` dissect vutrace captures.

    import vutrace.capture.scapy_layer
    from scapy.utils import rdpcap
    packets = rdpcap("capture.pcapng")      # each packet: VutraceRecord / VhostUser... layers
    packets[3].show()

``VutraceRecord`` is registered on link type 252 (Wireshark exported PDU). It holds the
exported-PDU tags and the vutrace pseudo-header; a message's bytes are handed to
``dissectors.layers.dissect`` (the vhost-user scapy layers), other records' bytes stay ``Raw``.
"""

from __future__ import annotations

from scapy.config import conf
from scapy.fields import (
    ByteEnumField,
    ByteField,
    ConditionalField,
    FieldLenField,
    LEIntField,
    LELongField,
    LEShortField,
    LESignedIntField,
    LEThreeBytesField,
    PacketListField,
    ShortEnumField,
    StrFixedLenField,
    StrLenField,
    XLEShortField,
    XStrFixedLenField,
)
from scapy.packet import Packet, Padding, Raw

from vutrace.capture import record_format as rf
from vutrace.capture.blocks import LINKTYPE_WIRESHARK_UPPER_PDU
from vutrace.capture.model import RecordKind

TAG_NAMES = {
    rf.TAG_END: "end",
    rf.TAG_DISSECTOR_NAME: "dissector_name",
    rf.TAG_COL_PROT_TEXT: "col_prot_text",
    rf.TAG_COL_INFO_TEXT: "col_info_text",
}
KIND_NAMES = {int(kind): kind.name for kind in RecordKind}
CHANNEL_NAMES = {code: str(channel) for code, channel in rf.CHANNEL_NAMES.items()}
SENDER_NAMES = dict(rf.SENDER_NAMES)
FD_KIND_NAMES = {code: str(kind) for code, kind in rf.FD_KIND_NAMES.items()}
FD_ACTION_NAMES = {code: str(action) for code, action in rf.FD_ACTION_NAMES.items()}


class ExportedPduTag(Packet):
    """One big-endian exported-PDU tag (type, length, value padded to 4 bytes)."""

    name = "exported PDU tag"
    fields_desc = [  # noqa: RUF012 - scapy reads the class attribute
        ShortEnumField("tag", 0, TAG_NAMES),
        FieldLenField("tag_len", None, length_of="value", fmt="!H"),
        StrLenField("value", b"", length_from=lambda p: p.tag_len),
    ]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class FdEntry(Packet):
    """One FD that travelled with a message, as the pseudo-header describes it."""

    name = "vutrace FD"
    fields_desc = [  # noqa: RUF012 - scapy reads the class attribute
        LEShortField("entry_len", None),
        ByteEnumField("fd_kind", 0, FD_KIND_NAMES),
        ByteEnumField("action", 1, FD_ACTION_NAMES),
        ByteField("present", 0),
        ByteField("fd_reserved1", 0),
        LEShortField("target_len", 0),
        LEShortField("memfd_name_len", 0),
        LEShortField("fd_reserved2", 0),
        LESignedIntField("fd", -1),
        LELongField("fd_size", 0),
        LELongField("dev", 0),
        LELongField("ino", 0),
        LEIntField("seals", 0),
        LEIntField("fd_reserved3", 0),
        StrLenField("target", b"", length_from=lambda p: p.target_len),
        StrLenField("memfd_name", b"", length_from=lambda p: p.memfd_name_len),
        StrLenField(
            "fd_extension",
            b"",
            length_from=lambda p: max(p.entry_len - rf.FD_ENTRY.size - p.target_len - p.memfd_name_len, 0),
        ),
    ]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


def _tags_next(packet: Packet, done: list[Packet], current: Packet | None, remain: bytes) -> type[Packet] | None:
    """The tag list ends after the end tag (``current`` is the tag just read)."""
    if current is not None and current.tag == rf.TAG_END:
        return None
    return ExportedPduTag if len(remain) >= 4 else None


def _is(kind: RecordKind):
    return lambda p: p.kind == kind


def _known_header(packet: Packet) -> int:
    size = rf.COMMON_SIZE + sum(len(fd) for fd in packet.fd_entries)
    if packet.kind == RecordKind.STATE_CHUNK:
        size += rf.STATE_PART.size
    elif packet.kind == RecordKind.EVENT:
        size += rf.EVENT_PART.size + packet.event_name_len + packet.attrs_len
    return size


class VutraceRecord(Packet):
    """A packet of a vutrace capture: exported-PDU tags, the vutrace pseudo-header, then the record bytes."""

    name = "vutrace record"
    fields_desc = [  # noqa: RUF012 - scapy reads the class attribute
        PacketListField("tags", [], next_cls_cb=_tags_next),
        StrFixedLenField("magic", rf.MAGIC, 4),
        ByteField("major", rf.VERSION_MAJOR),
        ByteField("minor", rf.VERSION_MINOR),
        ByteEnumField("kind", 1, KIND_NAMES),
        ByteEnumField("channel", 1, CHANNEL_NAMES),
        LEIntField("header_len", rf.COMMON_SIZE),
        ByteEnumField("sender", 1, SENDER_NAMES),
        ByteField("nfds", 0),
        XLEShortField("record_flags", 0),
        LEIntField("conn", 0),
        LEIntField("stream", 0),
        LEIntField("data_len", 0),
        ByteField("late_fds", 0),
        LEThreeBytesField("reserved", 0),
        ConditionalField(LELongField("state_offset", 0), _is(RecordKind.STATE_CHUNK)),
        ConditionalField(LELongField("state_length", 0), _is(RecordKind.STATE_CHUNK)),
        ConditionalField(XStrFixedLenField("sha256", b"", 32), _is(RecordKind.STATE_CHUNK)),
        ConditionalField(LEShortField("event_name_len", 0), _is(RecordKind.EVENT)),
        ConditionalField(LEShortField("event_reserved", 0), _is(RecordKind.EVENT)),
        ConditionalField(LEIntField("attrs_len", 0), _is(RecordKind.EVENT)),
        ConditionalField(StrLenField("event", b"", length_from=lambda p: p.event_name_len), _is(RecordKind.EVENT)),
        ConditionalField(StrLenField("attrs", b"", length_from=lambda p: p.attrs_len), _is(RecordKind.EVENT)),
        PacketListField("fd_entries", [], FdEntry, count_from=lambda p: p.nfds),
        StrLenField("extension", b"", length_from=lambda p: max(p.header_len - _known_header(p), 0)),
    ]

    def do_dissect_payload(self, s: bytes) -> None:
        data, rest = s[: self.data_len], s[self.data_len :]
        if data:
            self.add_payload(self._data_layer(data))
        if rest:
            self.add_payload(Padding(rest))

    def _data_layer(self, data: bytes) -> Packet:
        channel = CHANNEL_NAMES.get(self.channel)
        if self.kind == RecordKind.MESSAGE and channel in ("main", "backend"):
            try:
                from dissectors.layers import dissect
            except ImportError:
                return Raw(data)
            return dissect(data, channel)
        return Raw(data)

    def mysummary(self) -> str:
        kind = KIND_NAMES.get(self.kind, str(self.kind))
        return f"vutrace #{self.conn} {CHANNEL_NAMES.get(self.channel, self.channel)} {kind.lower()}"


def fields_of(packet: Packet) -> dict[str, object]:
    """Every field of every layer of a dissected packet, flattened (later layers win on equal names)."""
    out: dict[str, object] = {}
    layer = packet
    while layer:
        out.update(layer.fields)
        layer = layer.payload
    return out


conf.l2types.register(LINKTYPE_WIRESHARK_UPPER_PDU, VutraceRecord)
