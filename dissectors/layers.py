"""scapy layers for vhost-user: ``show()``, field access and building of messages.

``VhostUser`` is a main-socket message, ``VhostUserBackend`` one on the back-end
request channel; ``dissect(data, channel)`` picks the class. The header chooses
its payload class from the request id, the channel, the REPLY flag and the
payload size (the same rule as the flat records). There is one payload class
per layout of the spec table; their fields carry the flat-record names, so
``pkt[VhostUserVringState].num`` and ``decode(raw)["num"]`` are the same value.
Padding is kept as fields (it is part of the bytes); flat records leave it out.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

from scapy.config import conf
from scapy.fields import (
    BitField,
    ByteEnumField,
    ByteField,
    EnumField,
    Field,
    FieldLenField,
    FieldListField,
    FlagsField,
    LEIntEnumField,
    LEIntField,
    LELongField,
    LEShortField,
    LESignedLongField,
    PacketListField,
    StrLenField,
    XLELongField,
    XStrFixedLenField,
)
from scapy.packet import Packet, Raw

from dissectors import payloads, spec
from dissectors.payloads import U64_SPLITS, XEN_FIELDS, PackedVringBase, packed_vring_base
from dissectors.spec import HEADER_SIZE, Channel, Payload

__all__ = [
    "PAYLOAD_CLASSES",
    "MemoryRegion",
    "MemoryRegionXen",
    "VhostUser",
    "VhostUserBackend",
    "VhostUserConfig",
    "VhostUserCryptoSession",
    "VhostUserDeviceState",
    "VhostUserDeviceStateResult",
    "VhostUserFeatures",
    "VhostUserHeader",
    "VhostUserInflight",
    "VhostUserIotlb",
    "VhostUserLog",
    "VhostUserMemRegion",
    "VhostUserMemRegionXen",
    "VhostUserMemSlots",
    "VhostUserMemTable",
    "VhostUserMemTableXen",
    "VhostUserMmap",
    "VhostUserMtu",
    "VhostUserPayload",
    "VhostUserProtocolFeatures",
    "VhostUserQueueNum",
    "VhostUserRarp",
    "VhostUserResult",
    "VhostUserSessionId",
    "VhostUserSharedObject",
    "VhostUserShmemConfig",
    "VhostUserStatus",
    "VhostUserU64",
    "VhostUserVringAddr",
    "VhostUserVringArea",
    "VhostUserVringBase",
    "VhostUserVringEnable",
    "VhostUserVringEndian",
    "VhostUserVringFd",
    "VhostUserVringState",
    "dissect",
]


def bit_names(names: dict[int, str], width: int) -> list[str]:
    """A FlagsField name list: known bits by name, the others as ``bit<N>``."""
    return [names.get(bit, f"bit{bit}") for bit in range(width)]


def mask_names(names: dict[int, str]) -> dict[int, str]:
    """A table keyed by mask (0x100: ...) re-keyed by bit number (8: ...)."""
    return {mask.bit_length() - 1: name for mask, name in names.items()}


HEADER_FLAG_NAMES = bit_names({0: "V1", 1: "V2", 2: "REPLY", 3: "NEED_REPLY"}, 32)
"""Header flag bits: the version is bits 0-1 (V1 = version 1), then REPLY and NEED_REPLY."""
VIRTIO_FEATURE_NAMES = bit_names(spec.VIRTIO_FEATURES, 64)
PROTOCOL_FEATURE_NAMES = bit_names(spec.PROTOCOL_FEATURE_NAMES, 64)
STATUS_NAMES = bit_names(mask_names(spec.DEVICE_STATUS), 64)
XEN_FLAG_NAMES = bit_names(mask_names(spec.XEN_MMAP_FLAGS), 32)
VRING_ADDR_FLAG_NAMES = bit_names({spec.VHOST_VRING_F_LOG.bit_length() - 1: "LOG"}, 32)
VRING_ENABLE_NAMES = {0: "DISABLE", 1: "ENABLE"}


class MacU64Field(LELongField):
    """A u64 whose first 6 bytes are a MAC address (SEND_RARP)."""

    def i2repr(self, pkt: Packet | None, x: int) -> str:
        return ":".join(f"{b:02x}" for b in struct.pack("<Q", x or 0)[:6])


class UuidField(XStrFixedLenField):
    """16 UUID bytes as sent (first three fields big-endian, i.e. RFC 4122 byte order)."""

    def i2repr(self, pkt: Packet | None, x: bytes) -> str:
        return str(uuid.UUID(bytes=x)) if x is not None and len(x) == 16 else repr(x)


_HEX_NAMES = frozenset(
    {
        "u64",
        "desc_addr",
        "used_addr",
        "avail_addr",
        "log_addr",
        "guest_addr",
        "region_size",
        "user_addr",
        "mmap_offset",
        "log_size",
        "log_offset",
        "iova",
        "iotlb_size",
        "uaddr",
        "area_size",
        "area_offset",
        "mmap_size",
        "fd_offset",
        "shm_offset",
        "mmap_len",
    }
)
"""Fields shown in hex (addresses, sizes and offsets)."""

_OVERRIDES: dict[tuple[Payload, str], Callable[[], Field[Any, Any]]] = {
    (Payload.FEATURES, "features"): lambda: FlagsField("features", 0, -64, VIRTIO_FEATURE_NAMES),
    (Payload.PROTOCOL_FEATURES, "protocol_features"): lambda: FlagsField(
        "protocol_features", 0, -64, PROTOCOL_FEATURE_NAMES
    ),
    (Payload.STATUS, "status"): lambda: FlagsField("status", 0, -64, STATUS_NAMES),
    (Payload.RARP, "mac"): lambda: MacU64Field("mac", 0),
    (Payload.VRING_ENABLE, "num"): lambda: LEIntEnumField("num", 0, VRING_ENABLE_NAMES),
    (Payload.VRING_ENDIAN, "num"): lambda: LEIntEnumField("num", 0, spec.VRING_ENDIAN),
    (Payload.VRING_ADDR, "addr_flags"): lambda: FlagsField("addr_flags", 0, -32, VRING_ADDR_FLAG_NAMES),
    (Payload.IOTLB, "perm"): lambda: ByteEnumField("perm", 0, spec.IOTLB_PERM),
    (Payload.IOTLB, "iotlb_type"): lambda: ByteEnumField("iotlb_type", 0, spec.IOTLB_TYPE),
    (Payload.SHARED_OBJECT, "uuid"): lambda: UuidField("uuid", bytes(16), 16),
    (Payload.DEVICE_STATE, "direction"): lambda: LEIntEnumField("direction", 0, spec.TRANSFER_DIRECTION),
    (Payload.DEVICE_STATE, "phase"): lambda: LEIntEnumField("phase", 0, spec.MIGRATION_PHASE),
    (Payload.MMAP, "mmap_flags"): lambda: EnumField("mmap_flags", 0, spec.MMAP_FLAGS, "<Q"),
    (Payload.MEM_REGION, "xen_flags"): lambda: FlagsField("xen_flags", 0, -32, XEN_FLAG_NAMES),
}
"""Fields that get names for their values; the others follow their struct format."""


def _plain_field(field: spec.Field) -> Field[Any, Any]:
    fmt = field.fmt
    if fmt.endswith("s"):
        size = int(fmt[:-1])
        return XStrFixedLenField(field.name, bytes(size), size)
    if fmt == "Q":
        return XLELongField(field.name, 0) if field.name in _HEX_NAMES else LELongField(field.name, 0)
    if fmt == "q":
        return LESignedLongField(field.name, 0)
    if fmt == "I":
        return LEIntField(field.name, 0)
    if fmt == "H":
        return LEShortField(field.name, 0)
    if fmt == "B":
        return ByteField(field.name, 0)
    raise AssertionError(f"no scapy field for struct format {fmt!r}")


def _split_u64(value_name: str) -> list[Field[Any, Any]]:
    """A u64 read as bit fields: bits 9-63 reserved, bit 8 ``nofd``, bits 0-7 ``value_name``."""
    return [
        BitField("u64_reserved", 0, 55, tot_size=-8),
        BitField("nofd", 0, 1),
        BitField(value_name, 0, 8, end_tot_size=-8),
    ]


def scapy_fields(kind: Payload, fields: tuple[spec.Field, ...]) -> list[Field[Any, Any]]:
    """The scapy fields of a fixed layout, built from its spec fields."""
    out: list[Field[Any, Any]] = []
    for field in fields:
        if field.name == "u64" and kind in U64_SPLITS:
            out += _split_u64(U64_SPLITS[kind][0])
        elif (kind, field.name) in _OVERRIDES:
            out.append(_OVERRIDES[kind, field.name]())
        else:
            out.append(_plain_field(field))
    return out


def _is_hidden(name: str) -> bool:
    return name.endswith("padding") or name.endswith("reserved")


class VhostUserPayload(Packet):
    """Base of the payload classes: the payload ends the message (extra bytes are Padding)."""

    kind: ClassVar[Payload]
    show_summary = False

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s

    def info(self) -> str:
        """The payload's part of the Info line: ``name=value`` for each field but padding."""
        return " ".join(
            f"{f.name}={f.i2repr(self, self.getfieldval(f.name))}" for f in self.fields_desc if not _is_hidden(f.name)
        )


