"""Sessions, timeline, throughput and diff on crafted captures whose every value is known."""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import replace
from pathlib import Path

from analysis_captures import (
    EVENTFD,
    GUEST_FEATURES,
    MEMFD,
    STATE,
    STEP_NS,
    VIRTIOFSD_FEATURES,
    VIRTIOFSD_PROTOCOL,
    Conversation,
    capture_of,
    destination,
    migration_pair,
    qemu_device_start,
    qemu_dirty_logging,
    qemu_handshake,
    qemu_suspend,
    qemu_transfer,
    source,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from dissectors.encode import encode
from dissectors.spec import F_LOG_ALL
from vutrace.analysis import diff, sessions, throughput, timeline
from vutrace.analysis.frame import Capture
from vutrace.analysis.negotiation import virtio_names


def test_session_lists_every_negotiation_round_and_log_all_toggle(tmp_path: Path) -> None:
    c = source()
    qemu_dirty_logging(c, features=GUEST_FEATURES)
    c.request("SET_FEATURES", features=GUEST_FEATURES)
    (session,) = sessions.sessions(capture_of(tmp_path, c))
    messages = [(r.message, r.value) for r in session.rounds]
    assert messages == [
        ("GET_FEATURES", VIRTIOFSD_FEATURES),
        ("GET_PROTOCOL_FEATURES", VIRTIOFSD_PROTOCOL),
        ("SET_PROTOCOL_FEATURES", VIRTIOFSD_PROTOCOL),
        ("GET_FEATURES", VIRTIOFSD_FEATURES),
        ("SET_FEATURES", GUEST_FEATURES),
        ("SET_FEATURES", GUEST_FEATURES | 1 << F_LOG_ALL),
        ("SET_FEATURES", GUEST_FEATURES | 1 << F_LOG_ALL),
        ("SET_FEATURES", GUEST_FEATURES),
    ]
    assert session.rounds[5].delta() == (["LOG_ALL"], [])
    assert session.rounds[7].delta() == ([], ["LOG_ALL"])
    toggles = [c.text for c in session.changes if "dirty logging" in c.text]
    assert len(toggles) == 2 and "on" in toggles[0] and "off" in toggles[1]
    assert not session.negotiated.log_all
    assert "VERSION_1" in virtio_names(session.negotiated.acked_features or 0)


def test_session_memory_table_and_rings(tmp_path: Path) -> None:
    c = source(bases=(5, 7))
    c.request("REM_MEM_REG", guest_addr=0, region_size=512 << 20, user_addr=0x7F0000000000, mmap_offset=0)
    c.request("ADD_MEM_REG", fds=(MEMFD,), guest_addr=1 << 32, region_size=1 << 20, user_addr=0x7F1000000000)
    (session,) = sessions.sessions(capture_of(tmp_path, c))
    assert [(r.guest_addr, r.size) for r in session.regions] == [(1 << 32, 1 << 20)]
    assert "memfd:mem" in session.regions[0].fd
    ring = session.rings[1]
    assert (ring.size, ring.base, ring.stopped_base) == (128, 0, 7)
    assert (ring.desc_addr, ring.avail_addr, ring.used_addr) == (0x2000, 0x2800, 0x3000)
    assert ring.logging and not ring.started and ring.enabled is False
    assert (ring.kick, ring.call, ring.err) == ("fd", "fd", "fd")
    assert session.backend_channel == "open"
    assert session.ended_by == "disconnect" and session.socket == "/tmp/front.sock"
    assert session.state_bytes == len(STATE)
    areas = [c.area for c in session.changes]
    assert areas.count("memory") >= 3 and "ring 1" in areas


def test_reconnect_gives_successive_sessions(tmp_path: Path) -> None:
    c = Conversation()
    qemu_handshake(c)
    qemu_device_start(c)
    c.event("disconnect", closed_by="backend")
    c.conn = 2
    qemu_handshake(c)
    qemu_device_start(c, bases=(3, 4))
    found = sessions.sessions(capture_of(tmp_path, c))
    assert [(s.conn, s.ended_by) for s in found] == [(1, "disconnect"), (2, "")]
    assert found[0].socket == found[1].socket
    assert found[1].rings[1].base == 4


def test_timeline_phases_in_order(tmp_path: Path) -> None:
    src, dst = migration_pair(tmp_path, source(), destination())
    side = timeline.side_timeline(src)
    assert side.role == "source"
    device = [p.name for p in side.phases if p.name in ("negotiation", "setup", "running", "suspension", "suspended")]
    assert device == ["negotiation", "setup", "running", "suspension", "suspended"]
    logging = side.phase("dirty logging")[0]
    suspension = side.phase("suspension")[0]
    transfer = side.phase("state transfer")[0]
    check = side.phase("check")[0]
    assert logging.start_ns < suspension.start_ns < transfer.start_ns < check.start_ns
    assert transfer.detail == "SAVE" and check.detail == "success"
    assert side.phase("teardown")[0].detail == "disconnect"
    assert side.stopped_bases == {0: (5, side.stopped_bases[0][1]), 1: (7, side.stopped_bases[1][1])}
    other = timeline.side_timeline(dst)
    assert other.role == "destination"
    assert [p.name for p in other.phases if p.name in ("resume", "running")] == ["resume", "running"]
    assert other.phase("resume")[0].start_ns > other.phase("check")[0].end_ns


def test_downtime_spans(tmp_path: Path) -> None:
    src, dst = migration_pair(tmp_path, source(), destination())
    result = timeline.migration(timeline.side_timeline(dst), timeline.side_timeline(src))
    assert result.source is not None and result.source.label == "source.pcapng"
    source_side = result.source
    assert result.suspend_ns == source_side.phase("suspension")[0].start_ns
    assert result.running_ns == result.destination.phase("running")[0].start_ns  # type: ignore[union-attr]
    assert result.downtime_ns == result.running_ns - result.suspend_ns
    assert result.save_span is not None and result.load_span is not None
    (save_start, save_end), (load_start, load_end) = result.save_span, result.load_span
    assert result.suspend_ns < save_start < save_end <= load_start < load_end < result.running_ns
    expected = (save_end - save_start) + (load_end - load_start)
    assert result.transfer_ns == expected
    assert [(r.vring, r.source, r.destination, r.match) for r in result.ring_bases] == [
        (0, 5, 5, True),
        (1, 7, 7, True),
    ]


def test_throughput_of_a_stream(tmp_path: Path) -> None:
    c = source()
    (stream,) = throughput.streams(capture_of(tmp_path, c))
    assert (stream.direction, stream.provider, stream.total, len(stream.chunks)) == ("SAVE", "front-end pipe", 10240, 3)
    assert stream.sha256 == hashlib.sha256(STATE).hexdigest() and stream.sha256_source == "recorded"
    assert stream.first_byte_ns == 4 * STEP_NS  # reply, state_open, then the first chunk after its gap
    assert stream.duration_ns == 9 * STEP_NS
    assert stream.average_rate == 10240 / (9 * STEP_NS / 1e9)
    width, bins = stream.bins()
    assert len(bins) == 3 and sum(b for _, b in bins) == 10240
    assert stream.peak_rate == max(b for _, b in bins) / (width / 1e9)
    assert stream.chunk_sizes() == {
        "count": 3,
        "min": 2048,
        "median": 4096,
        "max": 4096,
        "histogram": {"<= 2048": 1, "<= 4096": 2},
    }


def test_throughput_back_end_channel_and_computed_hash(tmp_path: Path) -> None:
    c = Conversation()
    qemu_handshake(c)
    qemu_device_start(c)
    qemu_suspend(c)
    qemu_transfer(c, STATE, 0, own_channel=True)
    c.records = [r for r in c.records if r.event != "state_close"]
    (stream,) = throughput.streams(capture_of(tmp_path, c))
    assert stream.provider == "back-end FD"
    assert stream.sha256 == hashlib.sha256(STATE).hexdigest() and stream.sha256_source == "computed"
    (hashed,) = throughput.streams(capture_of(tmp_path, c, "hashed.pcapng", state_payload="hash"))
    assert hashed.sha256 is None and hashed.total == len(STATE)


def test_throughput_compare(tmp_path: Path) -> None:
    src, dst = migration_pair(tmp_path, source(), destination(STATE[:100]))
    result = throughput.compare(throughput.streams(dst), throughput.streams(src))
    assert result.source is not None and result.source.side == "source.pcapng"
    assert result.same_size is False and result.same_hash is False


def test_diff_identical_and_changed(tmp_path: Path) -> None:
    a = capture_of(tmp_path, source(), "a.pcapng")
    same = diff.diff(a, capture_of(tmp_path, source(), "b.pcapng"))
    assert same.identical and same.count("equal") == len(a.df[a.df["channel"].isin(["main", "backend"])])
    changed = source(protocol=VIRTIOFSD_PROTOCOL & ~(1 << 19))
    result = diff.diff(a, capture_of(tmp_path, changed, "c.pcapng"))
    first = result.first_divergence
    assert first is not None and first.kind == "changed" and first.message == "SET_PROTOCOL_FEATURES"
    assert first.changes == [("protocol_features", VIRTIOFSD_PROTOCOL, VIRTIOFSD_PROTOCOL & ~(1 << 19))]


def _with_user_addr(c: Conversation, user_addr: int) -> Conversation:
    """The same conversation with ADD_MEM_REG mapping the region at another front-end address."""
    data = encode(
        "ADD_MEM_REG", need_reply=True, guest_addr=0, region_size=512 << 20, user_addr=user_addr, mmap_offset=0
    )
    index = next(i for i, r in enumerate(c.records) if r.data[:4] == (37).to_bytes(4, "little"))
    c.records[index] = replace(c.records[index], data=data, length=len(data))
    return c


def test_diff_missing_extra_and_ignored_addresses(tmp_path: Path) -> None:
    a = capture_of(tmp_path, source(), "a.pcapng")
    c = source()
    c.records = [r for r in c.records if r.data[:4] != (43).to_bytes(4, "little")]
    c.request("SET_VRING_CALL", fds=(EVENTFD,), vring=0, nofd=False)
    result = diff.diff(a, capture_of(tmp_path, c, "b.pcapng"))
    assert [s.message for s in result.steps if s.kind == "missing"] == [
        "CHECK_DEVICE_STATE",
        "CHECK_DEVICE_STATE reply",
    ]
    assert [s.message for s in result.steps if s.kind == "extra"] == ["SET_VRING_CALL"]
    moved = capture_of(tmp_path, _with_user_addr(source(), 0x7E00), "m.pcapng")
    assert [s.changes for s in diff.diff(a, moved).steps if s.kind == "changed"] == [
        [("user_addr", 0x7F0000000000, 0x7E00)]
    ]
    assert diff.diff(a, moved, ignore_addresses=True).identical
    assert diff.diff(a, moved, ignore=frozenset({"user_addr"})).identical


def test_diff_long_periodic_captures_align_exactly(tmp_path: Path) -> None:
    """Beyond difflib's size the alignment still finds the shortest script, without drifting out of phase."""
    c = source()
    for i in range(diff.DIFFLIB_MAX):
        c.request("SET_VRING_CALL", fds=(EVENTFD,), need_reply=True, vring=i % 2, nofd=False)
        c.ack("SET_VRING_CALL")
    a = capture_of(tmp_path, c, "a.pcapng")
    dropped = [100, 101, 102, 3000, 3001, 3002, 3003, 3004, 7001]
    b = Capture(a.df.drop(index=dropped), "b", "")
    result = diff.diff(a, b)
    missing = [s.a_row for s in result.steps if s.kind == "missing"]
    assert result.count("extra") == result.count("changed") == 0
    assert len(missing) == len(dropped), "a shortest edit script: only the dropped messages"

    def content(rows: list[int]) -> list[str]:
        return sorted(f"{a.df.at[r, 'request']} {a.df.at[r, 'is_reply']} {a.df.at[r, 'vring']}" for r in rows)

    assert content(missing) == content(dropped), "identical periodic messages may trade places"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from("ABC"), max_size=60), st.lists(st.sampled_from("ABC"), max_size=60))
