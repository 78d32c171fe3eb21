"""Build capture files for the analysis tests from real message bytes, written by the real writer.

A ``Conversation`` collects capture records of one connection the way the proxy records them
(messages encoded with ``dissectors.encode``, FD metadata, proxy events, device-state chunks);
``write`` stores them with ``CaptureWriter`` and returns ``vutrace.load``'s DataFrame. The
``qemu_*`` helpers follow QEMU 10 + virtiofsd 1.13 as observed on the wire (docs: the message
orders in docs/analysis.md), so a test starts from a conforming migration and changes one thing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from dissectors.encode import encode
from dissectors.spec import F_LOG_ALL, VHOST_VRING_F_LOG, ProtocolFeature
from vutrace.analysis.checks import Finding
from vutrace.analysis.frame import Capture
from vutrace.capture.model import CaptureRecord, FdAction, FdInfo, FdKind, RecordChannel, RecordKind
from vutrace.capture.pcapng import CaptureWriter
from vutrace.loader import load

VIRTIOFSD_FEATURES = 0x174000000
"""GET_FEATURES reply of virtiofsd 1.13: VERSION_1, PROTOCOL_FEATURES, EVENT_IDX, INDIRECT_DESC, LOG_ALL."""
VIRTIOFSD_PROTOCOL = 0x8A42B
"""GET_PROTOCOL_FEATURES reply of virtiofsd 1.13 (with REPLY_ACK, BACKEND_REQ, DEVICE_STATE), acked by QEMU."""
GUEST_FEATURES = 0x150000000
"""What the guest driver acks (VERSION_1, PROTOCOL_FEATURES, INDIRECT_DESC)."""
STEP_NS = 20_000
START_NS = 1_790_000_000_000_000_000

EVENTFD = FdInfo(FdKind.EVENTFD, target="anon_inode:[eventfd]")
MEMFD = FdInfo(FdKind.MEMFD, size=512 << 20, memfd_name="mem", target="/memfd:mem (deleted)")
SOCKET = FdInfo(FdKind.SOCKET, FdAction.SUBSTITUTED, target="socket:[1]")
PIPE = FdInfo(FdKind.PIPE, FdAction.SUBSTITUTED, target="pipe:[2]")


class Conversation:
    """The records of one capture, built message by message with advancing timestamps."""

    def __init__(self, conn: int = 1, start_ns: int = START_NS) -> None:
        self.conn = conn
        self.ts = start_ns
        self.records: list[CaptureRecord] = []
        self.streams = 0
        self.reply_ack = True
        """Whether REPLY_ACK was negotiated: QEMU then sets NEED_REPLY where it waits, else sends GET_FEATURES."""

    def tick(self, ns: int = STEP_NS) -> int:
        self.ts += ns
        return self.ts

    def message(
        self, data: bytes, sender: str, channel: str = "main", fds: tuple[FdInfo, ...] = (), late_fds: int = 0
    ) -> None:
        """A message; ``late_fds`` of its FDs came after the first byte of the header (the proxy counts them)."""
        self.records.append(
            CaptureRecord(
                RecordKind.MESSAGE,
                self.tick(),
                self.conn,
                RecordChannel(channel),
                sender,
                data,
                fds,
                length=len(data),
                late_fds=late_fds,
            )
        )

    def request(
        self,
        name: str,
        *,
        fds: tuple[FdInfo, ...] = (),
        need_reply: bool = False,
        late_fds: int = 0,
        **fields: object,
    ) -> None:
        """A front-end request on the main socket."""
        self.message(encode(name, need_reply=need_reply, **fields), "frontend", fds=fds, late_fds=late_fds)

    def reply(self, name: str, *, fds: tuple[FdInfo, ...] = (), late_fds: int = 0, **fields: object) -> None:
        """A back-end reply on the main socket."""
        self.message(encode(name, reply=True, **fields), "backend", fds=fds, late_fds=late_fds)

    def ack(self, name: str, result: int = 0) -> None:
        self.reply(name, result=result)

    def waited(self, name: str, *, fds: tuple[FdInfo, ...] = (), **fields: object) -> None:
        """A request QEMU waits for: NEED_REPLY and an ack with REPLY_ACK, else a GET_FEATURES barrier."""
        self.request(name, fds=fds, need_reply=self.reply_ack, **fields)
        if self.reply_ack:
            self.ack(name)
        else:
            self.request("GET_FEATURES")
            self.reply("GET_FEATURES", features=VIRTIOFSD_FEATURES)

    def acked(self, name: str, *, fds: tuple[FdInfo, ...] = (), **fields: object) -> None:
        """A request QEMU sends with NEED_REPLY when REPLY_ACK is negotiated (and does not wait for otherwise)."""
        self.request(name, fds=fds, need_reply=self.reply_ack, **fields)
        if self.reply_ack:
            self.ack(name)

    def backend_request(
        self, name: str, *, need_reply: bool = False, fds: tuple[FdInfo, ...] = (), late_fds: int = 0, **fields: object
    ) -> None:
        self.message(encode(name, "backend", need_reply=need_reply, **fields), "backend", "backend", fds, late_fds)

    def backend_reply(self, name: str, **fields: object) -> None:
        self.message(encode(name, "backend", reply=True, **fields), "frontend", "backend")

    def raw(self, data: bytes, sender: str = "frontend", fds: tuple[FdInfo, ...] = ()) -> None:
        self.message(data, sender, fds=fds)

    def event(self, name: str, stream: int = 0, **attrs: object) -> None:
        self.records.append(
            CaptureRecord(
                RecordKind.EVENT,
                self.tick(),
                self.conn,
                RecordChannel.EVENT,
                "proxy",
                event=name,
                attrs=attrs,
                stream=stream,
            )
        )

    def chunk(self, data: bytes, offset: int, sender: str, stream: int) -> None:
        self.records.append(
            CaptureRecord(
                RecordKind.STATE_CHUNK,
                self.tick(),
                self.conn,
                RecordChannel.STATE,
                sender,
                data,
                offset=offset,
                length=len(data),
                stream=stream,
            )
        )

    def write(self, path: Path, state_payload: str = "full") -> pd.DataFrame:
        with CaptureWriter(path, state_payload=state_payload, socket_path="/run/vfs.sock") as writer:
            for record in self.records:
                writer.write(record)
        return load(path)


def qemu_handshake(
    c: Conversation,
    *,
    nvq: int = 2,
    protocol: int = VIRTIOFSD_PROTOCOL,
    offered_protocol: int = VIRTIOFSD_PROTOCOL,
    offered: int = VIRTIOFSD_FEATURES,
) -> None:
    """QEMU's vhost_dev_init with virtiofsd: 1 15 16 17 36 21 3 1 (13 14) x nvq."""
    c.event("accept", side="frontend", path="/tmp/front.sock")
    c.event("connect", side="backend", path="/run/vfs.sock")
    c.request("GET_FEATURES")
    c.reply("GET_FEATURES", features=offered)
    c.request("GET_PROTOCOL_FEATURES")
    c.reply("GET_PROTOCOL_FEATURES", protocol_features=offered_protocol)
    c.request("SET_PROTOCOL_FEATURES", protocol_features=protocol)
    c.reply_ack = bool((protocol & offered_protocol) >> ProtocolFeature.REPLY_ACK & 1)
    c.request("GET_QUEUE_NUM")
    c.reply("GET_QUEUE_NUM", queue_num=2)
    c.request("GET_MAX_MEM_SLOTS")
    c.reply("GET_MAX_MEM_SLOTS", max_mem_slots=509)
    c.request("SET_BACKEND_REQ_FD", fds=(SOCKET,), need_reply=c.reply_ack)
    c.event("backend_channel_open", frontend_fd="socket")
    if c.reply_ack:
        c.ack("SET_BACKEND_REQ_FD")
    c.request("SET_OWNER")
    c.request("GET_FEATURES")
    c.reply("GET_FEATURES", features=offered)
    for vq in range(nvq):
        c.acked("SET_VRING_CALL", fds=(EVENTFD,), vring=vq, nofd=False)
        c.acked("SET_VRING_ERR", fds=(EVENTFD,), vring=vq, nofd=False)