class _SplitU64:
    """The whole u64 of a payload whose u64 is shown as bit fields."""

    @property
    def u64(self) -> int:
        value_name = U64_SPLITS[self.kind][0]  # type: ignore[attr-defined]
        return self.u64_reserved << 9 | self.nofd << 8 | self.getfieldval(value_name)  # type: ignore[attr-defined]


def _class_name(kind: Payload, suffix: str = "") -> str:
    return "VhostUser" + "".join(part.capitalize() for part in kind.value.split("_")) + suffix


def fixed_payload_class(
    kind: Payload, fields: tuple[spec.Field, ...] | None = None, suffix: str = "", doc: str = ""
) -> type[VhostUserPayload]:
    """A payload class for a fixed layout of the spec table (``suffix`` names a variant of it)."""
    bases: tuple[type, ...] = (_SplitU64, VhostUserPayload) if kind in U64_SPLITS else (VhostUserPayload,)
    namespace = {
        "name": f"vhost-user {kind.value.replace('_', ' ')} {suffix}".rstrip(),
        "kind": kind,
        "fields_desc": scapy_fields(kind, spec.FIXED_LAYOUTS[kind] if fields is None else fields),
        "__doc__": doc or f"Payload layout {kind.value!r} of the spec table.",
        "__module__": __name__,
    }
    return type(_class_name(kind, suffix), bases, namespace)  # type: ignore[return-value]


