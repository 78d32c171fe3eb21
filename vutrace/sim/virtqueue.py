"""Split virtqueues in shared memory: the driver side (front-end) and the device side (back-end).

Layout (virtio 1.x split ring, little-endian): a descriptor table of 16-byte
entries (addr u64, len u32, flags u16, next u16); the available ring (flags u16,
idx u16, ring[size] u16, used_event u16); the used ring (flags u16, idx u16,
ring[size] of (id u32, len u32), avail_event u16). Each request is a chain of
two descriptors: the request buffer (device-readable) and the response buffer
(device-writable). Indices are free-running 16-bit counters, published with one
16-bit store each (``memory.store_u16``) because the other peer polls them.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable
from dataclasses import dataclass

from vutrace.sim.errors import GuestError
from vutrace.sim.memory import GuestMemory, MemoryTable, page_align, store_u16

DESC = struct.Struct("<QIHH")
USED_ELEM = struct.Struct("<II")
U16 = struct.Struct("<H")
F_NEXT = 0x1
F_WRITE = 0x2
F_INDIRECT = 0x4


@dataclass(frozen=True)
class RingLayout:
    """Where one ring's three parts live, as guest addresses."""

    size: int
    desc: int
    avail: int
    used: int

    @staticmethod
    def footprint(size: int) -> int:
        """Bytes one ring takes when each part starts on its own page."""
        return page_align(DESC.size * size) + page_align(6 + 2 * size) + page_align(6 + USED_ELEM.size * size)

    @classmethod
    def at(cls, base: int, size: int) -> RingLayout:
        avail = base + page_align(DESC.size * size)
        used = avail + page_align(6 + 2 * size)
        return cls(size, base, avail, used)


@dataclass
class Pending:
    """A request the driver placed in the ring and has not seen used yet."""

    head: int
    request: bytes
    response_gpa: int
    seq: int
    """The sequence number the device should give it (its count of requests on this ring)."""