def qemu_device_start(c: Conversation, *, bases: tuple[int, ...] = (0, 0), features: int = GUEST_FEATURES) -> None:
    """QEMU's vhost_dev_start: SET_FEATURES, ADD_MEM_REG, per ring NUM/BASE/ADDR/KICK, ENABLE, CALL."""
    c.request("SET_FEATURES", features=features)
    c.acked("ADD_MEM_REG", fds=(MEMFD,), guest_addr=0, region_size=512 << 20, user_addr=0x7F0000000000, mmap_offset=0)
    for vq, base in enumerate(bases):
        c.request("SET_VRING_NUM", vring=vq, num=128)
        c.request("SET_VRING_BASE", vring=vq, num=base)
        c.request(
            "SET_VRING_ADDR",
            vring=vq,
            addr_flags=0,
            desc_addr=0x1000 * (vq + 1),
            used_addr=0x1800 * (vq + 1),
            avail_addr=0x1400 * (vq + 1),
            log_addr=0,
        )
        c.request("SET_VRING_KICK", fds=(EVENTFD,), vring=vq, nofd=False)
    for vq in range(len(bases)):
        c.waited("SET_VRING_ENABLE", vring=vq, num=1)
    for vq in range(len(bases)):
        c.acked("SET_VRING_CALL", fds=(EVENTFD,), vring=vq, nofd=False)


