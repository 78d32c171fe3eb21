"""Transparent forwarding on the main socket: framing, FDs, odd messages, recorded byte-exactly."""

from __future__ import annotations

import array
import os
import socket
import struct
import threading
import time

from dissectors.encode import encode
from dissectors.header import pack_header
from dissectors.records import decode
from tests.proxy.conftest import Harness
from vutrace import load
from vutrace.capture.model import FdAction, FdKind, RecordKind
from vutrace.proxy.relay import MAX_BUFFERED_MESSAGE, MESSAGE_TRUNCATED


def test_message_split_in_pieces_arrives_whole_and_is_recorded_once(harness: Harness) -> None:
    front, back = harness.open()
    message = encode("SET_VRING_ADDR", vring=1, desc_addr=0x1000, used_addr=0x2000, avail_addr=0x3000)
    for piece in (message[:3], message[3:12], message[12:30], message[30:]):
        front.send(piece)
        time.sleep(0.01)
    assert back.recv_message() == (message, [])
    recorded = harness.messages()
    assert [r.data for r in recorded] == [message]
    assert recorded[0].sender == "frontend"


def test_coalesced_messages_are_forwarded_and_recorded_one_by_one(harness: Harness) -> None:
    front, back = harness.open()
    messages = [encode("GET_FEATURES"), encode("SET_OWNER"), encode("SET_FEATURES", features=1 << 32)]
    front.send(b"".join(messages))
    assert [back.recv_message()[0] for _ in messages] == messages
    assert [r.data for r in harness.messages()] == messages


def test_fds_stay_with_the_message_they_came_with(harness: Harness) -> None:
    front, back = harness.open()
    plain = encode("SET_OWNER")
    kick = encode("SET_VRING_KICK", vring=0)
    call = encode("SET_VRING_CALL", vring=0)
    kick_fd, call_fd = os.eventfd(0), os.eventfd(0)
    front.send(kick + plain, [kick_fd])  # FD on the first byte of the first of two coalesced messages
    front.send(plain)
    front.send(call, [call_fd])
    got = [back.recv_message() for _ in range(4)]
    assert [(data, len(fds)) for data, fds in got] == [(kick, 1), (plain, 0), (plain, 0), (call, 1)]
    os.eventfd_write(got[0][1][0], 3)
    assert os.eventfd_read(kick_fd) == 3
    os.eventfd_write(call_fd, 9)
    assert os.eventfd_read(got[3][1][0]) == 9
    assert [len(r.fds) for r in harness.messages()] == [1, 0, 0, 1]


def test_eight_fds_on_one_message_arrive_working(harness: Harness) -> None:
    front, back = harness.open()
    memfds = [os.memfd_create(f"guest-ram-{i}") for i in range(4)]
    for i, fd in enumerate(memfds):
        os.write(fd, f"region {i}".encode())
    eventfds = [os.eventfd(0) for _ in range(4)]
    message = encode("SET_MEM_TABLE", regions=[(i << 20, 1 << 20, 0, 0) for i in range(8)])
    front.send(message, memfds + eventfds)
    data, fds = back.recv_message()
    assert data == message and len(fds) == 8
    for i, fd in enumerate(fds[:4]):
        assert os.pread(fd, 16, 0) == f"region {i}".encode()
    os.eventfd_write(fds[5], 7)
    assert os.eventfd_read(eventfds[1]) == 7
    (record,) = harness.messages()
    assert [f.kind for f in record.fds] == [FdKind.MEMFD] * 4 + [FdKind.EVENTFD] * 4
    assert [f.memfd_name for f in record.fds[:4]] == [f"guest-ram-{i}" for i in range(4)]
    assert record.fds[0].size == len(b"region 0")
    assert all(f.action is FdAction.PASSED for f in record.fds)


def test_empty_scm_rights_from_dpdk_is_forwarded_without_fds(harness: Harness) -> None:
    front, back = harness.open()
    message = encode("GET_PROTOCOL_FEATURES")
    front.send(message, empty_rights=True)
    assert back.recv_message() == (message, [])
    assert [r.data for r in harness.messages()] == [message]


