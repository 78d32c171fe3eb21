"""Every conformance rule: a capture that triggers it and a near miss that does not.

Captures are conforming QEMU + virtiofsd conversations (analysis_captures) with one thing changed,
encoded with dissectors.encode, written by CaptureWriter and read back with vutrace.load.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from analysis_captures import (
    EVENTFD,
    GUEST_FEATURES,
    MEMFD,
    PIPE,
    STATE,
    VIRTIOFSD_PROTOCOL,
    Conversation,
    capture_of,
    close_stream,
    destination,
    migration_pair,
    qemu_device_start,
    qemu_dirty_logging,
    qemu_handshake,
    qemu_suspend,
    qemu_transfer,
    rule_ids,
    running,
    source,
    state_stream,
)

from dissectors.encode import encode
from dissectors.spec import ProtocolFeature as PF
from vutrace.analysis import checks
from vutrace.analysis.checks import Severity

Build = Callable[[], Conversation | tuple[Conversation, Conversation]]


def bit(feature: PF) -> int:
    return 1 << feature


def ended(c: Conversation) -> Conversation:
    c.tick(1_000_000)
    c.event("disconnect", closed_by="frontend")
    return c


def with_message(data: bytes, sender: str = "frontend", fds: tuple = ()) -> Build:
    def build() -> Conversation:
        c = running()
        c.raw(data, sender, fds)
        return ended(c)

    return build


def suspended(**handshake: int) -> Conversation:
    c = running(**handshake)
    qemu_suspend(c)
    return c


# -- builders for the cases that need more than one extra message ---------------------------------


def reply_flags(flags: int) -> Build:
    def build() -> Conversation:
        c = running()
        c.request("GET_QUEUE_NUM")
        c.raw(encode("GET_QUEUE_NUM", reply=True, flags=flags, queue_num=2), "backend")
        return ended(c)

    return build


def mem_table(regions: int) -> Build:
    table = [(i << 30, 1 << 20, 0x7F0000000000 + (i << 30), 0) for i in range(regions)]
    return with_message(encode("SET_MEM_TABLE", regions=table), fds=(MEMFD,) * regions)


def rem_mem_reg(fds: tuple) -> Build:
    region = {"guest_addr": 0, "region_size": 512 << 20, "user_addr": 0x7F0000000000, "mmap_offset": 0}
    return with_message(encode("REM_MEM_REG", need_reply=False, **region), fds=fds)


def host_notifier(send_fd: bool) -> Build:
    def build() -> Conversation:
        offered = VIRTIOFSD_PROTOCOL | bit(PF.HOST_NOTIFIER)
        acked = offered if send_fd else offered & ~bit(PF.BACKEND_SEND_FD)
        c = running(offered_protocol=offered, protocol=acked)
        c.backend_request(
            "VRING_HOST_NOTIFIER_MSG",
            need_reply=True,
            fds=(MEMFD,),
            vring=0,
            nofd=False,
            area_size=4096,
            area_offset=0,
        )
        c.backend_reply("VRING_HOST_NOTIFIER_MSG", result=0)
        return ended(c)

    return build


def late_fds(late: int, channel: str = "main") -> Build:
    """A message whose FDs (``late`` of them) arrived after the first byte: a SET_MEM_TABLE with two regions
    from the front-end, or a back-end channel VRING_HOST_NOTIFIER_MSG."""

    def build() -> Conversation:
        if channel == "backend":
            offered = VIRTIOFSD_PROTOCOL | bit(PF.HOST_NOTIFIER)
            c = running(offered_protocol=offered, protocol=offered)
            c.backend_request(
                "VRING_HOST_NOTIFIER_MSG", fds=(MEMFD,), late_fds=late, vring=0, nofd=False, area_size=4096
            )
            return ended(c)
        c = running()
        table = [(i << 30, 1 << 20, 0x7F0000000000 + (i << 30), 0) for i in range(2)]
        c.request("SET_MEM_TABLE", fds=(MEMFD, MEMFD), need_reply=True, late_fds=late, regions=table)
        c.ack("SET_MEM_TABLE")
        return ended(c)

    return build


def transfer_without(feature: PF | None) -> Build:
    def build() -> Conversation:
        protocol = VIRTIOFSD_PROTOCOL & ~bit(feature) if feature is not None else VIRTIOFSD_PROTOCOL
        c = suspended(protocol=protocol)
        qemu_transfer(c, STATE, 0)
        return ended(c)

    return build


def protocol_features_unoffered() -> Conversation:
    c = Conversation()
    qemu_handshake(c, offered=0x100000000)
    return ended(c)


def iotlb_without_iommu() -> Conversation:
    c = running()
    c.request("IOTLB_MSG", need_reply=True, iova=0x1000, iotlb_size=0x1000, uaddr=0x7F0000001000, perm=3, iotlb_type=2)
    c.reply("IOTLB_MSG", result=0)
    return ended(c)


def features_acked(extra: int) -> Build:
    def build() -> Conversation:
        c = Conversation()
        qemu_handshake(c)
        c.request("SET_FEATURES", features=GUEST_FEATURES | extra)
        return ended(c)

    return build


def inband(with_reply_ack: bool) -> Build:
    def build() -> Conversation:
        offered = VIRTIOFSD_PROTOCOL | bit(PF.INBAND_NOTIFICATIONS)
        acked = offered if with_reply_ack else offered & ~bit(PF.REPLY_ACK)
        c = Conversation()
        qemu_handshake(c, offered_protocol=offered, protocol=acked)
        return ended(c)

    return build


def transfer_params(direction: int, phase: int) -> Build:
    def build() -> Conversation:
        c = suspended()
        c.request("SET_DEVICE_STATE_FD", fds=(PIPE,), direction=direction, phase=phase)
        c.reply("SET_DEVICE_STATE_FD", state_error=1, nofd=True)
        return ended(c)

    return build


def running_transfer() -> Conversation:
    c = running()
    qemu_transfer(c, STATE, 0)
    return ended(c)


def kick_during_transfer(after_check: bool) -> Build:
    def build() -> Conversation:
        c = suspended()
        c.request("SET_DEVICE_STATE_FD", fds=(PIPE,), direction=0, phase=0)
        c.reply("SET_DEVICE_STATE_FD", state_error=0, nofd=True)
        if not after_check:
            c.request("SET_VRING_KICK", fds=(EVENTFD,), vring=0, nofd=False)
        state_stream(c, STATE, "SAVE")
        c.request("CHECK_DEVICE_STATE")
        c.reply("CHECK_DEVICE_STATE", result=0)
        if after_check:
            c.request("SET_VRING_KICK", fds=(EVENTFD,), vring=0, nofd=False)
        return ended(c)

    return build


def transfer_reply(state_error: int, nofd: bool, fds: tuple) -> Build:
    def build() -> Conversation:
        c = suspended()
        c.request("SET_DEVICE_STATE_FD", fds=(PIPE,), direction=0, phase=0)
        c.reply("SET_DEVICE_STATE_FD", fds=fds, state_error=state_error, nofd=nofd)
        return ended(c)

    return build


def save_checked_early() -> Conversation:
    """CHECK_DEVICE_STATE while the SAVE stream still delivers data."""
    c = suspended()
    c.request("SET_DEVICE_STATE_FD", fds=(PIPE,), direction=0, phase=0)
    c.reply("SET_DEVICE_STATE_FD", state_error=0, nofd=True)
    c.event("state_open", stream=1, direction="SAVE", provider="frontend", writer="backend")
    c.streams = 1
    c.chunk(STATE[:4096], 0, "backend", 1)
    c.request("CHECK_DEVICE_STATE")
    c.chunk(STATE[4096:], 4096, "backend", 1)
    close_stream(c, STATE, "SAVE")
    c.reply("CHECK_DEVICE_STATE", result=0)
    return ended(c)


def held_check(direction: int) -> Build:
    """A transfer whose CHECK_DEVICE_STATE reached the proxy before the stream ended: the proxy recorded a
    ``message_held`` event then, and forwarded (and recorded) the check after ``state_close``."""

    def build() -> Conversation:
        c = suspended() if direction == 0 else Conversation()
        if direction:
            qemu_handshake(c)
        name = "SAVE" if direction == 0 else "LOAD"
        writer = "backend" if direction == 0 else "frontend"
        c.request("SET_DEVICE_STATE_FD", fds=(PIPE,), direction=direction, phase=0)
        c.reply("SET_DEVICE_STATE_FD", state_error=0, nofd=True)
        c.event("state_open", stream=1, direction=name, provider="frontend", writer=writer)
        c.streams = 1
        c.chunk(STATE[:4096], 0, writer, 1)
        c.event(
            "message_held",
            channel="main",
            sender="frontend",
            request="CHECK_DEVICE_STATE",
            reason="waiting for the device-state relay to end",
        )
        c.chunk(STATE[4096:], 4096, writer, 1)
        close_stream(c, STATE, name)
        c.request("CHECK_DEVICE_STATE")
        c.reply("CHECK_DEVICE_STATE", result=0)
        return ended(c)

    return build


def load_checked(*, data_after_reply: bool = False, close_gap_ns: int = 0, close: bool = True) -> Build:
    """A LOAD whose last chunk may come after the CHECK_DEVICE_STATE reply, and whose close the proxy may stamp
    ``close_gap_ns`` after the reply (it stamps the close after closing the pipe, from another thread)."""

    def build() -> Conversation:
        c = Conversation()
        qemu_handshake(c)
        c.request("SET_DEVICE_STATE_FD", fds=(PIPE,), direction=1, phase=0)
        c.reply("SET_DEVICE_STATE_FD", state_error=0, nofd=True)
        head = STATE[:4096] if data_after_reply else STATE
        state_stream(c, head, "LOAD", close=False)
        c.request("CHECK_DEVICE_STATE")
        c.reply("CHECK_DEVICE_STATE", result=0)
        if data_after_reply:
            c.chunk(STATE[4096:], 4096, "frontend", c.streams)
        c.tick(close_gap_ns)
        if close:
            close_stream(c, STATE, "LOAD")
        return ended(c)

    return build


def checked(result: int) -> Build:
    def build() -> Conversation:
        c = suspended()
        qemu_transfer(c, STATE, 0, check_result=result)
        return ended(c)

    return build


def empty_stream() -> Conversation:
    c = suspended()
    qemu_transfer(c, b"", 0)
    return ended(c)


def config_change(while_suspended: bool, after_ns: int = 50_000_000) -> Build:
    def build() -> Conversation:
        protocol = VIRTIOFSD_PROTOCOL | bit(PF.CONFIG)
        c = running(offered_protocol=protocol, protocol=protocol)
        if while_suspended:
            qemu_suspend(c)
            c.tick(after_ns)
        c.backend_request("CONFIG_CHANGE_MSG", need_reply=True)
        c.backend_reply("CONFIG_CHANGE_MSG", result=0)
        return ended(c)

    return build


def vring_base_reply(name: str, **fields: int) -> Build:
    def build() -> Conversation:
        c = running()
        c.request("GET_VRING_BASE", vring=0, num=0)
        c.reply(name, **fields)
        return ended(c)

    return build


def get_vring_base(num: int, base: int = 3) -> Build:
    """GET_VRING_BASE with ``num`` in its (reserved) request field, answered with ``base``; as DPDK
    virtio-user 22.11 sends it for its second ring (num left over from the previous reply)."""

    def build() -> Conversation:
        c = running()
        c.request("GET_VRING_BASE", vring=1, num=num)
        c.reply("GET_VRING_BASE", vring=1, num=base)
        return ended(c)

    return build


def set_vring_base(num: int, packed: bool = False) -> Build:
    def build() -> Conversation:
        c = Conversation()
        qemu_handshake(c)
        features = GUEST_FEATURES | (1 << 34 if packed else 0)
        c.request("SET_FEATURES", features=features)
        c.request("SET_VRING_BASE", vring=0, num=num)
        return ended(c)

    return build


def ack_after(need_reply: bool) -> Build:
    def build() -> Conversation:
        c = running()
        c.request("SET_VRING_NUM", need_reply=need_reply, vring=0, num=128)
        c.ack("SET_VRING_NUM")
        return ended(c)

    return build


def unprompted_reply() -> Conversation:
    c = running()
    c.reply("GET_QUEUE_NUM", queue_num=2)
    return ended(c)


def unanswered_stop() -> Conversation:
    c = running()
    c.request("GET_VRING_BASE", vring=0, num=0)
    return ended(c)


def unanswered_enable(reply_ack: bool) -> Build:
    def build() -> Conversation:
        protocol = VIRTIOFSD_PROTOCOL if reply_ack else VIRTIOFSD_PROTOCOL & ~bit(PF.REPLY_ACK)
        c = running(protocol=protocol)
        c.request("SET_VRING_ENABLE", need_reply=True, vring=0, num=0)
        return c

    return build


def need_reply_on_num(reply_ack: bool) -> Build:
    def build() -> Conversation:
        protocol = VIRTIOFSD_PROTOCOL if reply_ack else VIRTIOFSD_PROTOCOL & ~bit(PF.REPLY_ACK)
        c = running(protocol=protocol)
        c.request("SET_VRING_NUM", need_reply=True, vring=0, num=128)
        if reply_ack:
            c.ack("SET_VRING_NUM")
        return ended(c)

    return build


def pair(state: bytes = STATE, loaded: bytes = STATE, bases: tuple = (5, 7), restarted: tuple = (5, 7)) -> Build:
    def build() -> tuple[Conversation, Conversation]:
        return source(state, bases), destination(loaded, restarted)

    return build


TRIGGERS: dict[str, list[Build]] = {
    "header.version": [with_message(encode("SET_VRING_NUM", flags=0x2, vring=0, num=64))],
    "header.reserved-flags": [with_message(encode("SET_VRING_NUM", flags=0x21, vring=0, num=64))],
    "header.reply-bit": [with_message(encode("SET_VRING_NUM", flags=0x5, vring=0, num=64))],
    "reply.flags": [reply_flags(0xD)],
    "message.unknown": [with_message(encode(99))],
    "message.truncated": [
        with_message(encode("SET_VRING_NUM", vring=0, num=64)[:8]),
        with_message(encode("SET_VRING_NUM", vring=0, num=64)[:16]),
    ],
    "payload.size": [with_message(encode("SET_VRING_NUM", body=b"\0" * 4))],
    "fd.count": [
        with_message(encode("SET_VRING_KICK", vring=0, nofd=False)),
        lambda: ended(_mem_table_fds(2, 1)),
        with_message(encode("SET_OWNER"), fds=(EVENTFD,)),
    ],
    "fd.too-many": [mem_table(9)],
    "fd.rem-mem-reg": [rem_mem_reg((MEMFD,))],
    "fd.backend-send-fd": [host_notifier(send_fd=False)],
    "fd.not-on-first-byte": [late_fds(1), late_fds(2), late_fds(1, "backend")],
    "gate.not-negotiated": [transfer_without(PF.DEVICE_STATE), protocol_features_unoffered, iotlb_without_iommu],
    "features.not-offered": [features_acked(1 << 33)],
    "protocol-features.not-offered": [
        lambda: ended(_handshake(protocol=VIRTIOFSD_PROTOCOL | bit(PF.SHMEM))),
    ],
    "protocol-features.dependency": [inband(with_reply_ack=False)],
    "state.parameters": [transfer_params(2, 0), transfer_params(0, 1)],
    "state.not-suspended": [running_transfer],
    "state.restarted": [kick_during_transfer(after_check=False)],
    "state.reply-error-with-fd": [transfer_reply(1, False, (PIPE,)), transfer_reply(1, True, (PIPE,))],
    "state.refused": [transfer_reply(1, True, ())],
    "state.check-before-close": [
        save_checked_early,
        held_check(0),
        load_checked(data_after_reply=True),
        load_checked(close=False),
    ],
    "state.check-failed": [checked(1)],
    "state.empty": [empty_stream],
    "suspend.backend-message": [config_change(while_suspended=True)],
    "reply.wrong-id": [vring_base_reply("GET_FEATURES", features=1)],
    "reply.unexpected": [ack_after(need_reply=False), unprompted_reply],
    "reply.missing": [unanswered_stop, unanswered_enable(reply_ack=True)],
    "reply.need-reply-without-reply-ack": [need_reply_on_num(reply_ack=False)],
    "migration.state-size": [pair(loaded=STATE[:-10])],
    "migration.state-hash": [pair(loaded=bytes(reversed(STATE)))],
    "migration.ring-base": [pair(restarted=(5, 8))],
    "ring.reserved-num": [get_vring_base(num=45472)],
    "ring.split-base-reserved-bits": [set_vring_base(0x10005), get_vring_base(num=0, base=0x20003)],
}

NEAR_MISSES: dict[str, list[Build]] = {
    "header.version": [with_message(encode("SET_VRING_NUM", vring=0, num=64))],
    "header.reserved-flags": [with_message(encode("SET_VRING_NUM", need_reply=False, vring=0, num=64))],
    "header.reply-bit": [with_message(encode("SET_VRING_NUM", vring=0, num=64))],
    "reply.flags": [reply_flags(0x5)],
    "message.unknown": [with_message(encode("GET_STATUS"))],
    "message.truncated": [with_message(encode("SET_VRING_NUM", vring=0, num=64))],
    "payload.size": [with_message(encode("SET_VRING_NUM", vring=0, num=64))],
    "fd.count": [with_message(encode("SET_VRING_KICK", vring=0, nofd=True)), mem_table(2)],
    "fd.too-many": [mem_table(8)],
    "fd.rem-mem-reg": [rem_mem_reg(())],
    "fd.backend-send-fd": [host_notifier(send_fd=True)],
    "fd.not-on-first-byte": [late_fds(0), late_fds(0, "backend")],
    "gate.not-negotiated": [transfer_without(None)],
    "features.not-offered": [features_acked(0)],
    "protocol-features.not-offered": [lambda: ended(_handshake(protocol=VIRTIOFSD_PROTOCOL))],
    "protocol-features.dependency": [inband(with_reply_ack=True)],
    "state.parameters": [transfer_params(1, 0)],
    "state.not-suspended": [transfer_without(None)],
    "state.restarted": [kick_during_transfer(after_check=True)],
    "state.reply-error-with-fd": [transfer_reply(1, True, ()), transfer_reply(0, False, (PIPE,))],
    "state.refused": [transfer_reply(0, True, ())],
    "state.check-before-close": [transfer_without(None), load_checked(close_gap_ns=10_000_000), held_check(1)],
    "state.check-failed": [checked(0)],
    "state.empty": [transfer_without(None)],
    "suspend.backend-message": [config_change(while_suspended=False), config_change(True, after_ns=1_000_000)],
    "reply.wrong-id": [vring_base_reply("GET_VRING_BASE", vring=0, num=3)],
    "reply.unexpected": [ack_after(need_reply=True)],
    "reply.missing": [unanswered_enable(reply_ack=False)],
    "reply.need-reply-without-reply-ack": [need_reply_on_num(reply_ack=True)],
    "migration.state-size": [pair()],
    "migration.state-hash": [pair()],
    "migration.ring-base": [pair(bases=(3, 9), restarted=(3, 9))],
    "ring.reserved-num": [get_vring_base(num=0)],
    "ring.split-base-reserved-bits": [set_vring_base(0xFFFF), set_vring_base(0x80008005, packed=True)],
}


def _handshake(**options: int) -> Conversation:
    c = Conversation()
    qemu_handshake(c, **options)
    return c


def _mem_table_fds(regions: int, fds: int) -> Conversation:
    c = running()
    table = [(i << 30, 1 << 20, 0x7F0000000000 + (i << 30), 0) for i in range(regions)]
    c.request("SET_MEM_TABLE", fds=(MEMFD,) * fds, regions=table)
    return c


def run_checks(tmp_path: Path, build: Build) -> list[checks.Finding]:
    built = build()
    if isinstance(built, tuple):
        return checks.check(*migration_pair(tmp_path, *built))
    return checks.check(capture_of(tmp_path, built))


def _cases(table: dict[str, list[Build]]) -> list:
    return [
        pytest.param(rule, build, id=f"{rule}-{i}") for rule, builds in table.items() for i, build in enumerate(builds)
    ]


def test_every_rule_has_a_trigger_and_a_near_miss() -> None:
    ids = {r.id for r in checks.rules()}
    assert set(TRIGGERS) == ids
    assert set(NEAR_MISSES) == ids


@pytest.mark.parametrize(("rule", "build"), _cases(TRIGGERS))
def test_rule_triggers(tmp_path: Path, rule: str, build: Build) -> None:
    findings = run_checks(tmp_path, build)
    assert rule in rule_ids(findings), [f.to_dict() for f in findings]
    found = next(f for f in findings if f.rule == rule)
    assert found.records, "a finding names its records"
    assert found.message and "\n" not in found.message


@pytest.mark.parametrize(("rule", "build"), _cases(NEAR_MISSES))
def test_rule_near_miss_is_quiet(tmp_path: Path, rule: str, build: Build) -> None:
    findings = run_checks(tmp_path, build)
    assert rule not in rule_ids(findings), [f.to_dict() for f in findings]


def test_conforming_migration_has_no_findings(tmp_path: Path) -> None:
    assert run_checks(tmp_path, pair()) == []


def test_no_reply_ack_run_with_get_features_barriers_has_no_findings(tmp_path: Path) -> None:
    """QEMU without REPLY_ACK: no NEED_REPLY, GET_FEATURES barriers mid-session; nothing to report."""
    protocol = VIRTIOFSD_PROTOCOL & ~bit(PF.REPLY_ACK)
    c = Conversation()
    qemu_handshake(c, protocol=protocol)
    qemu_device_start(c)
    qemu_dirty_logging(c)
    qemu_suspend(c)
    qemu_transfer(c, STATE, 0)
    capture = capture_of(tmp_path, ended(c))
    barriers = capture.df[(capture.df["request"] == "GET_FEATURES") & ~capture.df["is_reply"]]
    assert len(barriers) > 2
    assert checks.check(capture) == []


def test_findings_point_at_the_offending_rows(tmp_path: Path) -> None:
    capture = capture_of(tmp_path, transfer_without(PF.DEVICE_STATE)())
    finding = next(f for f in checks.check(capture) if f.rule == "gate.not-negotiated")
    row = capture.df.loc[finding.records[0].row]
    assert row["request"] == "SET_DEVICE_STATE_FD"
    assert finding.records[0].ts_ns == row["ts_ns"]
    assert finding.severity is Severity.ERROR
    assert finding.section == "Protocol features"
    assert "DEVICE_STATE" in finding.message


def test_missing_reply_names_what_ended_the_wait(tmp_path: Path) -> None:
    by_disconnect = checks.check(capture_of(tmp_path, unanswered_stop(), "a.pcapng"))
    at_end = checks.check(capture_of(tmp_path, unanswered_enable(reply_ack=True)(), "b.pcapng"))
    assert "disconnect" in next(f for f in by_disconnect if f.rule == "reply.missing").message
    assert "capture ended" in next(f for f in at_end if f.rule == "reply.missing").message


def test_cross_rules_need_a_source_and_a_destination(tmp_path: Path) -> None:
    first, second = migration_pair(tmp_path, source(), source(bases=(1, 1)))
    assert "migration.ring-base" not in rule_ids(checks.check(first, second))
    src, dst = migration_pair(tmp_path, source(), destination(bases=(5, 8)))
    assert "migration.ring-base" in rule_ids(checks.check(dst, src)), "roles come from SAVE/LOAD, not the order"


def test_late_fds_finding_names_the_message_and_the_count(tmp_path: Path) -> None:
    capture = capture_of(tmp_path, late_fds(1)())
    findings = checks.check(capture)
    assert [f.rule for f in findings] == ["fd.not-on-first-byte"], [f.to_dict() for f in findings]
    finding = findings[0]
    row = capture.df.loc[finding.records[0].row]
    assert (row["request"], row["late_fds"], row["nfds"]) == ("SET_MEM_TABLE", 1, 2)
    assert finding.severity is Severity.ERROR and finding.section == "Communication"
    assert "SET_MEM_TABLE request from the frontend: 1 of its 2 FD(s)" in finding.message
