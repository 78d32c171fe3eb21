"""The interposed channels: the back-end request channel and the device-state stream."""

from __future__ import annotations

import hashlib
import os
import select
import socket
import threading
import time

import pytest

from dissectors.encode import encode
from dissectors.records import decode
from tests.proxy.conftest import Harness, wait_for
from tests.proxy.peers import Endpoint, read_fd_fully, read_some, write_fd_fully
from vutrace import load
from vutrace.analysis import checks, throughput
from vutrace.analysis.frame import Capture
from vutrace.capture.model import FdAction, FdKind, RecordKind
from vutrace.capture.pcapng import read_records
from vutrace.proxy import relay

SAVE, LOAD = 0, 1


def open_backend_channel(front: Endpoint, back: Endpoint) -> tuple[Endpoint, Endpoint, int]:
    """Front-end sends SET_BACKEND_REQ_FD; returns (front-end's end, back-end's end, front-end's inode)."""
    mine, theirs = socket.socketpair()
    front.send(encode("SET_BACKEND_REQ_FD"), [theirs.fileno()])
    inode = os.fstat(theirs.fileno()).st_ino
    theirs.close()
    data, fds = back.recv_message()
    assert data == encode("SET_BACKEND_REQ_FD") and len(fds) == 1
    return Endpoint(mine), Endpoint(socket.socket(fileno=fds[0])), inode


def test_backend_channel_is_interposed_and_relays_requests_replies_and_fds(harness: Harness) -> None:
    front, back = harness.open()
    fe_channel, be_channel, fe_inode = open_backend_channel(front, back)
    assert os.fstat(be_channel.sock.fileno()).st_ino != fe_inode
    notifier = os.memfd_create("host-notifier")
    request = encode("VRING_HOST_NOTIFIER_MSG", "backend", need_reply=True, vring=1, area_size=4096)
    be_channel.send(request, [notifier])
    data, fds = fe_channel.recv_message()
    assert data == request and len(fds) == 1
    assert os.fstat(fds[0]).st_ino == os.fstat(notifier).st_ino
    reply = encode("VRING_HOST_NOTIFIER_MSG", "backend", reply=True, result=0)
    fe_channel.send(reply)
    assert be_channel.recv_message() == (reply, [])
    records = [r for r in harness.records() if r.kind is RecordKind.MESSAGE and r.channel == "backend"]
    assert [(r.sender, r.data) for r in records] == [("backend", request), ("frontend", reply)]
    assert records[0].fds[0].memfd_name == "host-notifier"
    (set_fd,) = harness.messages("main")
    assert set_fd.fds[0].action is FdAction.SUBSTITUTED and set_fd.fds[0].kind is FdKind.SOCKET


def test_new_backend_channel_replaces_the_old_one(harness: Harness) -> None:
    front, back = harness.open()
    old_fe, old_be, _ = open_backend_channel(front, back)
    new_fe, new_be, _ = open_backend_channel(front, back)
    assert old_fe.at_eof() and old_be.at_eof()
    request = encode("CONFIG_CHANGE_MSG", "backend")
    new_be.send(request)
    assert new_fe.recv_message()[0] == request
    harness.proxy.flush()
    closes = harness.events("backend_channel_close")
    assert closes[0].attrs["closed_by"] == "replaced"


def test_backend_channel_close_by_backend_reaches_the_frontend(harness: Harness) -> None:
    front, back = harness.open()
    fe_channel, be_channel, _ = open_backend_channel(front, back)
    be_channel.close()
    assert fe_channel.at_eof()
    (close,) = harness.events("backend_channel_close")
    assert close.attrs["closed_by"] == "backend"


def state_request(front: Endpoint, back: Endpoint, direction: int) -> tuple[int, int]:
    """Front-end sends SET_DEVICE_STATE_FD with its pipe end; returns (front-end's other end, back-end's FD)."""
    r, w = os.pipe()
    given, kept = (w, r) if direction == SAVE else (r, w)
    front.send(encode("SET_DEVICE_STATE_FD", direction=direction, phase=0), [given])
    os.close(given)
    data, fds = back.recv_message()
    assert data == encode("SET_DEVICE_STATE_FD", direction=direction, phase=0) and len(fds) == 1
    return kept, fds[0]


def transfer(writer_fd: int, reader_fd: int, payload: bytes) -> bytes:
    """Write ``payload`` into ``writer_fd`` and close it, while reading ``reader_fd`` to EOF."""
    thread = threading.Thread(target=lambda: (write_fd_fully(writer_fd, payload), os.close(writer_fd)))
    thread.start()
    received = read_fd_fully(reader_fd)
    thread.join()
    os.close(reader_fd)
    return received


@pytest.mark.parametrize("direction", [SAVE, LOAD], ids=["save", "load"])
def test_state_stream_through_frontend_pipe(harness: Harness, direction: int) -> None:
    front, back = harness.open()
    fe_end, be_end = state_request(front, back, direction)
    reply = encode("SET_DEVICE_STATE_FD", reply=True, u64=0x100)
    back.send(reply)
    assert front.recv_message() == (reply, [])
    payload = os.urandom(3 << 20)
    writer, reader = (be_end, fe_end) if direction == SAVE else (fe_end, be_end)
    assert transfer(writer, reader, payload) == payload
    check_state_records(harness, payload, direction, provider="frontend")


