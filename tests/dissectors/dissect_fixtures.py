"""Hand-written wire bytes for every message id, request and reply, on both channels.

Written from the payload layouts of the spec (vhost-user.rst §Payload) and the
values real peers send (QEMU 10.0.2, virtiofsd 1.13.2, DPDK 22.11, observed with
strace), not produced by the encoder. Every integer is little-endian. Each hex
literal is cut at field boundaries, with a comment naming the fields.
"""

from __future__ import annotations

from typing import NamedTuple


class Fixture(NamedTuple):
    channel: str
    name: str
    is_reply: bool
    hex: str
    fields: dict[str, object]
    nfds: int = 0
    warning: str | None = None
    note: str = ""

    @property
    def raw(self) -> bytes:
        return bytes.fromhex(self.hex)

    @property
    def label(self) -> str:
        return f"{self.channel}:{self.name}:{'reply' if self.is_reply else 'request'}:{self.note or 'usual'}"


REQ = "01000000"  # flags: version 1
NEED = "09000000"  # flags: version 1 | NEED_REPLY
REPLY = "05000000"  # flags: version 1 | REPLY
ACK_OK = "08000000 0000000000000000"  # size 8, u64 result 0
UUID = "b1ce1b5f 0a66 4a47 9d6a 4c6a7c1fbf3e"  # b1ce1b5f-0a66-4a47-9d6a-4c6a7c1fbf3e, RFC 4122 byte order
UUID_BYTES = bytes.fromhex(UUID)
OK = {"result": 0}


def ack(channel: str, name: str, request_id: str) -> Fixture:
    """The u64 0 reply REPLY_ACK (or an always-reply message) sends for success."""
    return Fixture(channel, name, True, f"{request_id} {REPLY} {ACK_OK}", OK)


