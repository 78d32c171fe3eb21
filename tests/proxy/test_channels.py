"""The interposed channels: the back-end request channel and the device-state stream."""

from __future__ import annotations

import hashlib
import os
import select
import socket
import threading

import pytest

from dissectors.encode import encode
from tests.proxy.conftest import Harness
from tests.proxy.peers import Endpoint, read_fd_fully, read_some, write_fd_fully
from vutrace.capture.model import FdAction, FdKind, RecordKind

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
    assert closed.attrs["sha256"] == hashlib.sha256(payload).hexdigest()
    assert closed.attrs["reason"] == "eof"


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
    chunks = [r for r in harness.records() if r.kind is RecordKind.STATE_CHUNK]
    assert all(c.data == b"" and c.sha256 for c in chunks)
    assert sum(c.length for c in chunks) == len(payload)
    assert all(c.sha256 == hashlib.sha256(payload[c.offset : c.offset + c.length]).digest() for c in chunks)
