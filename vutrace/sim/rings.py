"""The back-end's rings: per-ring state (started/enabled, FDs, addresses) and the thread that serves kicks.

A ring is *started* by SET_VRING_KICK and *stopped* by GET_VRING_BASE; it is
*enabled* by SET_VRING_ENABLE (or at once when SET_FEATURES lacks bit 30), as in
the spec's "Ring states". The worker waits on every started ring's kick eventfd,
then processes the available chains: enabled rings get echo responses,
started-but-disabled rings are processed without side effects: requests are
returned with used length 0, and buffers with nothing to read (a net
front-end's receive buffers) are left in the ring. A ring that is enabled is
looked at at once, without waiting for a kick. Each turn serves at most one
ring's worth of chains, then the other rings get theirs: a driver that keeps a
ring full (DPDK's receive ring) cannot starve the others.
Used-ring and buffer writes are marked in the dirty log while logging is on.
The message loop never closes an FD the worker may be polling: it hands it to
``retire`` and the worker closes it after it stopped polling it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from dissectors.spec import VHOST_VRING_F_LOG
from vutrace.sim.errors import GuestError, PeerTimeout, SimError
from vutrace.sim.fds import close_all, drain, new_eventfd, notify, wait_readable
from vutrace.sim.memory import MemoryTable
from vutrace.sim.virtqueue import DeviceQueue


@dataclass
class RingAddresses:
    desc: int
    used: int
    avail: int
    log: int
    flags: int


@dataclass
class BackendRing:
    index: int
    size: int = 0
    base: int = 0
    used_idx: int = 0
    """The used index when the ring was last stopped (part of the saved device state)."""
    addresses: RingAddresses | None = None
    kick: int | None = None
    call: int | None = None
    err: int | None = None
    enabled: bool = False
    queue: DeviceQueue | None = None
    """Present while the ring is started."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def started(self) -> bool:
        return self.queue is not None

    def start(self, table: MemoryTable) -> None:
        """Start (or re-bind after a memory or address change) at the current base."""
        if self.addresses is None:
            raise GuestError(f"ring {self.index}: no SET_VRING_ADDR before the ring was started")
        if not self.size:
            raise GuestError(f"ring {self.index}: no SET_VRING_NUM before the ring was started")
        base = self.queue.last_avail if self.queue is not None else self.base
        a = self.addresses
        self.queue = DeviceQueue(self.index, table, self.size, a.desc, a.avail, a.used, base)

    def stop(self) -> int:
        """Stop the ring; returns the next available index to process (GET_VRING_BASE's answer)."""
        if self.queue is not None:
            self.base = self.queue.last_avail
            self.used_idx = self.queue.used_idx
            self.queue = None
        return self.base


class RingWorker:
    """Serves the kicks of all rings of one connection."""

    def __init__(
        self,
        rings: list[BackendRing],
        process: Callable[[BackendRing], bool],
        on_problem: Callable[[str], None],
    ) -> None:
        """``process`` serves one turn of a ring and says whether chains are left for another turn."""
        self.rings = rings
        self.process = process
        self.on_problem = on_problem
        self._wake = new_eventfd()
        self._stop = False
        self._retired: list[int] = []
        self._scheduled: set[int] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ring worker", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        notify(self._wake)

    def schedule(self, index: int) -> None:
        """Look at a ring on the next turn even without a kick (e.g. it was just enabled)."""
        with self._lock:
            self._scheduled.add(index)
        self.wake()

    def retire(self, fd: int | None) -> None:
        """An FD the worker may still be polling: it closes it on its next turn.

        Callers install the replacement first, so the worker never polls a retired FD again.
        """
        if fd is not None:
            with self._lock:
                self._retired.append(fd)
            self.wake()

    def stop(self, timeout: float) -> None:
        self._stop = True
        self.wake()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.on_problem("ring worker did not stop in time")
            return
        with self._lock:
            close_all(self._retired)
            self._retired.clear()
        close_all([self._wake])

    def _run(self) -> None:
        pending: set[int] = set()  # rings with chains left after their turn: served again without a kick
        while not self._stop:
            with self._lock:
                close_all(self._retired)
                self._retired.clear()
                pending |= self._scheduled
                self._scheduled.clear()
            kicks = {ring.kick: ring for ring in self.rings if ring.kick is not None}
            try:
                ready = wait_readable([self._wake, *kicks], 0 if pending else None, "kick")
            except PeerTimeout:
                ready = []
            if self._wake in ready:
                drain(self._wake)
            due, pending = pending, set()
            for fd in ready:
                ring = kicks.get(fd)
                if ring is not None:
                    drain(fd)
                    due.add(ring.index)
            for index in sorted(due):
                if self._stop:
                    break
                try:
                    if self.process(self.rings[index]):
                        pending.add(index)
                except SimError as error:
                    self.on_problem(str(error))


def log_flag(addresses: RingAddresses | None) -> bool:
    return addresses is not None and bool(addresses.flags & VHOST_VRING_F_LOG)
