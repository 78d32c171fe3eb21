"""Split virtqueues in shared memfd memory: the driver's side and the device's side agree, and bad rings are named."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

import pytest

from vutrace.sim.device import response, response_problem
from vutrace.sim.errors import GuestError
from vutrace.sim.guest import Guest
from vutrace.sim.memory import MemoryTable, Region
from vutrace.sim.virtqueue import DESC, F_NEXT, DeviceQueue


@pytest.fixture
def rig() -> Iterator[tuple[Guest, MemoryTable]]:
    """A guest and a back-end memory table that mapped the guest's RAM from its FDs."""
    guest = Guest(queue_pairs=1, ring_size=8, seed=3)
    table = MemoryTable()
    for region in guest.memory.regions:
        table.add(region, os.dup(guest.memory.fd))
    yield guest, table
    table.clear()
    guest.close()


def device_queue(guest: Guest, table: MemoryTable, ring: int = 0) -> DeviceQueue:
    layout = guest.queues[ring].layout
    user = guest.memory.user_addr
    return DeviceQueue(ring, table, layout.size, user(layout.desc), user(layout.avail), user(layout.used), 0)


def test_a_request_travels_driver_to_device_and_the_response_back(rig) -> None:
    guest, table = rig
    pending = guest.submit(0)
    queue = device_queue(guest, table)
    assert queue.available() == 1
    chain = queue.pop()
    request = b"".join(queue.read(a, n) for a, n in chain.readable)
    assert request == pending.request
    data = response(0, 1, request)
    queue.write(chain.writable[0][0], data, None)
    queue.push(chain.head, len(data), None)
    assert guest.harvest(0) == 1
    assert guest.outstanding == 0


def test_the_driver_rejects_a_wrong_sequence_number(rig) -> None:
    guest, table = rig
    guest.submit(0)
    queue = device_queue(guest, table)
    chain = queue.pop()
    request = b"".join(queue.read(a, n) for a, n in chain.readable)
    queue.write(chain.writable[0][0], response(0, 7, request), None)
    queue.push(chain.head, len(response(0, 7, request)), None)
    with pytest.raises(GuestError, match="response sequence number expected 1, got 7"):
        guest.harvest(0)


def test_a_descriptor_chain_that_loops_is_refused(rig) -> None:
    guest, table = rig
    pending = guest.submit(0)
    desc = guest.queues[0].layout.desc + DESC.size * (pending.head + 1)
    guest.memory.write(desc, DESC.pack(0x1_0000_0000, 16, F_NEXT, pending.head))
    with pytest.raises(GuestError, match="descriptor chain from 0 loops"):
        device_queue(guest, table).pop()


def test_an_avail_index_running_ahead_of_the_ring_is_refused(rig) -> None:
    guest, table = rig
    guest.memory.write(guest.queues[0].layout.avail + 2, struct.pack("<H", 100))
    with pytest.raises(GuestError, match="avail idx is 100 entries ahead of last_avail 0"):
        device_queue(guest, table).available()


def test_an_address_outside_every_region_is_named(rig) -> None:
    _, table = rig
    with pytest.raises(GuestError, match="guest address 0x5000000000 \\(\\+4\\) is not in any mapped region"):
        table.resolve(0x50_0000_0000, 4, user=False)


def test_overlapping_regions_are_refused(rig) -> None:
    guest, table = rig
    region = guest.memory.regions[0]
    with pytest.raises(GuestError, match="overlaps guest 0x0"):
        table.add(Region(0x800, 0x1000, 0x1234_0000, 0), os.dup(guest.memory.fd))
    assert len(table.regions) == 2 and region.guest_addr == 0


def test_response_problems_name_the_ring_and_request() -> None:
    good = response(2, 5, b"abc")
    assert response_problem(2, 5, b"abc", good) is None
    assert response_problem(2, 5, b"abd", good) == "ring 2 request 5: checksum of the request does not match"
