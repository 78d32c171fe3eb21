"""Capture files for the TUI tests: a QEMU-like migration recorded on both sides, written by the real writer.

Messages are encoded with ``dissectors.encode`` and stored with ``CaptureWriter``; timestamps are
fixed (a start time plus fixed steps) so screenshots are the same on every run. The source side
negotiates, starts two rings, runs, turns dirty logging on, stops the rings, saves its device state
through the proxy's pipe and checks it; the destination negotiates, loads that state and starts.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from dissectors.encode import encode
from dissectors.spec import F_LOG_ALL, VHOST_VRING_F_LOG
from vutrace.capture.model import CaptureRecord, FdAction, FdInfo, FdKind, RecordChannel, RecordKind
from vutrace.capture.pcapng import CaptureWriter

START_NS = 1_800_000_000_000_000_000
STEP_NS = 50_000
FEATURES = 0x1_7400_0000
"""GET_FEATURES reply: VERSION_1, PROTOCOL_FEATURES, EVENT_IDX, INDIRECT_DESC, LOG_ALL."""
PROTOCOL = 0x8_A62B
"""Protocol features: MQ, LOG_SHMFD, REPLY_ACK, BACKEND_REQ, CONFIG, BACKEND_SEND_FD, RESET_DEVICE,
CONFIGURE_MEM_SLOTS, DEVICE_STATE (not STATUS: the GET_STATUS of ``running`` is the checker's one finding per side)."""
GUEST_FEATURES = 0x1_5000_0000
STATE = bytes(range(256)) * 48
"""12 KiB of device state, sent as three chunks."""
EVENTFD = FdInfo(FdKind.EVENTFD, fd=21, target="anon_inode:[eventfd]")
MEMFD = FdInfo(FdKind.MEMFD, fd=22, size=512 << 20, memfd_name="pc.ram", target="/memfd:pc.ram (deleted)")
SOCKET = FdInfo(FdKind.SOCKET, FdAction.SUBSTITUTED, fd=23, target="socket:[1]")
PIPE = FdInfo(FdKind.PIPE, FdAction.SUBSTITUTED, fd=24, target="pipe:[2]")


class Recording:
    """The records of one side, one connection, with timestamps advancing by ``STEP_NS``."""

    def __init__(self, conn: int = 1, start_ns: int = START_NS) -> None:
        self.conn = conn
        self.ts = start_ns
        self.records: list[CaptureRecord] = []

    def _add(self, kind: RecordKind, channel: RecordChannel, sender: str, **fields: object) -> None:
        self.ts += STEP_NS
        self.records.append(CaptureRecord(kind, self.ts, self.conn, channel, sender, **fields))  # type: ignore[arg-type]

    def request(self, name: str, *, fds: tuple[FdInfo, ...] = (), need_reply: bool = False, **fields: object) -> None:
        data = encode(name, need_reply=need_reply, **fields)
        self._add(RecordKind.MESSAGE, RecordChannel.MAIN, "frontend", data=data, fds=fds, length=len(data))

    def reply(self, name: str, *, fds: tuple[FdInfo, ...] = (), **fields: object) -> None:
        data = encode(name, reply=True, **fields)
        self._add(RecordKind.MESSAGE, RecordChannel.MAIN, "backend", data=data, fds=fds, length=len(data))

    def backend_request(self, name: str, *, need_reply: bool = False, **fields: object) -> None:
        data = encode(name, "backend", need_reply=need_reply, **fields)
        self._add(RecordKind.MESSAGE, RecordChannel.BACKEND, "backend", data=data, length=len(data))

    def backend_reply(self, name: str, **fields: object) -> None:
        data = encode(name, "backend", reply=True, **fields)
        self._add(RecordKind.MESSAGE, RecordChannel.BACKEND, "frontend", data=data, length=len(data))

    def event(self, name: str, stream: int = 0, **attrs: object) -> None:
        self._add(RecordKind.EVENT, RecordChannel.EVENT, "proxy", event=name, attrs=attrs, stream=stream)

    def chunk(self, data: bytes, offset: int, sender: str) -> None:
        self._add(
            RecordKind.STATE_CHUNK, RecordChannel.STATE, sender, data=data, offset=offset, length=len(data), stream=1
        )


def handshake(r: Recording) -> None:
    r.event("accept", side="frontend", path="/tmp/vutrace-front.sock")
    r.event("connect", side="backend", path="/run/virtiofsd.sock")
    r.request("GET_FEATURES")
    r.reply("GET_FEATURES", features=FEATURES)
    r.request("GET_PROTOCOL_FEATURES")
    r.reply("GET_PROTOCOL_FEATURES", protocol_features=PROTOCOL)
    r.request("SET_PROTOCOL_FEATURES", protocol_features=PROTOCOL)
    r.request("GET_QUEUE_NUM")
    r.reply("GET_QUEUE_NUM", queue_num=2)
    r.request("SET_BACKEND_REQ_FD", fds=(SOCKET,), need_reply=True)
    r.event("backend_channel_open", frontend_fd="socket")
    r.reply("SET_BACKEND_REQ_FD", result=0)
    r.request("SET_OWNER")
    for vq in range(2):
        r.request("SET_VRING_CALL", fds=(EVENTFD,), need_reply=True, vring=vq, nofd=False)
        r.reply("SET_VRING_CALL", result=0)


def device_start(r: Recording, bases: tuple[int, int] = (0, 0)) -> None:
    r.request("SET_FEATURES", features=GUEST_FEATURES)
    r.request(
        "SET_MEM_TABLE",
        fds=(MEMFD, MEMFD),
        need_reply=True,
        regions=[(0, 0x8000_0000, 0x7F00_0000_0000, 0), (0x1_0000_0000, 0x4000_0000, 0x7F80_0000_0000, 0x8000_0000)],
    )
    r.reply("SET_MEM_TABLE", result=0)
    for vq, base in enumerate(bases):
        r.request("SET_VRING_NUM", vring=vq, num=256)
        r.request("SET_VRING_BASE", vring=vq, num=base)
        r.request(
            "SET_VRING_ADDR",
            vring=vq,
            desc_addr=0x10000 * (vq + 1),
            used_addr=0x10000 * (vq + 1) + 0x2000,
            avail_addr=0x10000 * (vq + 1) + 0x1000,
        )
        r.request("SET_VRING_KICK", fds=(EVENTFD,), vring=vq, nofd=False)
    for vq in range(2):
        r.request("SET_VRING_ENABLE", need_reply=True, vring=vq, num=1)
        r.reply("SET_VRING_ENABLE", result=0)


def running(r: Recording) -> None:
    r.backend_request("CONFIG_CHANGE_MSG", need_reply=True)
    r.backend_reply("CONFIG_CHANGE_MSG", result=0)
    r.request("GET_STATUS")
    r.reply("GET_STATUS", status=0xF)


def source_migration(r: Recording) -> None:
    r.request("SET_LOG_BASE", fds=(MEMFD,), log_size=0x4000, log_offset=0)
    r.reply("SET_LOG_BASE", log_size=0x4000, log_offset=0)
    r.request("SET_FEATURES", need_reply=True, features=GUEST_FEATURES | 1 << F_LOG_ALL)
    r.reply("SET_FEATURES", result=0)
    r.request("SET_VRING_ADDR", vring=0, addr_flags=VHOST_VRING_F_LOG, desc_addr=0x10000, log_addr=0x12000)
    for vq in range(2):
        r.request("SET_VRING_ENABLE", need_reply=True, vring=vq, num=0)
        r.reply("SET_VRING_ENABLE", result=0)
    for vq, base in enumerate((17, 42)):
        r.request("GET_VRING_BASE", vring=vq, num=0)
        r.reply("GET_VRING_BASE", vring=vq, num=base)
    transfer(r, direction=0)
    r.event("disconnect", reason="eof")


def transfer(r: Recording, direction: int) -> None:
    r.request("SET_DEVICE_STATE_FD", fds=(PIPE,), direction=direction, phase=0)
    r.reply("SET_DEVICE_STATE_FD", state_error=0, nofd=True)
    label = "SAVE" if direction == 0 else "LOAD"
    writer = "backend" if direction == 0 else "frontend"
    r.event("state_open", stream=1, direction=label, provider="frontend", writer=writer)
    for offset in range(0, len(STATE), 4096):
        r.chunk(STATE[offset : offset + 4096], offset, writer)
    r.event(
        "state_close",
        stream=1,
        direction=label,
        provider="frontend",
        writer=writer,
        bytes=len(STATE),
        chunks=len(STATE) // 4096,
        sha256=hashlib.sha256(STATE).hexdigest(),
        reason="eof",
    )
    r.request("CHECK_DEVICE_STATE")
    r.reply("CHECK_DEVICE_STATE", result=0)


def source_records() -> list[CaptureRecord]:
    r = Recording()
    handshake(r)
    device_start(r)
    running(r)
    source_migration(r)
    return r.records


def destination_records() -> list[CaptureRecord]:
    r = Recording(start_ns=START_NS + 40 * STEP_NS)
    handshake(r)
    r.request("SET_FEATURES", features=GUEST_FEATURES)
    transfer(r, direction=1)
    device_start(r, bases=(17, 42))
    running(r)
    return r.records


def write(path: Path, records: list[CaptureRecord]) -> Path:
    with CaptureWriter(path, socket_path="/run/virtiofsd.sock") as writer:
        for record in records:
            writer.write(record)
    return path