def test_replies_travel_back_and_are_recorded_after_their_request(harness: Harness) -> None:
    front, back = harness.open()
    request = encode("GET_FEATURES")
    reply = encode("GET_FEATURES", reply=True, features=1 << 30 | 1 << 32)
    front.send(request)
    back.recv_message()
    back.send(reply)
    assert front.recv_message() == (reply, [])
    assert [(r.sender, r.data) for r in harness.messages()] == [("frontend", request), ("backend", reply)]


def test_unknown_id_and_wrong_version_are_forwarded_unchanged(harness: Harness) -> None:
    front, back = harness.open()
    unknown = pack_header(200, 0x1, 4) + b"\x01\x02\x03\x04"
    bad_version = encode("GET_FEATURES", flags=0x2)
    front.send(unknown + bad_version)
    assert back.recv_message()[0] == unknown
    assert back.recv_message()[0] == bad_version
    recorded = harness.messages()
    assert [r.data for r in recorded] == [unknown, bad_version]
    assert decode(recorded[0].data)["request"] == "UNKNOWN_200"


def test_message_larger_than_the_buffer_is_streamed_and_recorded_truncated(harness: Harness) -> None:
    front, back = harness.open()
    payload = os.urandom(3 * MAX_BUFFERED_MESSAGE + 5)
    message = pack_header(1, 0x1, len(payload)) + payload
    writer = threading.Thread(target=front.sock.sendall, args=(message,))
    writer.start()
    received, _ = back.recv_exactly(len(message))
    writer.join()
    assert received == message
    (record,) = harness.messages()
    assert record.data == message[:MAX_BUFFERED_MESSAGE]
    (note,) = harness.events(MESSAGE_TRUNCATED)
    assert note.attrs["size"] == len(payload)
    assert note.attrs["received"] == len(message)


def test_lying_size_then_close_forwards_what_came_and_closes(harness: Harness) -> None:
    front, back = harness.open()
    partial = pack_header(5, 0x1, 0xFFFF_FFF0) + b"only a few bytes"
    front.send(partial)
    front.close()
    data, _ = back.recv_all_until_eof()
    assert data == partial
    (disconnect,) = harness.events("disconnect")
    assert disconnect.attrs["closed_by"] == "frontend"
    assert disconnect.attrs["mid_message"] is True


def test_peer_closing_mid_message_closes_the_other_side_after_the_same_bytes(harness: Harness) -> None:
    front, back = harness.open()
    message = encode("SET_VRING_ADDR", vring=0)
    front.send(message[:20])
    front.close()
    assert back.recv_all_until_eof()[0] == message[:20]
    assert [r.data for r in harness.messages()] == [message[:20]]
    (disconnect,) = harness.events("disconnect")
    assert disconnect.attrs == {
        "closed_by": "frontend",
        "mid_message": True,
        "received": 20,
        "frontend_messages": 0,
        "backend_messages": 0,
    }


def test_backend_closing_closes_the_frontend(harness: Harness) -> None:
    front, back = harness.open()
    back.close()
    assert front.at_eof()
    (disconnect,) = harness.events("disconnect")
    assert disconnect.attrs["closed_by"] == "backend"


def test_hidden_protocol_feature_is_cleared_and_both_versions_recorded(make_harness) -> None:
    harness = make_harness(hide_protocol_features=1 << 19)
    front, back = harness.open()
    offered = 1 << 19 | 1 << 3 | 1 << 0
    original = encode("GET_PROTOCOL_FEATURES", reply=True, protocol_features=offered)
    front.send(encode("GET_PROTOCOL_FEATURES"))
    back.recv_message()
    back.send(original)
    forwarded, _ = front.recv_message()
    assert struct.unpack_from("<Q", forwarded, 12)[0] == offered & ~(1 << 19)
    assert forwarded[:12] == original[:12]
    assert harness.messages()[1].data == forwarded
    (note,) = harness.events("message_modified")
    assert bytes.fromhex(note.attrs["original"]) == original
    assert note.attrs["hidden"] == ["DEVICE_STATE"]


