"""Guest memory: memfd-backed regions the front-end owns, the back-end's mapped memory table, the dirty log.

The front-end's ``GuestMemory`` is one memfd holding two regions laid out as
QEMU lays out a q35 guest's RAM (low RAM at guest address 0, the rest at 4 GiB,
both from the same memfd at different offsets, one FD per region on the wire).
User addresses are opaque values the front-end chose (the spec allows any).
The back-end's ``MemoryTable`` maps each region from the FD it received and
translates user addresses (ring addresses) and guest addresses (descriptors).
"""

from __future__ import annotations

import mmap
import os
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from dissectors.spec import VHOST_LOG_PAGE
from vutrace.sim.errors import GuestError

PAGE = 4096
HIGH_RAM_BASE = 1 << 32
"""Guest address of the second region (QEMU puts RAM above 4 GiB there)."""
USER_BASE = 0x7F00_0000_0000
"""The user address at which the front-end says it mapped guest RAM."""


def page_align(n: int) -> int:
    return (n + PAGE - 1) // PAGE * PAGE


def store_u16(mm: mmap.mmap, offset: int, value: int) -> None:
    """Publish a ring index (little-endian u16) with a single 16-bit store.

    The other peer polls these indices while we write them. ``struct.pack_into`` zeroes the
    field before it writes the value, so a poller can read 0 in between: DPDK's virtio-user
    then took thousands of stale used entries for new packets. A memoryview item assignment
    is one store of the whole field.
    """
    native = int.from_bytes(value.to_bytes(2, "little"), sys.byteorder)
    with memoryview(mm)[offset : offset + 2] as field, field.cast("H") as index:
        index[0] = native


@dataclass(frozen=True)
class Region:
    """One memory region as SET_MEM_TABLE / ADD_MEM_REG describe it."""

    guest_addr: int
    size: int
    user_addr: int
    mmap_offset: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.guest_addr, self.size, self.user_addr, self.mmap_offset)