def test_alignment_opcodes_turn_a_into_b(a: list[str], b: list[str]) -> None:
    for ops in (diff.align(a, b), diff._resync(a, b), diff._myers(a, b, 120)):
        assert ops is not None
        rebuilt, at_a, at_b = [], 0, 0
        for tag, i1, i2, j1, j2 in ops:
            assert (i1, j1) == (at_a, at_b)
            if tag == "equal":
                assert a[i1:i2] == b[j1:j2]
            rebuilt += b[j1:j2]
            at_a, at_b = i2, j2
        assert (at_a, at_b) == (len(a), len(b)) and rebuilt == b


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from("ABC"), max_size=40), st.lists(st.sampled_from("ABC"), max_size=40))
def test_myers_finds_a_shortest_edit_script(a: list[str], b: list[str]) -> None:
    ops = diff._myers(a, b, 80)
    assert ops is not None
    edits = sum((i2 - i1) + (j2 - j1) for tag, i1, i2, j1, j2 in ops if tag != "equal")
    matched = sum(block.size for block in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks())
    assert edits <= len(a) + len(b) - 2 * matched, "no longer than difflib's script"
    rebuilt = [x for tag, i1, i2, j1, j2 in ops for x in b[j1:j2]]
    assert rebuilt == b and all(a[i1:i2] == b[j1:j2] for tag, i1, i2, j1, j2 in ops if tag == "equal")