class VhostUserVringBase(VhostUserPayload):
    """GET/SET_VRING_BASE: ring index and the split or packed ring position."""

    name = "vhost-user vring base"
    kind = Payload.VRING_BASE
    fields_desc = scapy_fields(Payload.VRING_BASE, spec.FIXED_LAYOUTS[Payload.VRING_BASE])

    def packed(self) -> PackedVringBase:
        """``num`` read as packed-ring indices (when VIRTIO_F_RING_PACKED was negotiated)."""
        return packed_vring_base(self.num)


class MemoryRegion(Packet):
    """One 32-byte region of a SET_MEM_TABLE payload."""

    name = "memory region"
    fields_desc = scapy_fields(Payload.MEM_REGION, spec.MEM_REGION_FIELDS)

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class MemoryRegionXen(MemoryRegion):
    """A 40-byte region (XEN_MMAP): the 32-byte region, then xen_flags and domid."""

    name = "memory region (XEN_MMAP)"
    fields_desc = scapy_fields(Payload.MEM_REGION, spec.MEM_REGION_FIELDS + XEN_FIELDS)


def _region_info(region: Packet) -> str:
    if not isinstance(region, MemoryRegion):
        return f"{len(bytes(region))} undecoded bytes"
    text = f"gpa={region.guest_addr:#x} size={region.region_size:#x} uaddr={region.user_addr:#x}"
    if region.mmap_offset:
        text += f" off={region.mmap_offset:#x}"
    if isinstance(region, MemoryRegionXen):
        text += f" xen_flags={region.xen_flags} domid={region.domid}"
    return text