class DriverQueue:
    """The front-end's (guest driver's) side of one ring."""

    def __init__(self, index: int, memory: GuestMemory, layout: RingLayout, buffers: int, slot_size: int) -> None:
        if layout.size < 2 or layout.size & (layout.size - 1):
            raise ValueError(f"ring size {layout.size} is not a power of two >= 2")
        self.index = index
        self.memory = memory
        self.layout = layout
        self.buffers = buffers
        self.slot_size = slot_size
        self.avail_idx = 0
        self.last_used = 0
        self.free_slots = list(range(layout.size // 2))
        self.outstanding: dict[int, Pending] = {}
        self.completed = 0
        self.submitted = 0

    @staticmethod
    def buffer_bytes(size: int, slot_size: int) -> int:
        return size // 2 * slot_size

    @property
    def max_request(self) -> int:
        return self.slot_size // 2

    def add(self, request: bytes) -> Pending:
        """Place one request (2-descriptor chain) and publish it in the available ring."""
        if not self.free_slots:
            raise GuestError(f"ring {self.index}: no free descriptors")
        if len(request) > self.max_request:
            raise ValueError(f"request of {len(request)} bytes exceeds the slot ({self.max_request})")
        slot = self.free_slots.pop(0)
        head = 2 * slot
        request_gpa = self.buffers + slot * self.slot_size
        response_gpa = request_gpa + self.slot_size // 2
        write = self.memory.write
        write(request_gpa, request)
        write(self.layout.desc + head * DESC.size, DESC.pack(request_gpa, len(request), F_NEXT, head + 1))
        write(self.layout.desc + (head + 1) * DESC.size, DESC.pack(response_gpa, self.slot_size // 2, F_WRITE, 0))
        write(self.layout.avail + 4 + 2 * (self.avail_idx % self.layout.size), U16.pack(head))
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.memory.store_u16(self.layout.avail + 2, self.avail_idx)
        self.submitted += 1
        pending = Pending(head, request, response_gpa, self.submitted)
        self.outstanding[head] = pending
        return pending

    def used_idx(self) -> int:
        return U16.unpack_from(self.memory.mm, self.memory.offset(self.layout.used + 2, 2))[0]

    def harvest(self) -> list[tuple[Pending, bytes]]:
        """Collect the requests the device marked used since the last call, with their response bytes."""
        done = []
        used_idx = self.used_idx()
        if (used_idx - self.last_used) & 0xFFFF > len(self.outstanding):
            raise GuestError(
                f"ring {self.index}: used idx {used_idx} is {(used_idx - self.last_used) & 0xFFFF} ahead of the "
                f"driver's {self.last_used}, but only {len(self.outstanding)} requests are outstanding"
            )
        while self.last_used != used_idx:
            entry = self.layout.used + 4 + USED_ELEM.size * (self.last_used % self.layout.size)
            head, length = USED_ELEM.unpack(self.memory.read(entry, USED_ELEM.size))
            pending = self.outstanding.pop(head, None)
            if pending is None:
                raise GuestError(f"ring {self.index}: used entry names descriptor {head}, which is not outstanding")
            if length > self.slot_size // 2:
                raise GuestError(f"ring {self.index}: used length {length} exceeds the response buffer")
            done.append((pending, self.memory.read(pending.response_gpa, length)))
            self.free_slots.append(head // 2)
            self.last_used = (self.last_used + 1) & 0xFFFF
            self.completed += 1
        return done


@dataclass
class Chain:
    """A descriptor chain the device took from the available ring."""

    head: int
    readable: list[tuple[int, int]]
    writable: list[tuple[int, int]]
    """(guest address, length) pairs."""


Logger = Callable[[int, int], None]
"""Marks a guest address range dirty (the back-end's dirty log)."""


class DeviceQueue:
    """The back-end's side of one ring, reading and writing the regions it mapped."""

    def __init__(
        self, index: int, table: MemoryTable, size: int, desc: int, avail: int, used: int, last_avail: int
    ) -> None:
        self.index = index
        self.size = size
        self.table = table
        self._desc = table.resolve(desc, DESC.size * size, user=True)
        self._avail = table.resolve(avail, 6 + 2 * size, user=True)
        self._used = table.resolve(used, 6 + USED_ELEM.size * size, user=True)
        self.last_avail = last_avail & 0xFFFF
        self.used_idx = self._u16(self._used, 2)

    @staticmethod
    def _u16(where: tuple[mmap.mmap, int], offset: int) -> int:
        mm, base = where
        return U16.unpack_from(mm, base + offset)[0]

    def available(self) -> int:
        """How many chains wait in the available ring."""
        count = (self._u16(self._avail, 2) - self.last_avail) & 0xFFFF
        if count > self.size:
            raise GuestError(
                f"ring {self.index}: avail idx is {count} entries ahead of last_avail {self.last_avail} "
                f"(ring size {self.size})"
            )
        return count

    def peek(self) -> Chain:
        """The next chain, left in the ring."""
        return self._walk(self._head())

    def pop(self) -> Chain:
        """Take the next chain; validates indices, flags and the chain length.

        A chain that fails validation is taken all the same, so one bad chain cannot block the ring.
        """
        head = self._head()
        self.last_avail = (self.last_avail + 1) & 0xFFFF
        return self._walk(head)

    def _head(self) -> int:
        return self._u16(self._avail, 4 + 2 * (self.last_avail % self.size))

    def _walk(self, head: int) -> Chain:
        chain = Chain(head, [], [])
        index = head
        mm, base = self._desc
        for _ in range(self.size):
            if index >= self.size:
                raise GuestError(f"ring {self.index}: descriptor index {index} >= ring size {self.size}")
            addr, length, flags, nxt = DESC.unpack_from(mm, base + DESC.size * index)
            if flags & F_INDIRECT:
                raise GuestError(f"ring {self.index}: indirect descriptor {index} but INDIRECT_DESC not negotiated")
            if flags & F_WRITE:
                chain.writable.append((addr, length))
            elif chain.writable:
                raise GuestError(f"ring {self.index}: readable descriptor {index} after a writable one")
            else:
                chain.readable.append((addr, length))
            if not flags & F_NEXT:
                return chain
            index = nxt
        raise GuestError(f"ring {self.index}: descriptor chain from {head} loops")

    def read(self, gpa: int, length: int) -> bytes:
        mm, offset = self.table.resolve(gpa, length, user=False)
        return mm[offset : offset + length]

    def write(self, gpa: int, data: bytes, log: Logger | None) -> None:
        mm, offset = self.table.resolve(gpa, len(data), user=False)
        mm[offset : offset + len(data)] = data
        if log:
            log(gpa, len(data))

    def push(self, head: int, written: int, log_used: Logger | None) -> None:
        """Put a used element and publish the used index (logging both writes when asked)."""
        mm, base = self._used
        slot = 4 + USED_ELEM.size * (self.used_idx % self.size)
        USED_ELEM.pack_into(mm, base + slot, head, written)
        self.used_idx = (self.used_idx + 1) & 0xFFFF
        store_u16(mm, base + 2, self.used_idx)
        if log_used:
            log_used(slot, USED_ELEM.size)
            log_used(2, 2)
