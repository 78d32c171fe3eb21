"""The proxy closes its copies of every FD it forwards: its FD count stays flat across many connections."""

from __future__ import annotations

import os
import socket

from dissectors.encode import encode
from tests.proxy.conftest import Harness, wait_for
from tests.proxy.peers import fd_count, read_fd_fully

CYCLES = 1000


def one_cycle(harness: Harness, with_channels: bool) -> None:
    front, back = harness.open()
    kick = os.eventfd(0)
    front.send(encode("SET_VRING_KICK", vring=0), [kick])
    os.close(kick)
    _, fds = back.recv_message()
    for fd in fds:
        os.close(fd)
    if with_channels:
        mine, theirs = socket.socketpair()
        front.send(encode("SET_BACKEND_REQ_FD"), [theirs.fileno()])
        theirs.close()
        _, (channel,) = back.recv_message()
        r, w = os.pipe()
        front.send(encode("SET_DEVICE_STATE_FD", direction=0, phase=0), [w])
        os.close(w)
        _, (state,) = back.recv_message()
        back.send(encode("SET_DEVICE_STATE_FD", reply=True, u64=0x100))
        front.recv_message()
        os.write(state, b"state")
        os.close(state)
        assert read_fd_fully(r) == b"state"
        os.close(r)
        os.close(channel)
        mine.close()
    front.close()
    back.close()


def test_fd_count_stays_bounded_over_many_connections(harness: Harness) -> None:
    one_cycle(harness, with_channels=True)  # warm up lazily opened files
    wait_for(lambda: harness.proxy.active == 0)
    before = fd_count()
    for i in range(CYCLES):
        one_cycle(harness, with_channels=i % 50 == 0)
    wait_for(lambda: harness.proxy.active == 0, timeout=10)
    assert fd_count() == before
    assert harness.proxy.connections == CYCLES + 1