class VhostUserMemTable(VhostUserPayload):
    """SET_MEM_TABLE: num_regions, padding, then the regions (32 bytes each)."""

    name = "vhost-user memory table"
    kind = Payload.MEM_TABLE
    fields_desc: ClassVar[list[Field[Any, Any]]] = [
        FieldLenField("num_regions", None, count_of="regions", fmt="<I"),
        LEIntField("mem_padding", 0),
        PacketListField("regions", [], MemoryRegion, count_from=lambda pkt: pkt.num_regions),
    ]

    def info(self) -> str:
        return f"num_regions={self.num_regions} " + " ".join(f"[{_region_info(r)}]" for r in self.regions)


class VhostUserMemTableXen(VhostUserMemTable):
    """SET_MEM_TABLE with XEN_MMAP: 40-byte regions."""

    name = "vhost-user memory table (XEN_MMAP)"
    fields_desc: ClassVar[list[Field[Any, Any]]] = [
        FieldLenField("num_regions", None, count_of="regions", fmt="<I"),
        LEIntField("mem_padding", 0),
        PacketListField("regions", [], MemoryRegionXen, count_from=lambda pkt: pkt.num_regions),
    ]


class VhostUserConfig(VhostUserPayload):
    """GET/SET_CONFIG: offset, size and flags, then ``size`` bytes of config space."""

    name = "vhost-user config space"
    kind = Payload.CONFIG
    fields_desc: ClassVar[list[Field[Any, Any]]] = [
        LEIntField("config_offset", 0),
        FieldLenField("config_size", None, length_of="config_data", fmt="<I"),
        LEIntEnumField("config_flags", 0, spec.CONFIG_FLAGS),
        StrLenField("config_data", b"", length_from=lambda pkt: pkt.config_size),
    ]

    def info(self) -> str:
        data = self.config_data.hex()
        shown = data if len(data) <= 32 else data[:32] + "..."
        flags = self.get_field("config_flags").i2repr(self, self.config_flags)
        return f"offset={self.config_offset} size={self.config_size} flags={flags} data={shown}"


class VhostUserShmemConfig(VhostUserPayload):
    """GET_SHMEM_CONFIG reply: num_regions, padding, 256 region sizes (index = shmid)."""

    name = "vhost-user shared memory config"
    kind = Payload.SHMEM_CONFIG
    fields_desc: ClassVar[list[Field[Any, Any]]] = [
        LEIntField("num_regions", 0),
        LEIntField("shmem_padding", 0),
        FieldListField(
            "shmem_sizes",
            [0] * spec.SHMEM_MAX_REGIONS,
            XLELongField("", 0),
            count_from=lambda pkt: spec.SHMEM_MAX_REGIONS,
            max_count=spec.SHMEM_MAX_REGIONS,
        ),
    ]

    def info(self) -> str:
        used = {shmid: size for shmid, size in enumerate(self.shmem_sizes) if size}
        return f"num_regions={self.num_regions} " + " ".join(f"shm{i}={size:#x}" for i, size in used.items())


class VhostUserCryptoSession(VhostUserPayload):
    """CREATE_CRYPTO_SESSION: op_code, opaque setup data and keys, session_id in the last 8 bytes.

    This is QEMU's layout since 8.2; older QEMU and DPDK put the session id first.
    """

    name = "vhost-user crypto session"
    kind = Payload.CRYPTO_SESSION
    fields_desc: ClassVar[list[Field[Any, Any]]] = [
        LELongField("op_code", 0),
        StrLenField("crypto_setup", b"", length_from=lambda pkt: pkt.setup_len),
        LESignedLongField("session_id", 0),
    ]

    def pre_dissect(self, s: bytes) -> bytes:
        self.setup_len = max(len(s) - payloads.CRYPTO_MIN_SIZE, 0)
        return s

    def info(self) -> str:
        return f"op_code={self.op_code} session_id={self.session_id} setup={len(self.crypto_setup)} bytes"