@pytest.mark.parametrize("direction", [SAVE, LOAD], ids=["save", "load"])
def test_state_stream_through_backend_provided_fd(harness: Harness, direction: int) -> None:
    front, back = harness.open()
    fe_pipe_end, be_unused = state_request(front, back, direction)
    os.close(be_unused)
    r, w = os.pipe()
    returned, be_end = (r, w) if direction == SAVE else (w, r)
    reply = encode("SET_DEVICE_STATE_FD", reply=True, u64=0)
    back.send(reply, [returned])
    os.close(returned)
    data, fds = front.recv_message()
    assert data == reply and len(fds) == 1
    assert os.fstat(fds[0]).st_ino != os.fstat(be_end).st_ino  # the proxy's pipe, not the back-end's
    os.close(fe_pipe_end)
    payload = os.urandom(2 << 20)
    writer, reader = (be_end, fds[0]) if direction == SAVE else (fds[0], be_end)
    assert transfer(writer, reader, payload) == payload
    check_state_records(harness, payload, direction, provider="backend")
    replies = [r for r in harness.messages() if r.sender == "backend"]
    assert replies[0].data == reply
    assert replies[0].fds[0].action is FdAction.SUBSTITUTED


def check_state_records(harness: Harness, payload: bytes, direction: int, provider: str) -> None:
    records = harness.records()
    chunks = [r for r in records if r.kind is RecordKind.STATE_CHUNK]
    assert b"".join(c.data for c in chunks) == payload
    assert [c.offset for c in chunks] == [sum(c.length for c in chunks[:i]) for i in range(len(chunks))]
    assert {c.sender for c in chunks} == {"backend" if direction == SAVE else "frontend"}
    (opened,) = [r for r in records if r.event == "state_open"]
    (closed,) = [r for r in records if r.event == "state_close"]
    assert opened.attrs["provider"] == closed.attrs["provider"] == provider
    assert closed.attrs["direction"] == ("SAVE" if direction == SAVE else "LOAD")
    assert closed.attrs["bytes"] == len(payload)
    assert closed.attrs["reason"] == "eof"
    assert "sha256" not in closed.attrs  # full capture: the analysis hashes the recorded bytes
    (stream,) = throughput.streams(Capture(load(harness.capture), "capture", harness.capture))
    assert (stream.sha256, stream.sha256_source) == (hashlib.sha256(payload).hexdigest(), "computed")


def test_state_eof_reaches_the_reader_only_when_the_writer_closes(harness: Harness) -> None:
    front, back = harness.open()
    fe_end, be_end = state_request(front, back, SAVE)
    back.send(encode("SET_DEVICE_STATE_FD", reply=True, u64=0x100))
    front.recv_message()
    os.write(be_end, b"first part")
    assert read_some(fe_end) == b"first part"
    ready, _, _ = select.select([fe_end], [], [], 0.3)
    assert ready == []  # no EOF while the back-end keeps its end open
    os.write(be_end, b"rest")
    os.close(be_end)
    assert read_fd_fully(fe_end) == b"rest"
    os.close(fe_end)


def test_refused_state_transfer_closes_the_proxy_pipes(harness: Harness) -> None:
    front, back = harness.open()
    fe_end, be_end = state_request(front, back, SAVE)
    back.send(encode("SET_DEVICE_STATE_FD", reply=True, u64=0x101))
    front.recv_message()
    os.close(be_end)
    assert read_fd_fully(fe_end) == b""  # the proxy let go of the front-end's write end
    os.close(fe_end)
    assert harness.events("state_open") == []


def test_hash_mode_records_chunk_digests_instead_of_bytes(make_harness) -> None:
    harness = make_harness(state_payload="hash")
    front, back = harness.open()
    fe_end, be_end = state_request(front, back, LOAD)
    back.send(encode("SET_DEVICE_STATE_FD", reply=True, u64=0x100))
    front.recv_message()
    payload = os.urandom(1 << 20)
    assert transfer(fe_end, be_end, payload) == payload
    records = harness.records()
    chunks = [r for r in records if r.kind is RecordKind.STATE_CHUNK]
    assert all(c.data == b"" and c.sha256 for c in chunks)
    assert sum(c.length for c in chunks) == len(payload)
    assert all(c.sha256 == hashlib.sha256(payload[c.offset : c.offset + c.length]).digest() for c in chunks)
    (closed,) = [r for r in records if r.event == "state_close"]
    assert closed.attrs["sha256"] == hashlib.sha256(payload).hexdigest()


def start_transfer(front: Endpoint, back: Endpoint, direction: int) -> tuple[int, int]:
    """SET_DEVICE_STATE_FD accepted without an FD: (front-end's end, back-end's end) of the relayed channel."""
    fe_end, be_end = state_request(front, back, direction)
    back.send(encode("SET_DEVICE_STATE_FD", reply=True, u64=0x100))
    front.recv_message()
    return fe_end, be_end