MAIN: list[Fixture] = [
    Fixture("main", "GET_FEATURES", False, f"01000000 {REQ} 00000000", {}),
    Fixture(
        "main",
        "GET_FEATURES",
        True,
        f"01000000 {REPLY} 08000000"
        "00000074 01000000",  # features: LOG_ALL, INDIRECT_DESC, EVENT_IDX, PROTOCOL_FEATURES, VERSION_1
        {"features": 0x1_7400_0000},
        note="virtiofsd 1.13",
    ),
    Fixture(
        "main",
        "GET_FEATURES",
        True,
        f"01000000 {REPLY} 08000000 cbe7667c 0d000000",  # features 0xd7c66e7cb
        {"features": 0xD_7C66_E7CB},
        note="DPDK 22.11 vhost",
    ),
    Fixture(
        "main",
        "SET_FEATURES",
        False,
        f"02000000 {NEED} 08000000 00000074 01000000",  # features with LOG_ALL (migration start)
        {"features": 0x1_7400_0000, "need_reply": True},
    ),
    ack("main", "SET_FEATURES", "02000000"),
    Fixture("main", "SET_OWNER", False, f"03000000 {REQ} 00000000", {}),
    ack("main", "SET_OWNER", "03000000"),
    Fixture("main", "RESET_OWNER", False, f"04000000 {REQ} 00000000", {}),
    ack("main", "RESET_OWNER", "04000000"),
    Fixture(
        "main",
        "SET_MEM_TABLE",
        False,
        f"05000000 {NEED} 28000000"
        "01000000 00000000"  # num_regions 1, padding
        "000000403c7f0000"  # guest_addr 0x7f3c40000000 (DPDK virtio-user: GPA = its VA)
        "0000001000000000"  # region_size 256 MiB
        "000000403c7f0000"  # user_addr
        "0000000000000000",  # mmap_offset
        {"num_regions": 1, "regions": ((0x7F3C_4000_0000, 0x1000_0000, 0x7F3C_4000_0000, 0),)},
        nfds=1,
        note="DPDK virtio-user",
    ),
    ack("main", "SET_MEM_TABLE", "05000000"),
    Fixture(
        "main",
        "SET_MEM_TABLE",
        True,
        f"05000000 {REPLY} 28000000"
        "01000000 00000000"  # num_regions 1, padding
        "0000000000000000 0000002000000000"  # guest_addr 0, region_size 512 MiB
        "000000005a7f0000 0000000000000000",  # user_addr = back-end's mapping base 0x7f5a00000000, mmap_offset 0
        {"num_regions": 1, "regions": ((0, 0x2000_0000, 0x7F5A_0000_0000, 0),)},
        note="postcopy bases",
    ),
    Fixture(
        "main",
        "SET_MEM_TABLE",
        False,
        f"05000000 {REQ} 08000000 0000000000000000",  # QEMU's postcopy ack: u64 0 = zero regions
        {"num_regions": 0, "regions": ()},
        note="postcopy ack",
    ),
    Fixture(
        "main",
        "SET_LOG_BASE",
        False,
        f"06000000 {REQ} 10000000"
        "0040000000000000"  # log_size 16 KiB
        "0000000000000000",  # log_offset 0
        {"log_size": 0x4000, "log_offset": 0},
        nfds=1,
        note="QEMU 16-byte log description",
    ),
    Fixture("main", "SET_LOG_BASE", True, f"06000000 {REPLY} {ACK_OK}", OK, note="u64 reply"),
    Fixture(
        "main",
        "SET_LOG_BASE",
        True,
        f"06000000 {REPLY} 10000000 0040000000000000 0000000000000000",  # echo of the request payload
        {"log_size": 0x4000, "log_offset": 0},
        note="virtiofsd echoes 16 bytes",
    ),
    Fixture("main", "SET_LOG_FD", False, f"07000000 {REQ} 00000000", {}, nfds=1),
    ack("main", "SET_LOG_FD", "07000000"),
    Fixture(
        "main", "SET_VRING_NUM", False, f"08000000 {REQ} 08000000 00000000 80000000", {"vring": 0, "num": 128}
    ),  # ring 0, 128 entries
    ack("main", "SET_VRING_NUM", "08000000"),
    Fixture(
        "main",
        "SET_VRING_ADDR",
        False,
        f"09000000 {NEED} 28000000"
        "01000000 01000000"  # vring 1, addr_flags VHOST_VRING_F_LOG
        "00a0c8015a7f0000"  # desc_addr 0x7f5a01c8a000
        "00b0c8015a7f0000"  # used_addr 0x7f5a01c8b000
        "00a8c8015a7f0000"  # avail_addr 0x7f5a01c8a800
        "00b0c80100000000",  # log_addr (guest-physical) 0x1c8b000
        {
            "vring": 1,
            "addr_flags": 1,
            "desc_addr": 0x7F5A_01C8_A000,
            "used_addr": 0x7F5A_01C8_B000,
            "avail_addr": 0x7F5A_01C8_A800,
            "log_addr": 0x1C8_B000,
        },
    ),
    ack("main", "SET_VRING_ADDR", "09000000"),
    Fixture(
        "main", "SET_VRING_BASE", False, f"0a000000 {REQ} 08000000 00000000 2a000000", {"vring": 0, "num": 42}
    ),  # destination restarts ring 0 at the source's index 42
    ack("main", "SET_VRING_BASE", "0a000000"),
    Fixture(
        "main", "GET_VRING_BASE", False, f"0b000000 {REQ} 08000000 01000000 00000000", {"vring": 1, "num": 0}
    ),  # num reserved
    Fixture(
        "main", "GET_VRING_BASE", True, f"0b000000 {REPLY} 08000000 01000000 2a000000", {"vring": 1, "num": 42}
    ),  # split ring: next avail index 42
    Fixture(
        "main",
        "GET_VRING_BASE",
        True,
        f"0b000000 {REPLY} 08000000 01000000"
        "03800580",  # packed: avail idx 3 + wrap (0x8003), used idx 5 + wrap (0x8005)
        {"vring": 1, "num": 0x8005_8003},
        note="packed ring",
    ),
    Fixture(
        "main",
        "SET_VRING_KICK",
        False,
        f"0c000000 {REQ} 08000000 0000000000000000",  # ring 0, FD attached
        {"u64": 0, "vring": 0, "nofd": False},
        nfds=1,
    ),
    Fixture(
        "main",
        "SET_VRING_KICK",
        False,
        f"0c000000 {REQ} 08000000 0101000000000000",  # ring 1, bit 8: no FD (polling)
        {"u64": 0x101, "vring": 1, "nofd": True},
        note="no fd",
    ),
    ack("main", "SET_VRING_KICK", "0c000000"),
    Fixture(
        "main",
        "SET_VRING_CALL",
        False,
        f"0d000000 {REQ} 08000000 0100000000000000",  # ring 1, FD attached
        {"u64": 1, "vring": 1, "nofd": False},
        nfds=1,
    ),
    ack("main", "SET_VRING_CALL", "0d000000"),
    Fixture(
        "main",
        "SET_VRING_ERR",
        False,
        f"0e000000 {REQ} 08000000 0000000000000000",
        {"u64": 0, "vring": 0, "nofd": False},
        nfds=1,
    ),
    ack("main", "SET_VRING_ERR", "0e000000"),
    Fixture("main", "GET_PROTOCOL_FEATURES", False, f"0f000000 {REQ} 00000000", {}),
    Fixture(
        "main",
        "GET_PROTOCOL_FEATURES",
        True,
        f"0f000000 {REPLY} 08000000"
        # MQ LOG_SHMFD REPLY_ACK BACKEND_REQ BACKEND_SEND_FD RESET_DEVICE CONFIGURE_MEM_SLOTS DEVICE_STATE
        "2ba4080000000000",
        {"protocol_features": 0x8A42B},
        note="virtiofsd 1.13",
    ),
    Fixture(
        "main",
        "SET_PROTOCOL_FEATURES",
        False,
        f"10000000 {REQ} 08000000 2ba4080000000000",  # QEMU 10.0.2 acks all of virtiofsd's
        {"protocol_features": 0x8A42B},
    ),
    ack("main", "SET_PROTOCOL_FEATURES", "10000000"),
    Fixture("main", "GET_QUEUE_NUM", False, f"11000000 {REQ} 00000000", {}),
    Fixture("main", "GET_QUEUE_NUM", True, f"11000000 {REPLY} 08000000 0200000000000000", {"queue_num": 2}),
    Fixture(
        "main", "SET_VRING_ENABLE", False, f"12000000 {NEED} 08000000 01000000 01000000", {"vring": 1, "num": 1}
    ),  # ring 1 enable
    ack("main", "SET_VRING_ENABLE", "12000000"),
    Fixture(
        "main", "SEND_RARP", False, f"13000000 {REQ} 08000000 525400123456 0000", {"mac": 0x5634_1200_5452}
    ),  # MAC 52:54:00:12:34:56, 2 bytes unused
    ack("main", "SEND_RARP", "13000000"),
    Fixture("main", "NET_SET_MTU", False, f"14000000 {NEED} 08000000 dc05000000000000", {"mtu": 1500}),
    ack("main", "NET_SET_MTU", "14000000"),
    Fixture("main", "SET_BACKEND_REQ_FD", False, f"15000000 {NEED} 00000000", {}, nfds=1),
    ack("main", "SET_BACKEND_REQ_FD", "15000000"),
    Fixture(
        "main",
        "IOTLB_MSG",
        False,
        f"16000000 {NEED} 20000000"
        "0010000000000000 0010000000000000"  # iova 0x1000, iotlb_size 0x1000
        "001000005a7f0000"  # uaddr 0x7f5a00001000
        "03 02 000000000000",  # perm RW, iotlb_type UPDATE, 6 bytes C struct padding
        {"iova": 0x1000, "iotlb_size": 0x1000, "uaddr": 0x7F5A_0000_1000, "perm": 3, "iotlb_type": 2},
        note="32-byte padded struct",
    ),
    ack("main", "IOTLB_MSG", "16000000"),
    Fixture(
        "main", "SET_VRING_ENDIAN", False, f"17000000 {REQ} 08000000 00000000 01000000", {"vring": 0, "num": 1}
    ),  # ring 0 big-endian
    ack("main", "SET_VRING_ENDIAN", "17000000"),
    Fixture(
        "main",
        "GET_CONFIG",
        False,
        f"18000000 {REQ} 14000000"
        "00000000 08000000 00000000"  # config_offset 0, config_size 8, config_flags 0
        "0000000000000000",  # 8 bytes (zero) to be filled by the back-end
        {"config_offset": 0, "config_size": 8, "config_flags": 0, "config_data": bytes(8)},
    ),
    Fixture(
        "main",
        "GET_CONFIG",
        True,
        f"18000000 {REPLY} 14000000 00000000 08000000 00000000"
        "0000200000000000",  # virtio-blk capacity: 0x200000 sectors (1 GiB)
        {"config_offset": 0, "config_size": 8, "config_flags": 0, "config_data": bytes.fromhex("0000200000000000")},
    ),
    Fixture(
        "main",
        "GET_CONFIG",
        True,
        f"18000000 {REPLY} 00000000",  # 0-byte payload: the back-end's error report
        {},
        warning="back-end reported an error (0-byte GET_CONFIG reply)",
        note="error reply",
    ),
    Fixture(
        "main",
        "SET_CONFIG",
        False,
        f"19000000 {REQ} 0d000000"
        "20000000 01000000 00000000"  # config_offset 0x20 (virtio-blk writeback), config_size 1, config_flags 0
        "01",
        {"config_offset": 0x20, "config_size": 1, "config_flags": 0, "config_data": b"\x01"},
    ),
    ack("main", "SET_CONFIG", "19000000"),
    Fixture(
        "main",
        "CREATE_CRYPTO_SESSION",
        False,
        f"1a000000 {REQ} 18000000"
        "0200000000000000"  # op_code 2 (VIRTIO_CRYPTO_CIPHER_CREATE_SESSION)
        "0102030405060708"  # setup data (opaque; shortened)
        "ffffffffffffffff",  # session_id -1 (filled in by the back-end)
        {"op_code": 2, "crypto_setup": bytes(range(1, 9)), "session_id": -1},
    ),
    Fixture(
        "main",
        "CREATE_CRYPTO_SESSION",
        True,
        f"1a000000 {REPLY} 18000000 0200000000000000 01020304050607080700000000000000",  # session_id 7
        {"op_code": 2, "crypto_setup": bytes(range(1, 9)), "session_id": 7},
    ),
    Fixture("main", "CLOSE_CRYPTO_SESSION", False, f"1b000000 {REQ} 08000000 0700000000000000", {"session_id": 7}),
    ack("main", "CLOSE_CRYPTO_SESSION", "1b000000"),
    Fixture("main", "POSTCOPY_ADVISE", False, f"1c000000 {REQ} 00000000", {}),
    Fixture("main", "POSTCOPY_ADVISE", True, f"1c000000 {REPLY} 00000000", {}, nfds=1),  # userfaultfd only
    Fixture("main", "POSTCOPY_LISTEN", False, f"1d000000 {NEED} 00000000", {}),
    ack("main", "POSTCOPY_LISTEN", "1d000000"),
    Fixture("main", "POSTCOPY_END", False, f"1e000000 {NEED} 00000000", {}),
    ack("main", "POSTCOPY_END", "1e000000"),
    Fixture(
        "main",
        "GET_INFLIGHT_FD",
        False,
        f"1f000000 {REQ} 18000000"
        "0000000000000000 0000000000000000"  # mmap_size 0, mmap_offset 0 (asked of the back-end)
        "0100 8000 00000000",  # num_queues 1, queue_size 128, 4 bytes padding
        {"mmap_size": 0, "mmap_offset": 0, "num_queues": 1, "queue_size": 128},
        note="24-byte padded struct",
    ),
    Fixture(
        "main",
        "GET_INFLIGHT_FD",
        True,
        f"1f000000 {REPLY} 18000000"
        "0020000000000000 0000000000000000"  # mmap_size 0x2000, mmap_offset 0
        "0100 8000 00000000",
        {"mmap_size": 0x2000, "mmap_offset": 0, "num_queues": 1, "queue_size": 128},
        nfds=1,
    ),
    Fixture(
        "main",
        "SET_INFLIGHT_FD",
        False,
        f"20000000 {REQ} 18000000 0020000000000000 0000000000000000 0100 8000 00000000",
        {"mmap_size": 0x2000, "mmap_offset": 0, "num_queues": 1, "queue_size": 128},
        nfds=1,
    ),
    ack("main", "SET_INFLIGHT_FD", "20000000"),
    Fixture("main", "GPU_SET_SOCKET", False, f"21000000 {REQ} 00000000", {}, nfds=1),
    ack("main", "GPU_SET_SOCKET", "21000000"),
    Fixture("main", "RESET_DEVICE", False, f"22000000 {REQ} 00000000", {}),
    ack("main", "RESET_DEVICE", "22000000"),
    Fixture("main", "VRING_KICK", False, f"23000000 {REQ} 08000000 01000000 00000000", {"vring": 1, "num": 0}),
    ack("main", "VRING_KICK", "23000000"),
    Fixture("main", "GET_MAX_MEM_SLOTS", False, f"24000000 {REQ} 00000000", {}),
    Fixture("main", "GET_MAX_MEM_SLOTS", True, f"24000000 {REPLY} 08000000 fd01000000000000", {"max_mem_slots": 509}),
    Fixture(
        "main",
        "ADD_MEM_REG",
        False,
        f"25000000 {NEED} 28000000"
        "0000000000000000"  # padding
        "0000000000000000 0000002000000000"  # guest_addr 0, region_size 512 MiB
        "000000005a7f0000 0000000000000000",  # user_addr 0x7f5a00000000, mmap_offset 0
        {"guest_addr": 0, "region_size": 0x2000_0000, "user_addr": 0x7F5A_0000_0000, "mmap_offset": 0},
        nfds=1,
        note="QEMU 10 with virtiofsd",
    ),
    Fixture(
        "main",
        "ADD_MEM_REG",
        False,
        f"25000000 {NEED} 30000000 0000000000000000"
        "0000000000000000 0000002000000000 000000005a7f0000 0000000000000000"
        "01010000 03000000",  # xen_flags FOREIGN | MAP_ON_DEMAND, domid 3
        {"guest_addr": 0, "region_size": 0x2000_0000, "xen_flags": 0x101, "domid": 3},
        nfds=1,
        note="XEN_MMAP 48 bytes",
    ),
    Fixture(
        "main",
        "ADD_MEM_REG",
        False,
        f"25000000 {REQ} {ACK_OK}",  # QEMU's postcopy acknowledgement: u64 0, no FD
        OK,
        note="postcopy ack",
    ),
    ack("main", "ADD_MEM_REG", "25000000"),
    Fixture(
        "main",
        "ADD_MEM_REG",
        True,
        f"25000000 {REPLY} 28000000 0000000000000000"
        "0000000000000000 0000002000000000"
        "00000000127f0000 0000000000000000",  # user_addr = back-end's base 0x7f1200000000
        {"guest_addr": 0, "region_size": 0x2000_0000, "user_addr": 0x7F12_0000_0000, "mmap_offset": 0},
        note="postcopy base",
    ),
    Fixture(
        "main",
        "REM_MEM_REG",
        False,
        f"26000000 {NEED} 28000000 00000000000000000000000000000000 0000002000000000 000000005a7f0000 0000000000000000",
        {"guest_addr": 0, "region_size": 0x2000_0000, "user_addr": 0x7F5A_0000_0000, "mmap_offset": 0},
    ),
    ack("main", "REM_MEM_REG", "26000000"),
    Fixture(
        "main", "SET_STATUS", False, f"27000000 {NEED} 08000000 0b00000000000000", {"status": 0xB}
    ),  # ACKNOWLEDGE DRIVER FEATURES_OK (DPDK virtio-user)
    ack("main", "SET_STATUS", "27000000"),
    Fixture("main", "GET_STATUS", False, f"28000000 {REQ} 00000000", {}),
    Fixture("main", "GET_STATUS", True, f"28000000 {REPLY} 08000000 0f00000000000000", {"status": 0xF}),
    Fixture("main", "GET_SHARED_OBJECT", False, f"29000000 {REQ} 10000000 {UUID}", {"uuid": UUID_BYTES}),
    Fixture("main", "GET_SHARED_OBJECT", True, f"29000000 {REPLY} {ACK_OK}", OK, nfds=1),  # dma-buf FD
    Fixture(
        "main",
        "SET_DEVICE_STATE_FD",
        False,
        f"2a000000 {REQ} 08000000 00000000 00000000",  # direction SAVE, phase STOPPED
        {"direction": 0, "phase": 0},
        nfds=1,
    ),
    Fixture(
        "main",
        "SET_DEVICE_STATE_FD",
        False,
        f"2a000000 {REQ} 08000000 01000000 00000000",  # direction LOAD, phase STOPPED
        {"direction": 1, "phase": 0},
        nfds=1,
        note="load",
    ),
    Fixture(
        "main",
        "SET_DEVICE_STATE_FD",
        True,
        f"2a000000 {REPLY} 08000000 0001000000000000",  # 0x100: ok, no FD (virtiofsd uses QEMU's pipe)
        {"u64": 0x100, "state_error": 0, "nofd": True},
        note="virtiofsd 0x100",
    ),
    Fixture(
        "main",
        "SET_DEVICE_STATE_FD",
        True,
        f"2a000000 {REPLY} 08000000 0000000000000000",  # 0x0: ok, back-end returns its own FD
        {"u64": 0, "state_error": 0, "nofd": False},
        nfds=1,
        note="ok with fd",
    ),
    Fixture(
        "main",
        "SET_DEVICE_STATE_FD",
        True,
        f"2a000000 {REPLY} 08000000 0101000000000000",  # 0x101: error 1, no FD
        {"u64": 0x101, "state_error": 1, "nofd": True},
        note="error",
    ),
    Fixture("main", "CHECK_DEVICE_STATE", False, f"2b000000 {REQ} 00000000", {}),
    ack("main", "CHECK_DEVICE_STATE", "2b000000"),
    Fixture("main", "GET_SHMEM_CONFIG", False, f"2c000000 {REQ} 00000000", {}),
    Fixture(
        "main",
        "GET_SHMEM_CONFIG",
        True,
        f"2c000000 {REPLY} 08080000"  # size 2056
        "01000000 00000000"  # num_regions 1, padding
        "0000200000000000" + "0000000000000000" * 255,  # shm 0: 2 MiB  # shm 1-255 unused
        {"num_regions": 1, "shmem_sizes": (0x20_0000,) + (0,) * 255},
    ),
    Fixture(
        "main",
        "GET_VRING_BASE_SKIP_DRAIN",
        False,
        f"2d000000 {REQ} 08000000 00000000 00000000",
        {"vring": 0, "num": 0},
    ),
    Fixture(
        "main",
        "GET_VRING_BASE_SKIP_DRAIN",
        True,
        f"2d000000 {REPLY} 08000000 00000000 10000000",
        {"vring": 0, "num": 16},
    ),
]