_SPECIAL: dict[Payload, type[VhostUserPayload]] = {
    Payload.VRING_BASE: VhostUserVringBase,
    Payload.MEM_TABLE: VhostUserMemTable,
    Payload.CONFIG: VhostUserConfig,
    Payload.SHMEM_CONFIG: VhostUserShmemConfig,
    Payload.CRYPTO_SESSION: VhostUserCryptoSession,
}

PAYLOAD_CLASSES: dict[Payload, type[VhostUserPayload]] = {
    kind: _SPECIAL.get(kind) or fixed_payload_class(kind) for kind in Payload if kind is not Payload.NONE
}
"""One payload class per layout (NONE has no payload)."""
VhostUserMemRegionXen = fixed_payload_class(
    Payload.MEM_REGION,
    spec.FIXED_LAYOUTS[Payload.MEM_REGION] + XEN_FIELDS,
    "Xen",
    doc="ADD/REM_MEM_REG region with XEN_MMAP: 48 bytes.",
)
XEN_CLASSES: dict[Payload, type[VhostUserPayload]] = {
    Payload.MEM_REGION: VhostUserMemRegionXen,
    Payload.MEM_TABLE: VhostUserMemTableXen,
}

VhostUserU64 = PAYLOAD_CLASSES[Payload.U64]
VhostUserResult = PAYLOAD_CLASSES[Payload.RESULT]
VhostUserFeatures = PAYLOAD_CLASSES[Payload.FEATURES]
VhostUserProtocolFeatures = PAYLOAD_CLASSES[Payload.PROTOCOL_FEATURES]
VhostUserQueueNum = PAYLOAD_CLASSES[Payload.QUEUE_NUM]
VhostUserMemSlots = PAYLOAD_CLASSES[Payload.MEM_SLOTS]
VhostUserStatus = PAYLOAD_CLASSES[Payload.STATUS]
VhostUserMtu = PAYLOAD_CLASSES[Payload.MTU]
VhostUserRarp = PAYLOAD_CLASSES[Payload.RARP]
VhostUserSessionId = PAYLOAD_CLASSES[Payload.SESSION_ID]
VhostUserVringState = PAYLOAD_CLASSES[Payload.VRING_STATE]
VhostUserVringEnable = PAYLOAD_CLASSES[Payload.VRING_ENABLE]
VhostUserVringEndian = PAYLOAD_CLASSES[Payload.VRING_ENDIAN]
VhostUserVringAddr = PAYLOAD_CLASSES[Payload.VRING_ADDR]
VhostUserVringFd = PAYLOAD_CLASSES[Payload.VRING_FD]
VhostUserMemRegion = PAYLOAD_CLASSES[Payload.MEM_REGION]
VhostUserLog = PAYLOAD_CLASSES[Payload.LOG]
VhostUserIotlb = PAYLOAD_CLASSES[Payload.IOTLB]
VhostUserVringArea = PAYLOAD_CLASSES[Payload.VRING_AREA]
VhostUserInflight = PAYLOAD_CLASSES[Payload.INFLIGHT]
VhostUserSharedObject = PAYLOAD_CLASSES[Payload.SHARED_OBJECT]
VhostUserDeviceState = PAYLOAD_CLASSES[Payload.DEVICE_STATE]
VhostUserDeviceStateResult = PAYLOAD_CLASSES[Payload.DEVICE_STATE_RESULT]
VhostUserMmap = PAYLOAD_CLASSES[Payload.MMAP]


