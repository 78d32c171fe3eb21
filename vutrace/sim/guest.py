"""The guest the front-end serves: its RAM and the driver side of every ring.

Guest RAM holds the rings in the low region and the request/response buffers
in the high region. Each ring has ``ring_size / 2`` request slots. Requests
are random bytes from a seeded PRNG, so runs are reproducible. On migration
the guest moves to new RAM (``move_to``) and keeps its driver state, just as
a real guest's driver never notices the migration.
"""

from __future__ import annotations

import random

from vutrace.sim.device import RESPONSE, response_problem
from vutrace.sim.errors import GuestError
from vutrace.sim.memory import HIGH_RAM_BASE, GuestMemory, page_align
from vutrace.sim.virtqueue import DriverQueue, Pending, RingLayout

MIB = 1 << 20


class Guest:
    def __init__(self, queue_pairs: int = 1, ring_size: int = 64, seed: int = 1, max_request: int = 1024) -> None:
        if not 1 <= queue_pairs <= 8:
            raise ValueError(f"queue pairs {queue_pairs}: 1 to 8 are supported")
        self.queue_pairs = queue_pairs
        self.ring_size = ring_size
        self.max_request = max_request
        self.rings = 2 * queue_pairs
        self.slot_size = 2 * ((max_request + RESPONSE.size + 63) // 64 * 64)
        ring_bytes = RingLayout.footprint(ring_size)
        buffer_bytes = DriverQueue.buffer_bytes(ring_size, self.slot_size)
        low = max(MIB, page_align(self.rings * ring_bytes))
        high = max(MIB, page_align(self.rings * buffer_bytes))
        self.memory = GuestMemory(low, high)
        self.queues = [
            DriverQueue(
                i,
                self.memory,
                RingLayout.at(i * ring_bytes, ring_size),
                HIGH_RAM_BASE + i * buffer_bytes,
                self.slot_size,
            )
            for i in range(self.rings)
        ]
        self._random = random.Random(seed)

    def make_request(self) -> bytes:
        return self._random.randbytes(self._random.randint(1, self.max_request))

    def submit(self, ring: int) -> Pending:
        return self.queues[ring].add(self.make_request())

    def harvest(self, ring: int) -> int:
        """Collect and verify the responses the device put in the used ring; returns how many."""
        queue = self.queues[ring]
        done = queue.harvest()
        for pending, data in done:
            problem = response_problem(ring, pending.seq, pending.request, data)
            if problem:
                raise GuestError(problem)
        return len(done)

    @property
    def outstanding(self) -> int:
        return sum(len(q.outstanding) for q in self.queues)

    @property
    def completed(self) -> int:
        return sum(q.completed for q in self.queues)

    def move_to(self, memory: GuestMemory) -> GuestMemory:
        """Switch to other RAM (the migration destination's); returns the old RAM for the caller to close."""
        source_used = [queue.used_idx() for queue in self.queues]
        old, self.memory = self.memory, memory
        for queue, used in zip(self.queues, source_used, strict=True):
            queue.memory = memory
            if queue.used_idx() != used:
                raise GuestError(
                    f"ring {queue.index}: used idx in the destination RAM is {queue.used_idx()}, in the source RAM "
                    f"{used} (a used-ring write was missing from the dirty log)"
                )
        return old

    def close(self) -> None:
        self.memory.close()