def qemu_dirty_logging(c: Conversation, *, nvq: int = 2, features: int = GUEST_FEATURES) -> None:
    """Migration start: SET_LOG_BASE (LOG_SHMFD: fd and a reply), SET_FEATURES with LOG_ALL, SET_VRING_ADDR with LOG."""
    c.request("SET_LOG_BASE", fds=(MEMFD,), log_size=0x4000, log_offset=0)
    c.reply("SET_LOG_BASE", log_size=0x4000, log_offset=0)
    c.waited("SET_FEATURES", features=features | 1 << F_LOG_ALL)
    for vq in range(nvq):
        c.waited(
            "SET_VRING_ADDR",
            vring=vq,
            addr_flags=VHOST_VRING_F_LOG,
            desc_addr=0x1000 * (vq + 1),
            used_addr=0x1800 * (vq + 1),
            avail_addr=0x1400 * (vq + 1),
            log_addr=0x1800 * (vq + 1),
        )


def qemu_suspend(c: Conversation, bases: tuple[int, ...] = (5, 7)) -> None:
    """QEMU's vhost_dev_stop: SET_VRING_ENABLE 0, GET_VRING_BASE per ring (the replies carry the bases), CALL."""
    for vq in range(len(bases)):
        c.waited("SET_VRING_ENABLE", vring=vq, num=0)
    for vq, base in enumerate(bases):
        c.request("GET_VRING_BASE", vring=vq, num=0)
        c.reply("GET_VRING_BASE", vring=vq, num=base)
    for vq in range(len(bases)):
        c.acked("SET_VRING_CALL", fds=(EVENTFD,), vring=vq, nofd=False)


def state_stream(
    c: Conversation,
    state: bytes,
    direction: str,
    chunk: int = 4096,
    gap_ns: int = STEP_NS,
    *,
    provider: str = "frontend",
    close: bool = True,
) -> None:
    """The proxy's records of one device-state stream: state_open, the chunks, state_close with total and SHA-256."""
    c.streams += 1
    writer = "backend" if direction == "SAVE" else "frontend"
    c.event("state_open", stream=c.streams, direction=direction, provider=provider, writer=writer)
    for offset in range(0, len(state), chunk):
        c.tick(gap_ns)
        c.chunk(state[offset : offset + chunk], offset, writer, c.streams)
    if close:
        close_stream(c, state, direction, chunk, provider=provider)