def payload_class(choice: payloads.Choice) -> type[VhostUserPayload]:
    """The class for a chosen layout."""
    return XEN_CLASSES[choice.kind] if choice.xen else PAYLOAD_CLASSES[choice.kind]


class VhostUserHeader(Packet):
    """The 12-byte header; the payload class follows from request id, channel, REPLY flag and size."""

    name = "vhost-user"
    channel: ClassVar[Channel] = Channel.MAIN
    fields_desc: ClassVar[list[Field[Any, Any]]] = [
        LEIntEnumField("request", 0, {m.id: m.name for m in spec.FRONTEND_MESSAGES}),
        FlagsField("flags", spec.VERSION, -32, HEADER_FLAG_NAMES),
        LEIntField("size", None),
    ]

    @property
    def is_reply(self) -> bool:
        return bool(int(self.flags) & spec.FLAG_REPLY)

    @property
    def need_reply(self) -> bool:
        return bool(int(self.flags) & spec.FLAG_NEED_REPLY)

    @property
    def version(self) -> int:
        return int(self.flags) & spec.FLAG_VERSION_MASK

    @property
    def message(self) -> spec.Message | None:
        """The spec facts of this request id on this channel."""
        return spec.lookup(self.channel, self.request)

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.size is None:
            pkt = pkt[:8] + struct.pack("<I", len(pay)) + pkt[12:]
        return pkt + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes | None]:
        if self.size is None:
            return s, None
        return s[: self.size], s[self.size :]

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        message = self.message
        if message is None:
            return Raw
        choice = payloads.choose(message, self.is_reply, len(payload))
        if choice.kind is Payload.NONE or not payloads.decodable(choice, len(payload)):
            return Raw
        if choice.kind is Payload.MEM_TABLE and payloads.mem_table_is_xen(payload):
            return VhostUserMemTableXen
        return payload_class(choice)

    def hashret(self) -> bytes:
        return struct.pack("<I", self.request) + self.channel.encode()

    def answers(self, other: Packet) -> bool:
        """A reply answers the request with the same id on the same channel."""
        return (
            isinstance(other, VhostUserHeader)
            and other.channel == self.channel
            and other.request == self.request
            and self.is_reply
            and not other.is_reply
        )

    def mysummary(self) -> str:
        """The Info line: name, reply/need_reply, payload fields."""
        parts = [self.get_field("request").i2repr(self, self.request)]
        if self.is_reply:
            parts.append("reply")
        if self.need_reply:
            parts.append("need_reply")
        body = self.payload
        if isinstance(body, VhostUserPayload):
            parts.append(body.info())
        elif isinstance(body, Raw):
            parts.append(f"{len(body.load)} undecoded bytes")
        return " ".join(parts)


class VhostUser(VhostUserHeader):
    """A message on the main vhost-user socket (front-end requests, back-end replies)."""

    name = "vhost-user"


class VhostUserBackend(VhostUserHeader):
    """A message on the back-end request channel (back-end requests, front-end replies)."""

    name = "vhost-user back-end channel"
    channel = Channel.BACKEND
    fields_desc: ClassVar[list[Field[Any, Any]]] = [
        LEIntEnumField("request", 0, {m.id: m.name for m in spec.BACKEND_MESSAGES}),
        FlagsField("flags", spec.VERSION, -32, HEADER_FLAG_NAMES),
        LEIntField("size", None),
    ]


HEADER_CLASSES: dict[Channel, type[VhostUserHeader]] = {Channel.MAIN: VhostUser, Channel.BACKEND: VhostUserBackend}


def dissect(data: bytes | bytearray | memoryview, channel: str = "main") -> Packet:
    """One message as a scapy packet. Never raises: input scapy cannot take becomes a Raw packet."""
    raw = bytes(data)
    try:
        cls = HEADER_CLASSES[Channel(channel)]
        if len(raw) < HEADER_SIZE:
            return conf.raw_layer(raw)
        return cls(raw)
    except Exception:  # scapy may fail on inputs nobody has thought of; the bytes are kept as Raw
        return conf.raw_layer(raw)
