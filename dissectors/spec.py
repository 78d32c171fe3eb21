"""The one table of vhost-user protocol facts.

Every other part of vutrace (the scapy layers, the flat record decoder, the
encoder, the conformance checker, the Wireshark Lua dissector and the docs)
reads message ids, names, payload layouts, FD rules and feature gates from
here, so a fact about the protocol is written down exactly once.

Source: QEMU ``docs/interop/vhost-user.rst`` at commit 1276e6c85dcc
(September 2026; front-end messages 1-45, back-end messages 1-10, protocol
features 0-23), plus the wire deviations of real implementations (QEMU 10,
virtiofsd 1.13, rust-vmm vhost 0.16, DPDK 22.11-26.07) noted per entry.
All integers are host byte order; vutrace assumes little-endian hosts
(x86-64, aarch64), except the UUID of ``VhostUserShared``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

HEADER_SIZE = 12
HEADER_FORMAT = "<III"
VERSION = 0x1
FLAG_VERSION_MASK = 0x3
FLAG_REPLY = 0x4
FLAG_NEED_REPLY = 0x8
FLAG_KNOWN_MASK = FLAG_VERSION_MASK | FLAG_REPLY | FLAG_NEED_REPLY
MAX_FDS = 8
"""Most FDs a message may carry (8 memory regions; back-end channel limit)."""
MAX_PAYLOAD_SIZE = 0x1000 + 12
"""Largest payload a sane peer sends (rust-vmm MAX_MSG_SIZE; config 4 KiB + header)."""
VRING_IDX_MASK = 0xFF
VRING_NOFD_MASK = 0x100
DEVICE_STATE_ERROR_MASK = 0xFF
DEVICE_STATE_NOFD_MASK = 0x100
VHOST_VRING_F_LOG = 0x1
VHOST_LOG_PAGE = 0x1000
MEM_REGION_SIZE = 32
MEM_REGION_XEN_SIZE = 40
SHMEM_MAX_REGIONS = 256


class Channel(StrEnum):
    """Which socket a vhost-user message travels on."""

    MAIN = "main"
    """The vhost-user socket: front-end requests, back-end replies."""
    BACKEND = "backend"
    """The back-end request channel from SET_BACKEND_REQ_FD: back-end requests, front-end replies."""


class Sender(StrEnum):
    """Who wrote a record."""

    FRONTEND = "frontend"
    BACKEND = "backend"
    PROXY = "proxy"


def requester(channel: Channel) -> Sender:
    """The side that sends requests on a channel (the other side replies)."""
    return Sender.FRONTEND if channel is Channel.MAIN else Sender.BACKEND


class Payload(StrEnum):
    """Payload layouts. Each u64 meaning gets its own kind so its field has a clear name."""

    NONE = "none"
    U64 = "u64"
    RESULT = "result"
    FEATURES = "features"
    PROTOCOL_FEATURES = "protocol_features"
    QUEUE_NUM = "queue_num"
    MEM_SLOTS = "mem_slots"
    STATUS = "status"
    MTU = "mtu"
    RARP = "rarp"
    SESSION_ID = "session_id"
    VRING_STATE = "vring_state"
    VRING_ENABLE = "vring_enable"
    VRING_ENDIAN = "vring_endian"
    VRING_BASE = "vring_base"
    VRING_ADDR = "vring_addr"
    VRING_FD = "vring_fd"
    MEM_TABLE = "mem_table"
    MEM_REGION = "mem_region"
    LOG = "log"
    IOTLB = "iotlb"
    CONFIG = "config"
    VRING_AREA = "vring_area"
    INFLIGHT = "inflight"
    SHARED_OBJECT = "shared_object"
    DEVICE_STATE = "device_state"
    DEVICE_STATE_RESULT = "device_state_result"
    MMAP = "mmap"
    SHMEM_CONFIG = "shmem_config"
    CRYPTO_SESSION = "crypto_session"


@dataclass(frozen=True)
class Field:
    """One fixed-size field of a payload: its flat-record name and struct format (little-endian)."""

    name: str
    fmt: str
    doc: str = ""


FIXED_LAYOUTS: dict[Payload, tuple[Field, ...]] = {
    Payload.NONE: (),
    Payload.U64: (Field("u64", "Q", "64-bit value"),),
    Payload.RESULT: (Field("result", "Q", "0 = success, non-zero = failure"),),
    Payload.FEATURES: (Field("features", "Q", "virtio/vhost feature bits"),),
    Payload.PROTOCOL_FEATURES: (Field("protocol_features", "Q", "vhost-user protocol feature bits"),),
    Payload.QUEUE_NUM: (Field("queue_num", "Q", "maximum number of queues the back-end supports"),),
    Payload.MEM_SLOTS: (Field("max_mem_slots", "Q", "memory slots the back-end supports"),),
    Payload.STATUS: (Field("status", "Q", "virtio device status bits"),),
    Payload.MTU: (Field("mtu", "Q", "MTU of the virtio-net device"),),
    Payload.RARP: (Field("mac", "Q", "guest MAC address in the first 6 bytes"),),
    Payload.SESSION_ID: (Field("session_id", "q", "crypto session id"),),
    Payload.VRING_STATE: (Field("vring", "I", "ring index"), Field("num", "I", "ring size or value")),
    Payload.VRING_ENABLE: (Field("vring", "I", "ring index"), Field("num", "I", "1 = enable, 0 = disable")),
    Payload.VRING_ENDIAN: (Field("vring", "I", "ring index"), Field("num", "I", "0 = little, 1 = big endian")),
    Payload.VRING_BASE: (
        Field("vring", "I", "ring index"),
        Field("num", "I", "split: next avail index (bits 0-15); packed: avail idx/wrap, used idx/wrap"),
    ),
    Payload.VRING_ADDR: (
        Field("vring", "I", "ring index"),
        Field("addr_flags", "I", "bit 0 VHOST_VRING_F_LOG: log used-ring writes"),
        Field("desc_addr", "Q", "descriptor table address"),
        Field("used_addr", "Q", "used ring address"),
        Field("avail_addr", "Q", "available ring address"),
        Field("log_addr", "Q", "guest-physical address for used-ring logging"),
    ),
    Payload.VRING_FD: (Field("u64", "Q", "bits 0-7 ring index, bit 8 no FD (invalid FD flag)"),),
    Payload.MEM_REGION: (
        Field("padding", "Q", "padding"),
        Field("guest_addr", "Q", "guest physical address"),
        Field("region_size", "Q", "size in bytes"),
        Field("user_addr", "Q", "front-end user virtual address"),
        Field("mmap_offset", "Q", "offset of the region in the FD"),
    ),
    Payload.LOG: (Field("log_size", "Q", "size of the log in bytes"), Field("log_offset", "Q", "offset in the FD")),
    Payload.IOTLB: (
        Field("iova", "Q", "I/O virtual address"),
        Field("iotlb_size", "Q", "size of the range"),
        Field("uaddr", "Q", "user address"),
        Field("perm", "B", "0 none, 1 read, 2 write, 3 read/write"),
        Field("iotlb_type", "B", "1 miss, 2 update, 3 invalidate, 4 access fail"),
        Field("iotlb_padding", "6s", "C struct padding"),
    ),
    Payload.VRING_AREA: (
        Field("u64", "Q", "bits 0-7 ring index, bit 8 no FD"),
        Field("area_size", "Q", "size of the area"),
        Field("area_offset", "Q", "offset in the FD"),
    ),
    Payload.INFLIGHT: (
        Field("mmap_size", "Q", "size of the inflight buffer"),
        Field("mmap_offset", "Q", "offset in the FD"),
        Field("num_queues", "H", "number of queues"),
        Field("queue_size", "H", "size of each queue"),
        Field("inflight_padding", "4s", "C struct padding (all implementations send 24 bytes)"),
    ),
    Payload.SHARED_OBJECT: (Field("uuid", "16s", "UUID; first three fields big-endian"),),
    Payload.DEVICE_STATE: (
        Field("direction", "I", "0 SAVE (back-end to front-end), 1 LOAD (front-end to back-end)"),
        Field("phase", "I", "0 STOPPED"),
    ),
    Payload.DEVICE_STATE_RESULT: (Field("u64", "Q", "bits 0-7 error (0 = ok), bit 8 no FD returned"),),
    Payload.MMAP: (
        Field("shmid", "B", "shared memory region id"),
        Field("mmap_padding", "7s", "padding"),
        Field("fd_offset", "Q", "offset in the FD"),
        Field("shm_offset", "Q", "offset in the shared memory region"),
        Field("mmap_len", "Q", "length of the mapping"),
        Field("mmap_flags", "Q", "0 read-only, 1 read-write"),
    ),
}
"""Payloads whose size is fixed, as sequences of little-endian fields."""

VARIABLE_LAYOUTS: dict[Payload, str] = {
    Payload.MEM_TABLE: "num_regions u32, padding u32, then num_regions x 32-byte regions "
    "(guest_addr, region_size, user_addr, mmap_offset); 40 bytes each with XEN_MMAP",
    Payload.CONFIG: "offset u32, size u32, flags u32 (1 = write for live migration), then size bytes",
    Payload.SHMEM_CONFIG: "num_regions u32, padding u32, 256 x u64 region sizes (index = shmid)",
    Payload.CRYPTO_SESSION: "op_code u64 @0, setup data and keys (opaque), session_id i64 in the last 8 bytes",
}
"""Payloads whose size depends on their content, with their layout in words."""

MEM_REGION_FIELDS: tuple[Field, ...] = FIXED_LAYOUTS[Payload.MEM_REGION][1:]


def fixed_size(kind: Payload) -> int | None:
    """The payload size of a fixed layout, or None for a variable one."""
    import struct

    if kind not in FIXED_LAYOUTS:
        return None
    return struct.calcsize("<" + "".join(f.fmt for f in FIXED_LAYOUTS[kind]))


class ReplyRule(StrEnum):
    """When the receiver of a request answers it."""

    ALWAYS = "always"
    """A reply is always sent, with the reply payload."""
    ACK = "ack"
    """A u64 result only if REPLY_ACK was negotiated and NEED_REPLY is set."""
    CONDITIONAL = "conditional"
    """Always in a stated condition (LOG_SHMFD, postcopy, NEED_REPLY on the back-end channel), else as ACK."""


class FdRule(StrEnum):
    """How many FDs travel with a message."""

    NONE = "none"
    ONE = "one"
    OPTIONAL = "optional"
    """0 or 1."""
    PER_REGION = "per_region"
    """One per memory region (num_regions of SET_MEM_TABLE)."""
    UNLESS_NOFD = "unless_nofd"
    """One unless bit 8 (invalid FD flag) of the u64 is set."""


class ProtocolFeature(IntEnum):
    """vhost-user protocol feature bits (GET/SET_PROTOCOL_FEATURES), spec names without the prefix."""

    MQ = 0
    LOG_SHMFD = 1
    RARP = 2
    REPLY_ACK = 3
    MTU = 4
    BACKEND_REQ = 5
    CROSS_ENDIAN = 6
    CRYPTO_SESSION = 7
    PAGEFAULT = 8
    CONFIG = 9
    BACKEND_SEND_FD = 10
    HOST_NOTIFIER = 11
    INFLIGHT_SHMFD = 12
    RESET_DEVICE = 13
    INBAND_NOTIFICATIONS = 14
    CONFIGURE_MEM_SLOTS = 15
    STATUS = 16
    XEN_MMAP = 17
    SHARED_OBJECT = 18
    DEVICE_STATE = 19
    GET_VRING_BASE_INFLIGHT = 20
    GPA_ADDRESSES = 21
    SHMEM = 22
    GET_VRING_BASE_SKIP_DRAIN = 23


PROTOCOL_FEATURE_REQUIRES: dict[ProtocolFeature, tuple[ProtocolFeature, ...]] = {
    ProtocolFeature.INBAND_NOTIFICATIONS: (ProtocolFeature.BACKEND_REQ, ProtocolFeature.REPLY_ACK),
    ProtocolFeature.GET_VRING_BASE_SKIP_DRAIN: (
        ProtocolFeature.GET_VRING_BASE_INFLIGHT,
        ProtocolFeature.INFLIGHT_SHMFD,
    ),
    ProtocolFeature.GET_VRING_BASE_INFLIGHT: (ProtocolFeature.INFLIGHT_SHMFD,),
}
"""Protocol features that may only be negotiated together with others."""

F_PROTOCOL_FEATURES = 30
"""VHOST_USER_F_PROTOCOL_FEATURES: virtio feature bit defined by vhost-user."""
F_LOG_ALL = 26
"""VHOST_F_LOG_ALL: dirty logging on during migration."""
F_IOMMU_PLATFORM = 33
F_RING_PACKED = 34
NET_F_MTU = 3

VIRTIO_FEATURES: dict[int, str] = {
    24: "NOTIFY_ON_EMPTY",
    26: "LOG_ALL",
    27: "ANY_LAYOUT",
    28: "RING_INDIRECT_DESC",
    29: "RING_EVENT_IDX",
    30: "PROTOCOL_FEATURES",
    32: "VERSION_1",
    33: "ACCESS_PLATFORM",
    34: "RING_PACKED",
    35: "IN_ORDER",
    36: "ORDER_PLATFORM",
    37: "SR_IOV",
    38: "NOTIFICATION_DATA",
    39: "NOTIF_CONFIG_DATA",
    40: "RING_RESET",
    41: "ADMIN_VQ",
}
"""Device-independent virtio/vhost feature bits; bits 0-23 are device specific."""

DEVICE_STATUS: dict[int, str] = {
    0x1: "ACKNOWLEDGE",
    0x2: "DRIVER",
    0x4: "DRIVER_OK",
    0x8: "FEATURES_OK",
    0x40: "NEEDS_RESET",
    0x80: "FAILED",
}

TRANSFER_DIRECTION: dict[int, str] = {0: "SAVE", 1: "LOAD"}
MIGRATION_PHASE: dict[int, str] = {0: "STOPPED"}
IOTLB_TYPE: dict[int, str] = {1: "MISS", 2: "UPDATE", 3: "INVALIDATE", 4: "ACCESS_FAIL"}
IOTLB_PERM: dict[int, str] = {0: "NONE", 1: "RO", 2: "WO", 3: "RW"}
VRING_ENDIAN: dict[int, str] = {0: "LITTLE", 1: "BIG"}
CONFIG_FLAGS: dict[int, str] = {0: "WRITABLE", 1: "LIVE_MIGRATION"}
MMAP_FLAGS: dict[int, str] = {0: "RO", 1: "RW"}
XEN_MMAP_FLAGS: dict[int, str] = {0x1: "FOREIGN", 0x2: "GRANT", 0x100: "MAP_ON_DEMAND"}


@dataclass(frozen=True)
class Gate:
    """The negotiation a message depends on."""

    protocol: ProtocolFeature | None = None
    virtio: int | None = None
    """A virtio feature bit that must be negotiated (acked in SET_FEATURES)."""
    needs_protocol_features: bool = False
    """Needs VHOST_USER_F_PROTOCOL_FEATURES (bit 30) offered by the back-end."""


@dataclass(frozen=True)
class Message:
    """Everything the spec says about one message id on one channel."""

    id: int
    name: str
    channel: Channel
    request: Payload
    reply: tuple[Payload, ...]
    """Reply layouts, first the usual one; alternatives are chosen by payload size."""
    reply_rule: ReplyRule
    request_fds: FdRule
    reply_fds: FdRule
    gate: Gate
    section: str
    """Spec section (vhost-user.rst) that defines the message."""
    note: str = ""
    old_name: str = ""
    request_alt: tuple[Payload, ...] = ()
    """Other request layouts seen on the wire, chosen by payload size like reply alternatives."""

    @property
    def full_name(self) -> str:
        prefix = "VHOST_USER_" if self.channel is Channel.MAIN else "VHOST_USER_BACKEND_"
        return prefix + self.name

    @property
    def bare_name(self) -> str:
        """The name without channel prefix as used in the back-end table (e.g. IOTLB_MSG)."""
        return self.name


_FE = "Front-end message types"
_BE = "Back-end message types"
_PF = Gate(needs_protocol_features=True)
_NO = Gate()


def _p(feature: ProtocolFeature, virtio: int | None = None) -> Gate:
    return Gate(protocol=feature, virtio=virtio, needs_protocol_features=True)


def _fe(
    mid: int,
    name: str,
    request: Payload,
    reply: tuple[Payload, ...],
    rule: ReplyRule,
    gate: Gate = _NO,
    request_fds: FdRule = FdRule.NONE,
    reply_fds: FdRule = FdRule.NONE,
    note: str = "",
    old_name: str = "",
    request_alt: tuple[Payload, ...] = (),
) -> Message:
    return Message(
        mid, name, Channel.MAIN, request, reply, rule, request_fds, reply_fds, gate, _FE, note, old_name, request_alt
    )


def _be(
    mid: int,
    name: str,
    request: Payload,
    reply: tuple[Payload, ...],
    rule: ReplyRule,
    gate: Gate,
    request_fds: FdRule = FdRule.NONE,
    reply_fds: FdRule = FdRule.NONE,
    note: str = "",
    old_name: str = "",
) -> Message:
    return Message(mid, name, Channel.BACKEND, request, reply, rule, request_fds, reply_fds, gate, _BE, note, old_name)


P = Payload
R = ReplyRule
F = FdRule
PF = ProtocolFeature
_ACK = (P.RESULT,)

FRONTEND_MESSAGES: tuple[Message, ...] = (
    _fe(1, "GET_FEATURES", P.NONE, (P.FEATURES,), R.ALWAYS),
    _fe(2, "SET_FEATURES", P.FEATURES, _ACK, R.ACK),
    _fe(3, "SET_OWNER", P.NONE, _ACK, R.ACK, note="opens a session"),
    _fe(4, "RESET_OWNER", P.NONE, _ACK, R.ACK, note="deprecated"),
    _fe(
        5,
        "SET_MEM_TABLE",
        P.MEM_TABLE,
        (P.RESULT, P.MEM_TABLE),
        R.CONDITIONAL,
        request_fds=F.PER_REGION,
        note="in postcopy (after POSTCOPY_LISTEN) the back-end replies with its mapping bases",
    ),
    _fe(
        6,
        "SET_LOG_BASE",
        P.LOG,
        (P.RESULT, P.LOG),
        R.CONDITIONAL,
        request_fds=F.OPTIONAL,
        note="spec table says u64; QEMU sends the 16-byte log description, with the shm FD and a reply "
        "when LOG_SHMFD is negotiated (virtiofsd echoes the 16 bytes)",
    ),
    _fe(7, "SET_LOG_FD", P.NONE, _ACK, R.ACK, request_fds=F.ONE),
    _fe(8, "SET_VRING_NUM", P.VRING_STATE, _ACK, R.ACK),
    _fe(9, "SET_VRING_ADDR", P.VRING_ADDR, _ACK, R.ACK),
    _fe(10, "SET_VRING_BASE", P.VRING_BASE, _ACK, R.ACK),
    _fe(11, "GET_VRING_BASE", P.VRING_STATE, (P.VRING_BASE,), R.ALWAYS, note="stops the ring; num reserved (0)"),
    _fe(12, "SET_VRING_KICK", P.VRING_FD, _ACK, R.ACK, request_fds=F.UNLESS_NOFD, note="starts the ring"),
    _fe(13, "SET_VRING_CALL", P.VRING_FD, _ACK, R.ACK, request_fds=F.UNLESS_NOFD),
    _fe(14, "SET_VRING_ERR", P.VRING_FD, _ACK, R.ACK, request_fds=F.UNLESS_NOFD),
    _fe(15, "GET_PROTOCOL_FEATURES", P.NONE, (P.PROTOCOL_FEATURES,), R.ALWAYS, _PF),
    _fe(16, "SET_PROTOCOL_FEATURES", P.PROTOCOL_FEATURES, _ACK, R.ACK, _PF),
    _fe(17, "GET_QUEUE_NUM", P.NONE, (P.QUEUE_NUM,), R.ALWAYS, _p(PF.MQ)),
    _fe(18, "SET_VRING_ENABLE", P.VRING_ENABLE, _ACK, R.ACK, _PF),
    _fe(19, "SEND_RARP", P.RARP, _ACK, R.ACK, _p(PF.RARP)),
    _fe(20, "NET_SET_MTU", P.MTU, _ACK, R.ACK, _p(PF.MTU, NET_F_MTU)),
    _fe(
        21,
        "SET_BACKEND_REQ_FD",
        P.NONE,
        _ACK,
        R.ACK,
        _p(PF.BACKEND_REQ),
        request_fds=F.ONE,
        old_name="SET_SLAVE_REQ_FD",
    ),
    _fe(22, "IOTLB_MSG", P.IOTLB, (P.RESULT,), R.ALWAYS, Gate(virtio=F_IOMMU_PLATFORM)),
    _fe(23, "SET_VRING_ENDIAN", P.VRING_ENDIAN, _ACK, R.ACK, _p(PF.CROSS_ENDIAN)),
    _fe(24, "GET_CONFIG", P.CONFIG, (P.CONFIG,), R.ALWAYS, _p(PF.CONFIG), note="0-byte reply payload = error"),
    _fe(25, "SET_CONFIG", P.CONFIG, _ACK, R.ACK, _p(PF.CONFIG)),
    _fe(26, "CREATE_CRYPTO_SESSION", P.CRYPTO_SESSION, (P.CRYPTO_SESSION,), R.ALWAYS, _p(PF.CRYPTO_SESSION)),
    _fe(27, "CLOSE_CRYPTO_SESSION", P.SESSION_ID, _ACK, R.ACK, _p(PF.CRYPTO_SESSION)),
    _fe(28, "POSTCOPY_ADVISE", P.NONE, (P.NONE,), R.ALWAYS, _p(PF.PAGEFAULT), reply_fds=F.ONE),
    _fe(29, "POSTCOPY_LISTEN", P.NONE, _ACK, R.ACK, _p(PF.PAGEFAULT)),
    _fe(30, "POSTCOPY_END", P.NONE, (P.RESULT,), R.ALWAYS, _p(PF.PAGEFAULT)),
    _fe(
        31,
        "GET_INFLIGHT_FD",
        P.INFLIGHT,
        (P.INFLIGHT,),
        R.ALWAYS,
        _p(PF.INFLIGHT_SHMFD),
        reply_fds=F.ONE,
        note="spec table says reply N/A; every implementation replies with the description and an FD",
    ),
    _fe(32, "SET_INFLIGHT_FD", P.INFLIGHT, _ACK, R.ACK, _p(PF.INFLIGHT_SHMFD), request_fds=F.ONE),
    _fe(33, "GPU_SET_SOCKET", P.NONE, _ACK, R.ACK, request_fds=F.ONE),
    _fe(34, "RESET_DEVICE", P.NONE, _ACK, R.ACK, _p(PF.RESET_DEVICE)),
    _fe(35, "VRING_KICK", P.VRING_STATE, _ACK, R.ACK, _p(PF.INBAND_NOTIFICATIONS)),
    _fe(36, "GET_MAX_MEM_SLOTS", P.NONE, (P.MEM_SLOTS,), R.ALWAYS, _p(PF.CONFIGURE_MEM_SLOTS)),
    _fe(
        37,
        "ADD_MEM_REG",
        P.MEM_REGION,
        (P.RESULT, P.MEM_REGION),
        R.CONDITIONAL,
        _p(PF.CONFIGURE_MEM_SLOTS),
        request_fds=F.ONE,
        note="spec table puts the region in the reply; the prose and all implementations send it in the request; "
        "in postcopy QEMU acknowledges the back-end's reply with a further ADD_MEM_REG carrying a u64 0",
        request_alt=(P.RESULT,),
    ),
    _fe(
        38,
        "REM_MEM_REG",
        P.MEM_REGION,
        _ACK,
        R.ACK,
        _p(PF.CONFIGURE_MEM_SLOTS),
        request_fds=F.OPTIONAL,
        note="no FD should be sent; a back-end must close one that arrives; in postcopy QEMU may send the "
        "u64 0 acknowledgement with this id when the last region change was a removal",
        request_alt=(P.RESULT,),
    ),
    _fe(39, "SET_STATUS", P.STATUS, _ACK, R.ACK, _p(PF.STATUS)),
    _fe(40, "GET_STATUS", P.NONE, (P.STATUS,), R.ALWAYS, _p(PF.STATUS)),
    _fe(
        41,
        "GET_SHARED_OBJECT",
        P.SHARED_OBJECT,
        (P.NONE, P.RESULT, P.SHARED_OBJECT),
        R.ALWAYS,
        _p(PF.SHARED_OBJECT),
        reply_fds=F.OPTIONAL,
        note="dma-buf FD on success",
    ),
    _fe(
        42,
        "SET_DEVICE_STATE_FD",
        P.DEVICE_STATE,
        (P.DEVICE_STATE_RESULT,),
        R.ALWAYS,
        _p(PF.DEVICE_STATE),
        request_fds=F.ONE,
        reply_fds=F.UNLESS_NOFD,
    ),
    _fe(43, "CHECK_DEVICE_STATE", P.NONE, (P.RESULT,), R.ALWAYS, _p(PF.DEVICE_STATE)),
    _fe(44, "GET_SHMEM_CONFIG", P.NONE, (P.SHMEM_CONFIG,), R.ALWAYS, _p(PF.SHMEM)),
    _fe(
        45,
        "GET_VRING_BASE_SKIP_DRAIN",
        P.VRING_STATE,
        (P.VRING_BASE,),
        R.ALWAYS,
        _p(PF.GET_VRING_BASE_SKIP_DRAIN),
        note="stops the ring without draining in-flight requests",
    ),
)

BACKEND_MESSAGES: tuple[Message, ...] = (
    _be(1, "IOTLB_MSG", P.IOTLB, _ACK, R.ACK, Gate(virtio=F_IOMMU_PLATFORM), old_name="SLAVE_IOTLB_MSG"),
    _be(2, "CONFIG_CHANGE_MSG", P.NONE, _ACK, R.ACK, _p(PF.CONFIG), old_name="SLAVE_CONFIG_CHANGE_MSG"),
    _be(
        3,
        "VRING_HOST_NOTIFIER_MSG",
        P.VRING_AREA,
        _ACK,
        R.ACK,
        _p(PF.HOST_NOTIFIER),
        request_fds=F.UNLESS_NOFD,
        old_name="SLAVE_VRING_HOST_NOTIFIER_MSG",
    ),
    _be(4, "VRING_CALL", P.VRING_STATE, _ACK, R.ACK, _p(PF.INBAND_NOTIFICATIONS), old_name="SLAVE_VRING_CALL"),
    _be(5, "VRING_ERR", P.VRING_STATE, _ACK, R.ACK, _p(PF.INBAND_NOTIFICATIONS), old_name="SLAVE_VRING_ERR"),
    _be(6, "SHARED_OBJECT_ADD", P.SHARED_OBJECT, _ACK, R.ACK, _p(PF.SHARED_OBJECT)),
    _be(7, "SHARED_OBJECT_REMOVE", P.SHARED_OBJECT, _ACK, R.ACK, _p(PF.SHARED_OBJECT)),
    _be(
        8,
        "SHARED_OBJECT_LOOKUP",
        P.SHARED_OBJECT,
        (P.RESULT,),
        R.ALWAYS,
        _p(PF.SHARED_OBJECT),
        reply_fds=F.OPTIONAL,
        note="dma-buf FD on success",
    ),
    _be(9, "SHMEM_MAP", P.MMAP, _ACK, R.ACK, _p(PF.SHMEM), request_fds=F.ONE),
    _be(10, "SHMEM_UNMAP", P.MMAP, _ACK, R.ACK, _p(PF.SHMEM)),
)

MESSAGES: dict[Channel, dict[int, Message]] = {
    Channel.MAIN: {m.id: m for m in FRONTEND_MESSAGES},
    Channel.BACKEND: {m.id: m for m in BACKEND_MESSAGES},
}
"""Message facts by channel and request id."""

BY_NAME: dict[Channel, dict[str, Message]] = {
    channel: {m.name: m for m in table.values()} for channel, table in MESSAGES.items()
}


def lookup(channel: Channel | str, request_id: int) -> Message | None:
    """The facts for a request id on a channel, or None for an id the spec does not define."""
    return MESSAGES[Channel(channel)].get(request_id)


def by_name(channel: Channel | str, name: str) -> Message:
    """The facts for a message name (with or without the VHOST_USER_ / VHOST_USER_BACKEND_ prefix)."""
    for prefix in ("VHOST_USER_BACKEND_", "VHOST_USER_"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return BY_NAME[Channel(channel)][name]


def feature_names(value: int, names: dict[int, str]) -> list[str]:
    """Names of the set bits of a feature word; unknown bits appear as ``bit<N>``."""
    return [names.get(bit, f"bit{bit}") for bit in range(64) if value >> bit & 1]


PROTOCOL_FEATURE_NAMES: dict[int, str] = {f.value: f.name for f in ProtocolFeature}


def flag_names(value: int, names: dict[int, str]) -> list[str]:
    """Names of the set bits of a bit-mask whose table is keyed by mask; unknown masks as hex."""
    out = [name for mask, name in names.items() if value & mask]
    rest = value & ~sum(names)
    if rest:
        out.append(hex(rest))
    return out