def test_records_are_messages_with_timestamps_in_order(harness: Harness) -> None:
    front, back = harness.open()
    for _ in range(20):
        front.send(encode("GET_FEATURES"))
        back.recv_message()
        back.send(encode("GET_FEATURES", reply=True))
        front.recv_message()
    records = [r for r in harness.records() if r.kind is RecordKind.MESSAGE]
    assert [r.sender for r in records] == ["frontend", "backend"] * 20
    stamps = [r.ts_ns for r in records]
    assert stamps == sorted(stamps)


def test_loaded_capture_marks_undecodable_messages(harness: Harness) -> None:
    front, back = harness.open()
    front.send(encode("GET_FEATURES"))
    back.recv_message()
    back.send(encode("GET_FEATURES", reply=True, features=1 << 32))
    front.recv_message()
    front.send(pack_header(200, 0x1, 0))
    back.recv_message()
    front.send(pack_header(2, 0x1, 8) + b"\x00" * 4)
    front.close()
    assert back.recv_all_until_eof()[0] == pack_header(2, 0x1, 8) + b"\x00" * 4
    harness.stop()
    frame = load(harness.capture)
    messages = frame[frame["channel"] == "main"]
    assert list(messages["request"]) == ["GET_FEATURES", "GET_FEATURES", "UNKNOWN_200", "SET_FEATURES"]
    errors = messages["error"].isna().tolist()
    assert errors == [True, True, False, False]  # unknown id and 4 of 8 payload bytes are decode errors
    assert list(frame[frame["channel"] == "event"]["request"])[-2:] == ["disconnect", "shutdown"]


def recv_first_byte(endpoint) -> tuple[bytes, list[int]]:
    """One byte with whatever FDs the kernel delivers with it."""
    data, ancdata, _, _ = endpoint.sock.recvmsg(1, socket.CMSG_SPACE(16 * 4))
    fds = [fd for level, kind, payload in ancdata if kind == socket.SCM_RIGHTS for fd in array.array("i", payload)]
    return data, fds


def test_fds_sent_after_the_header_are_counted_late_and_forwarded_on_the_first_byte(harness: Harness) -> None:
    front, back = harness.open()
    message = encode("SET_MEM_TABLE", regions=[(0, 1 << 20, 0, 0), (1 << 20, 1 << 20, 0, 0)])
    memfds = [os.memfd_create(f"late-{i}") for i in range(2)]
    front.send(message[:12])  # header alone, no FDs
    time.sleep(0.05)
    front.send(message[12:], memfds)  # the payload carries the FDs
    first, fds = recv_first_byte(back)
    assert first == message[:1] and len(fds) == 2
    assert [os.fstat(fd).st_ino for fd in fds] == [os.fstat(fd).st_ino for fd in memfds]
    assert back.recv_exactly(len(message) - 1) == (message[1:], [])
    for fd in memfds + fds:
        os.close(fd)
    (record,) = harness.messages()
    assert (len(record.fds), record.late_fds) == (2, 2)


def test_only_the_fds_after_the_first_read_are_late(harness: Harness) -> None:
    front, back = harness.open()
    message = encode("SET_VRING_KICK", vring=0)
    early, late = os.eventfd(0), os.eventfd(0)
    front.send(message[:6], [early])
    time.sleep(0.05)
    front.send(message[6:], [late])
    data, fds = back.recv_message()
    assert data == message and len(fds) == 2
    for fd in (early, late, *fds):
        os.close(fd)
    (record,) = harness.messages()
    assert (len(record.fds), record.late_fds) == (2, 1)


def test_fds_on_the_first_byte_are_not_late(harness: Harness) -> None:
    front, back = harness.open()
    call = os.eventfd(0)
    front.send(encode("SET_VRING_CALL", vring=0), [call])
    _, fds = back.recv_message()
    for fd in (call, *fds):
        os.close(fd)
    (record,) = harness.messages()
    assert (len(record.fds), record.late_fds) == (1, 0)