def read_without_waiting(fd: int) -> tuple[bytes, bool]:
    """Everything already in a pipe, and whether end-of-file follows it (no waiting for more)."""
    os.set_blocking(fd, False)
    data = bytearray()
    while True:
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            return bytes(data), False
        if not chunk:
            return bytes(data), True
        data += chunk


def test_check_device_state_reaches_the_backend_after_the_end_of_the_loaded_state(harness: Harness) -> None:
    front, back = harness.open()
    for _ in range(5):
        fe_end, be_end = start_transfer(front, back, LOAD)
        payload = os.urandom(200_000)
        write_fd_fully(fe_end, payload)
        os.close(fe_end)
        check = encode("CHECK_DEVICE_STATE")
        front.send(check)  # right after closing, as QEMU does
        assert back.recv_message() == (check, [])
        assert read_without_waiting(be_end) == (payload, True)
        os.close(be_end)
        back.send(encode("CHECK_DEVICE_STATE", reply=True, result=0))
        front.recv_message()


def test_state_close_is_recorded_before_the_check_it_held_and_timestamps_follow_the_file(harness: Harness) -> None:
    front, back = harness.open()
    fe_end, be_end = start_transfer(front, back, SAVE)
    assert transfer(be_end, fe_end, b"saved state" * 1000) == b"saved state" * 1000
    front.send(encode("CHECK_DEVICE_STATE"))
    back.recv_message()
    back.send(encode("CHECK_DEVICE_STATE", reply=True, result=0))
    front.recv_message()
    records = harness.records()
    order = [r.event or decode(r.data)["request"] for r in records if r.conn == 1]
    reply_at = order.index("SET_DEVICE_STATE_FD", order.index("SET_DEVICE_STATE_FD") + 1)
    assert order.index("state_open") > reply_at
    assert order.index("state_close") < order.index("CHECK_DEVICE_STATE")
    stamps = [r.ts_ns for r in records]
    assert stamps == sorted(stamps)


def test_a_check_sent_before_the_end_of_a_save_is_held_and_the_capture_says_when_it_came(harness: Harness) -> None:
    front, back = harness.open()
    fe_end, be_end = start_transfer(front, back, SAVE)
    write_fd_fully(be_end, b"first part")
    assert read_some(fe_end) == b"first part"
    check = encode("CHECK_DEVICE_STATE")
    front.send(check)  # too early: the front-end has not seen end-of-file

    def held() -> bool:
        harness.proxy.flush()
        return any(r.event == "message_held" for r in read_records(harness.capture))

    wait_for(held)
    os.close(be_end)
    assert read_fd_fully(fe_end) == b""
    os.close(fe_end)
    assert back.recv_message() == (check, [])
    back.send(encode("CHECK_DEVICE_STATE", reply=True, result=0))
    front.recv_message()
    records = harness.records()
    order = [r.event or decode(r.data)["request"] for r in records if r.conn == 1]
    assert order.index("message_held") < order.index("state_close") < order.index("CHECK_DEVICE_STATE")
    (held,) = harness.events("message_held")
    assert held.attrs["request"] == "CHECK_DEVICE_STATE" and held.attrs["sender"] == "frontend"
    findings = checks.check(Capture(load(harness.capture), "capture", str(harness.capture)))
    assert [f.rule for f in findings if f.rule.startswith("state.")] == ["state.check-before-close"]


def test_check_held_too_long_goes_anyway_with_an_error_event(harness: Harness, monkeypatch) -> None:
    monkeypatch.setattr(relay, "HOLD_TIMEOUT_S", 0.3)
    front, back = harness.open()
    fe_end, be_end = start_transfer(front, back, LOAD)  # the front-end never closes its end
    check = encode("CHECK_DEVICE_STATE")
    started = time.monotonic()
    front.send(check)
    assert back.recv_message() == (check, [])
    assert time.monotonic() - started >= 0.3
    os.close(fe_end)
    os.close(be_end)
    (error,) = harness.events("error")
    assert "forwarded it anyway" in error.attrs["error"]


def test_state_stream_into_a_socket_is_copied_with_backpressure(harness: Harness) -> None:
    front, back = harness.open()
    mine, theirs = socket.socketpair()  # not a pipe: no tee, the relay reads and writes
    front.send(encode("SET_DEVICE_STATE_FD", direction=SAVE, phase=0), [theirs.fileno()])
    theirs.close()
    _, (be_end,) = back.recv_message()
    back.send(encode("SET_DEVICE_STATE_FD", reply=True, u64=0x100))
    front.recv_message()
    payload = os.urandom(3 << 20)  # more than the socket buffer holds: the relay must wait for room
    writer = threading.Thread(target=lambda: (write_fd_fully(be_end, payload), os.close(be_end)))
    writer.start()
    received = bytearray()
    mine.settimeout(5)
    while chunk := mine.recv(1 << 20):
        received += chunk
    writer.join()
    mine.close()
    assert received == payload
    check_state_records(harness, payload, SAVE, provider="frontend")