def close_stream(
    c: Conversation, state: bytes, direction: str, chunk: int = 4096, *, provider: str = "frontend"
) -> None:
    """The proxy's state_close event: byte total, chunk count and SHA-256 of the whole stream."""
    c.event(
        "state_close",
        stream=c.streams,
        direction=direction,
        provider=provider,
        writer="backend" if direction == "SAVE" else "frontend",
        bytes=len(state),
        chunks=-(-len(state) // chunk),
        sha256=hashlib.sha256(state).hexdigest(),
        reason="eof",
    )


def qemu_transfer(
    c: Conversation, state: bytes, direction: int, *, check_result: int = 0, own_channel: bool = False
) -> None:
    """SET_DEVICE_STATE_FD with QEMU's pipe (the back-end keeps it: reply 0x100, or returns its own FD: 0x0 + FD),
    the stream, CHECK_DEVICE_STATE."""
    c.request("SET_DEVICE_STATE_FD", fds=(PIPE,), direction=direction, phase=0)
    if own_channel:
        c.reply("SET_DEVICE_STATE_FD", fds=(PIPE,), state_error=0, nofd=False)
    else:
        c.reply("SET_DEVICE_STATE_FD", state_error=0, nofd=True)
    state_stream(c, state, "SAVE" if direction == 0 else "LOAD", provider="backend" if own_channel else "frontend")
    c.request("CHECK_DEVICE_STATE")
    c.reply("CHECK_DEVICE_STATE", result=check_result)


STATE = bytes(range(256)) * 40
"""10 KiB of device state."""


def running(**handshake: int) -> Conversation:
    """Start-up and a started device (two rings), no migration."""
    c = Conversation()
    qemu_handshake(c, **handshake)
    qemu_device_start(c)
    return c


def source(state: bytes = STATE, bases: tuple[int, ...] = (5, 7), **handshake: int) -> Conversation:
    """A conforming migration source: start-up, guest start, dirty logging, stop, SAVE, check, disconnect."""
    c = Conversation()
    qemu_handshake(c, nvq=len(bases), **handshake)
    qemu_device_start(c, bases=tuple(0 for _ in bases))
    c.tick(5_000_000)
    qemu_dirty_logging(c, nvq=len(bases))
    c.tick(20_000_000)
    qemu_suspend(c, bases)
    qemu_transfer(c, state, 0)
    c.tick(1_000_000)
    c.event("disconnect", closed_by="frontend")
    return c


def destination(
    state: bytes = STATE, bases: tuple[int, ...] = (5, 7), start_ns: int | None = None, **handshake: int
) -> Conversation:
    """A conforming migration destination: start-up, LOAD, check, then the device starts with the source's bases."""
    c = Conversation(start_ns=start_ns if start_ns is not None else START_NS + 1_000_000)
    qemu_handshake(c, nvq=len(bases), **handshake)
    c.tick(25_000_000)
    qemu_transfer(c, state, 1)
    c.tick(2_000_000)
    qemu_device_start(c, bases=bases)
    return c


def migration_pair(
    tmp_path: Path, source_conv: Conversation, destination_conv: Conversation
) -> tuple[Capture, Capture]:
    """Write both sides and load them as labelled captures."""
    return (
        Capture(source_conv.write(tmp_path / "source.pcapng"), "source.pcapng", str(tmp_path / "source.pcapng")),
        Capture(
            destination_conv.write(tmp_path / "destination.pcapng"),
            "destination.pcapng",
            str(tmp_path / "destination.pcapng"),
        ),
    )


def capture_of(tmp_path: Path, conversation: Conversation, name: str = "capture.pcapng", **write: str) -> Capture:
    path = tmp_path / name
    return Capture(conversation.write(path, **write), name, str(path))


def rule_ids(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}
