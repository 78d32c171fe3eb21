"""The device serves a net front-end's rings: receive buffers get a response, transmits are consumed.

A net driver (DPDK's virtio-user) posts chains the echo device's own driver never posts: receive
buffers with no device-readable descriptor and transmits with no device-writable one. These tests
place such chains in a started device's rings by hand, as that driver would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from vutrace.sim import Backend, Frontend, Guest
from vutrace.sim.device import RESPONSE, response
from vutrace.sim.fds import notify
from vutrace.sim.virtqueue import DESC, F_NEXT, F_WRITE, U16, USED_ELEM

WAIT_S = 5.0
STRIDE = 2048
"""Bytes between the buffers of consecutive descriptors (the ring's buffer area holds 4 of them)."""


class NetDriver:
    """One ring of a started device, driven the way a net driver does: one chain per buffer."""

    def __init__(self, frontend: Frontend, ring: int) -> None:
        self.frontend = frontend
        self.ring = ring
        self.memory = frontend.guest.memory
        self.layout = frontend.guest.queues[ring].layout
        self.buffers = frontend.guest.queues[ring].buffers
        self.avail_idx = 0
        self.next_desc = 0

    def post(self, *descriptors: tuple[bytes | int, bool]) -> int:
        """Place one chain: (bytes to send | room to receive, device-writable) per descriptor; returns its head."""
        head = self.next_desc
        for number, (content, writable) in enumerate(descriptors):
            index = self.next_desc
            self.next_desc += 1
            gpa = self.buffers + STRIDE * index
            length = content if isinstance(content, int) else len(content)
            if not isinstance(content, int):
                self.memory.write(gpa, content)
            last = number == len(descriptors) - 1
            flags = (F_WRITE if writable else 0) | (0 if last else F_NEXT)
            self.memory.write(self.layout.desc + DESC.size * index, DESC.pack(gpa, length, flags, index + 1))
        self.memory.write(self.layout.avail + 4 + 2 * (self.avail_idx % self.layout.size), U16.pack(head))
        self.avail_idx += 1
        self.memory.store_u16(self.layout.avail + 2, self.avail_idx)
        return head

    def kick(self) -> None:
        notify(self.frontend.notifiers[self.ring].kick)

    def used_idx(self) -> int:
        return U16.unpack(self.memory.read(self.layout.used + 2, 2))[0]

    def wait_used(self, count: int) -> None:
        deadline = time.monotonic() + WAIT_S
        while self.used_idx() < count:
            assert time.monotonic() < deadline, f"ring {self.ring}: used idx {self.used_idx()}, waited for {count}"
            time.sleep(0.005)

    def used(self, position: int) -> tuple[int, int]:
        """(head, length) of a used element."""
        return USED_ELEM.unpack(self.memory.read(self.layout.used + 4 + USED_ELEM.size * position, USED_ELEM.size))

    def buffer(self, desc_index: int, length: int) -> bytes:
        return self.memory.read(self.buffers + STRIDE * desc_index, length)


@pytest.fixture
def started(backend) -> Iterator[tuple[Backend, Frontend]]:
    server = backend()
    guest = Guest(queue_pairs=1, ring_size=8)
    with Frontend(server.path, guest) as frontend:
        frontend.connect().setup()
        frontend.start()
        yield server, frontend
    guest.close()


def test_a_receive_buffer_gets_the_response_to_an_empty_request(started) -> None:
    server, frontend = started
    rx = NetDriver(frontend, 0)
    head = rx.post((2048, True))
    rx.kick()
    rx.wait_used(1)
    assert rx.used(0) == (head, RESPONSE.size)
    assert rx.buffer(head, RESPONSE.size) == response(0, 1, b"")
    assert server.problems() == []


def test_a_transmit_is_consumed_and_returned_with_used_length_0(started) -> None:
    server, frontend = started
    tx = NetDriver(frontend, 1)
    header, packet = bytes(12), b"\x02" * 64
    head = tx.post((header, False), (packet, False))
    tx.kick()
    tx.wait_used(1)
    assert tx.used(0) == (head, 0)
    assert server.device.processed[1] == 1
    assert server.problems() == []


def test_a_response_larger_than_the_buffers_is_cut_short_and_the_chain_returned(started) -> None:
    server, frontend = started
    ring = NetDriver(frontend, 0)
    head = ring.post((b"r" * 100, False), (16, True))
    ring.kick()
    ring.wait_used(1)
    assert ring.used(0) == (head, 16)
    assert ring.buffer(head + 1, 16) == response(0, 1, b"r" * 100)[:16]
    assert server.problems() == ["ring 0: response needs 156 bytes, the writable buffers hold 16: cut short"]


def test_a_disabled_ring_discards_requests_but_leaves_receive_buffers_until_it_is_enabled(started) -> None:
    server, frontend = started
    frontend.request("SET_VRING_ENABLE", vring=0, num=0, ack=True, barrier=True)
    ring = NetDriver(frontend, 0)
    request = ring.post((b"q" * 10, False), (256, True))
    receive = ring.post((2048, True))
    ring.kick()
    ring.wait_used(1)
    time.sleep(0.1)
    assert ring.used_idx() == 1 and ring.used(0) == (request, 0)
    frontend.request("SET_VRING_ENABLE", vring=0, num=1, ack=True, barrier=True)
    ring.wait_used(2)
    assert ring.used(1) == (receive, RESPONSE.size)
    assert ring.buffer(receive, RESPONSE.size) == response(0, 1, b"")
    assert server.problems() == []


def test_the_events_tell_the_set_up_memory_mapped_rings_started_enabled_and_stopped(started) -> None:
    server, frontend = started
    frontend.stop()
    infos = [e.text for e in server.events if e.level == "info"]
    low, high = frontend.guest.memory.regions
    assert f"memory region mapped: guest 0x0, 0x{low.size:x} bytes, user 0x{low.user_addr:x}, mmap offset 0x0" in infos
    assert f"memory region mapped: guest 0x{high.guest_addr:x}, 0x{high.size:x} bytes, " in "\n".join(infos)
    for ring in (0, 1):
        order = [
            infos.index(f"ring {ring} started: size 8, next avail 0"),
            infos.index(f"ring {ring} enabled"),
            infos.index(f"ring {ring} disabled"),
            infos.index(f"ring {ring} stopped: next avail 0, used 0"),
        ]
        assert order == sorted(order)
    assert infos.index("all rings stopped: device suspended") > infos.index("ring 1 stopped: next avail 0, used 0")