class GuestMemory:
    """The front-end's guest RAM: one memfd, two regions, optional tracking of the driver's own writes."""

    def __init__(self, low_size: int, high_size: int, name: str = "vutrace-guest-ram") -> None:
        low_size, high_size = page_align(low_size), page_align(high_size)
        self.name = name
        self.fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(self.fd, low_size + high_size)
        self.mm = mmap.mmap(self.fd, low_size + high_size)
        self.regions = (
            Region(0, low_size, USER_BASE, 0),
            Region(HIGH_RAM_BASE, high_size, USER_BASE + low_size, low_size),
        )
        self.driver_dirty: set[int] | None = None
        """Guest pages the driver wrote since ``track_writes`` (None: not tracking)."""

    def offset(self, gpa: int, length: int) -> int:
        """Offset in the memfd of a guest address range (which must lie inside one region)."""
        for region in self.regions:
            if region.guest_addr <= gpa and gpa + length <= region.guest_addr + region.size:
                return region.mmap_offset + gpa - region.guest_addr
        raise GuestError(f"guest address 0x{gpa:x} (+{length}) is outside guest RAM")

    def user_addr(self, gpa: int) -> int:
        for region in self.regions:
            if region.guest_addr <= gpa < region.guest_addr + region.size:
                return region.user_addr + gpa - region.guest_addr
        raise GuestError(f"guest address 0x{gpa:x} is outside guest RAM")

    def read(self, gpa: int, length: int) -> bytes:
        start = self.offset(gpa, length)
        return self.mm[start : start + length]

    def write(self, gpa: int, data: bytes) -> None:
        start = self.offset(gpa, len(data))
        self.mm[start : start + len(data)] = data
        self._track(gpa, len(data))

    def store_u16(self, gpa: int, value: int) -> None:
        """Publish a ring index with one store (see ``store_u16``)."""
        store_u16(self.mm, self.offset(gpa, 2), value)
        self._track(gpa, 2)

    def _track(self, gpa: int, length: int) -> None:
        if self.driver_dirty is not None and length:
            self.driver_dirty.update(range(gpa // VHOST_LOG_PAGE, (gpa + length - 1) // VHOST_LOG_PAGE + 1))

    @property
    def end(self) -> int:
        """The highest guest address + 1 (the dirty log covers 0 up to here)."""
        return max(r.guest_addr + r.size for r in self.regions)

    @property
    def log_size(self) -> int:
        """Bytes of the dirty bitmap, in u64 chunks of 64 pages as QEMU sizes it."""
        pages = (self.end + VHOST_LOG_PAGE - 1) // VHOST_LOG_PAGE
        return (pages + 63) // 64 * 8

    def track_writes(self) -> None:
        """Start remembering which pages the driver writes (the pre-copy of migration)."""
        self.driver_dirty = set()

    def clone(self, name: str) -> GuestMemory:
        """A new memfd with the same layout and contents (the first pass of a RAM migration)."""
        low, high = (r.size for r in self.regions)
        copy = GuestMemory(low, high, name)
        copy.mm[:] = self.mm[:]
        return copy

    def copy_pages(self, dest: GuestMemory, pages: Iterable[int]) -> int:
        """Copy guest pages (by page number) into ``dest``; returns how many were copied."""
        count = 0
        for page in sorted(set(pages)):
            gpa = page * VHOST_LOG_PAGE
            try:
                start = self.offset(gpa, VHOST_LOG_PAGE)
            except GuestError:
                continue
            dest.mm[start : start + VHOST_LOG_PAGE] = self.mm[start : start + VHOST_LOG_PAGE]
            count += 1
        return count

    def close(self) -> None:
        self.mm.close()
        os.close(self.fd)


class DirtyLog:
    """The front-end's dirty-page bitmap: a memfd it passes with SET_LOG_BASE and reads after the stop."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.fd = os.memfd_create("vutrace-dirty-log", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, size)
        self.mm = mmap.mmap(self.fd, size)

    def dirty_pages(self) -> list[int]:
        pages = []
        data = self.mm[:]
        for index, byte in enumerate(data):
            if byte:
                pages.extend(index * 8 + bit for bit in range(8) if byte >> bit & 1)
        return pages

    def close(self) -> None:
        self.mm.close()
        os.close(self.fd)


class LogWriter:
    """The back-end's view of the dirty log: sets one bit per 4 KiB guest page it writes."""

    def __init__(self, fd: int, size: int, offset: int) -> None:
        try:
            self.mm = mmap.mmap(fd, size, offset=offset)
        except (OSError, ValueError) as error:
            raise GuestError(f"SET_LOG_BASE: cannot map the log (size {size}, offset {offset}): {error}") from error
        finally:
            os.close(fd)
        self.size = size
        self._lock = threading.Lock()
        self.out_of_range = 0

    def mark(self, gpa: int, length: int) -> None:
        if length <= 0:
            return
        with self._lock:
            for page in range(gpa // VHOST_LOG_PAGE, (gpa + length - 1) // VHOST_LOG_PAGE + 1):
                byte = page >> 3
                if byte >= self.size:
                    self.out_of_range += 1
                    continue
                self.mm[byte] |= 1 << (page & 7)

    def close(self) -> None:
        self.mm.close()


@dataclass
class MappedRegion:
    guest_addr: int
    size: int
    user_addr: int
    mmap_offset: int
    mm: mmap.mmap


class MemoryTable:
    """The back-end's memory regions, mapped from the FDs of SET_MEM_TABLE / ADD_MEM_REG."""

    def __init__(self) -> None:
        self.regions: list[MappedRegion] = []

    def add(self, region: Region, fd: int) -> None:
        """Map a region from its FD (which is closed here); overlapping regions are refused (spec M1)."""
        try:
            for other in self.regions:
                if _overlap(region.guest_addr, region.size, other.guest_addr, other.size):
                    raise GuestError(f"region at guest 0x{region.guest_addr:x} overlaps guest 0x{other.guest_addr:x}")
                if _overlap(region.user_addr, region.size, other.user_addr, other.size):
                    raise GuestError(f"region at user 0x{region.user_addr:x} overlaps user 0x{other.user_addr:x}")
            if region.mmap_offset % mmap.ALLOCATIONGRANULARITY:
                raise GuestError(f"mmap_offset 0x{region.mmap_offset:x} is not page aligned")
            try:
                mm = mmap.mmap(fd, region.size, offset=region.mmap_offset)
            except (OSError, ValueError) as error:
                raise GuestError(
                    f"cannot map region guest 0x{region.guest_addr:x} size 0x{region.size:x} "
                    f"offset 0x{region.mmap_offset:x}: {error}"
                ) from error
        finally:
            os.close(fd)
        self.regions.append(MappedRegion(*region.as_tuple(), mm))

    def remove(self, region: Region) -> bool:
        """Unmap the region matching guest address, user address and size (the offset is ignored)."""
        for mapped in self.regions:
            if (mapped.guest_addr, mapped.user_addr, mapped.size) == (region.guest_addr, region.user_addr, region.size):
                self.regions.remove(mapped)
                mapped.mm.close()
                return True
        return False

    def clear(self) -> None:
        for mapped in self.regions:
            mapped.mm.close()
        self.regions.clear()

    def resolve(self, addr: int, length: int, *, user: bool) -> tuple[mmap.mmap, int]:
        """The mapping and offset of a user (ring) or guest (descriptor) address range."""
        for mapped in self.regions:
            base = mapped.user_addr if user else mapped.guest_addr
            if base <= addr and addr + length <= base + mapped.size:
                return mapped.mm, addr - base
        kind = "user" if user else "guest"
        raise GuestError(f"{kind} address 0x{addr:x} (+{length}) is not in any mapped region")


def _overlap(a: int, a_size: int, b: int, b_size: int) -> bool:
    return a < b + b_size and b < a + a_size