BACKEND: list[Fixture] = [
    Fixture(
        "backend",
        "IOTLB_MSG",
        False,
        f"01000000 {NEED} 20000000"
        "0020000000000000 0000000000000000 0000000000000000"  # iova 0x2000, iotlb_size 0, uaddr 0
        "01 01 000000000000",  # perm RO, iotlb_type MISS, padding
        {"iova": 0x2000, "iotlb_size": 0, "uaddr": 0, "perm": 1, "iotlb_type": 1},
    ),
    ack("backend", "IOTLB_MSG", "01000000"),
    Fixture("backend", "CONFIG_CHANGE_MSG", False, f"02000000 {NEED} 00000000", {}),
    ack("backend", "CONFIG_CHANGE_MSG", "02000000"),
    Fixture(
        "backend",
        "VRING_HOST_NOTIFIER_MSG",
        False,
        f"03000000 {NEED} 18000000"
        "0100000000000000"  # u64: ring 1, FD attached
        "0010000000000000 0030000000000000",  # area_size 0x1000, area_offset 0x3000
        {"u64": 1, "vring": 1, "nofd": False, "area_size": 0x1000, "area_offset": 0x3000},
        nfds=1,
    ),
    Fixture(
        "backend",
        "VRING_HOST_NOTIFIER_MSG",
        False,
        f"03000000 {NEED} 18000000 0001000000000000 0000000000000000 0000000000000000",  # ring 0 de-registered
        {"u64": 0x100, "vring": 0, "nofd": True, "area_size": 0, "area_offset": 0},
        note="no fd",
    ),
    ack("backend", "VRING_HOST_NOTIFIER_MSG", "03000000"),
    Fixture("backend", "VRING_CALL", False, f"04000000 {NEED} 08000000 00000000 00000000", {"vring": 0, "num": 0}),
    ack("backend", "VRING_CALL", "04000000"),
    Fixture("backend", "VRING_ERR", False, f"05000000 {NEED} 08000000 01000000 00000000", {"vring": 1, "num": 0}),
    ack("backend", "VRING_ERR", "05000000"),
    Fixture("backend", "SHARED_OBJECT_ADD", False, f"06000000 {NEED} 10000000 {UUID}", {"uuid": UUID_BYTES}),
    ack("backend", "SHARED_OBJECT_ADD", "06000000"),
    Fixture("backend", "SHARED_OBJECT_REMOVE", False, f"07000000 {NEED} 10000000 {UUID}", {"uuid": UUID_BYTES}),
    Fixture(
        "backend",
        "SHARED_OBJECT_REMOVE",
        True,
        f"07000000 {REPLY} 08000000 0100000000000000",  # 1: not the owner (QEMU)
        {"result": 1},
    ),
    Fixture("backend", "SHARED_OBJECT_LOOKUP", False, f"08000000 {REQ} 10000000 {UUID}", {"uuid": UUID_BYTES}),
    Fixture("backend", "SHARED_OBJECT_LOOKUP", True, f"08000000 {REPLY} {ACK_OK}", OK, nfds=1),  # dma-buf FD
    Fixture(
        "backend",
        "SHMEM_MAP",
        False,
        f"09000000 {NEED} 28000000"
        "00 00000000000000"  # shmid 0, 7 bytes padding
        "0000000000000000 0010000000000000"  # fd_offset 0, shm_offset 0x1000
        "0020000000000000 0100000000000000",  # mmap_len 0x2000, mmap_flags RW
        {"shmid": 0, "fd_offset": 0, "shm_offset": 0x1000, "mmap_len": 0x2000, "mmap_flags": 1},
        nfds=1,
    ),
    ack("backend", "SHMEM_MAP", "09000000"),
    Fixture(
        "backend",
        "SHMEM_UNMAP",
        False,
        f"0a000000 {NEED} 28000000 00 00000000000000 0000000000000000 0010000000000000"
        "0020000000000000 0000000000000000",  # mmap_len 0x2000, mmap_flags 0
        {"shmid": 0, "fd_offset": 0, "shm_offset": 0x1000, "mmap_len": 0x2000, "mmap_flags": 0},
    ),
    ack("backend", "SHMEM_UNMAP", "0a000000"),
]

FIXTURES: list[Fixture] = MAIN + BACKEND
