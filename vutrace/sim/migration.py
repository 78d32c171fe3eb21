"""A whole live migration with back-end state, driven by one front-end acting for both sides.

The order follows QEMU (docs/sim.md walks through it):

1. Both front-ends connect and do the handshake (QEMU realizes the device on
   source and destination at start-up).
2. Source: start, requests, then pre-copy: dirty logging on, the guest RAM is
   copied once, requests keep running and dirty pages are logged.
3. Switch-over: a few requests are left in the rings without a kick; the
   source device stops (SET_VRING_ENABLE 0, GET_VRING_BASE: now suspended);
   SET_DEVICE_STATE_FD(SAVE) and the state is read to EOF; CHECK_DEVICE_STATE.
   Dirty pages (the back-end's log and the driver's own writes) are copied.
4. Destination: SET_DEVICE_STATE_FD(LOAD), the state is written and the
   channel closed; CHECK_DEVICE_STATE; then the guest moves to the copied RAM
   and the device starts with SET_VRING_BASE = the source's GET_VRING_BASE; the
   requests left in flight and new ones are processed there.

If the transfer fails (the back-end refuses, a check fails), the destination
is dropped and the source resumes, as QEMU does.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from vutrace.sim.errors import GuestError, PeerClosed, PeerTimeout, ProtocolViolation, Refused, SimError, TransferFailed
from vutrace.sim.frontend import Frontend, FrontendOptions, StateTransfer
from vutrace.sim.guest import Guest
from vutrace.sim.memory import GuestMemory
from vutrace.sim.transfer import MigrationStream
from vutrace.sim.wire import Transcript


@dataclass
class MigrationPlan:
    requests: int = 16
    """Requests in each running phase: before logging, during pre-copy, after the switch-over."""
    in_flight: int = 2
    """Requests placed in the rings without a kick just before the stop; the destination processes them."""
    corrupt: bool = False
    """Flip one bit in the middle of the saved state on its way to the destination."""
    abort_after: int | None = None
    """The front-end gives up reading the saved state after this many bytes (and closes the connection)."""


@dataclass
class MigrationResult:
    ok: bool = False
    outcome: str = "not started"
    error: str | None = None
    save: StateTransfer | None = None
    load: StateTransfer | None = None
    state_sha256: str = ""
    source_bases: list[int] = field(default_factory=list)
    destination_bases: list[int] = field(default_factory=list)
    logged_pages: int = 0
    """Guest pages the source back-end marked in the dirty log."""
    copied_pages: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    transcript: Transcript = field(default_factory=Transcript)

    @property
    def state_bytes(self) -> int:
        return self.save.bytes if self.save else 0

    def throughput(self, transfer: StateTransfer | None) -> float:
        """MiB/s of one transfer (0 when it did not happen)."""
        if transfer is None or transfer.seconds <= 0:
            return 0.0
        return transfer.bytes / transfer.seconds / (1 << 20)

    def summary(self) -> list[str]:
        lines = [f"result: {self.outcome}" + (f" ({self.error})" if self.error else "")]
        if self.save:
            lines.append(
                f"state: {self.save.bytes:,} bytes, sha256 {self.state_sha256[:16]}..., channel of the "
                f"{self.save.channel}"
            )
            lines.append(f"save: {self.save.seconds * 1e3:.2f} ms, {self.throughput(self.save):.1f} MiB/s")
        if self.load:
            lines.append(
                f"load: {self.load.seconds * 1e3:.2f} ms, {self.throughput(self.load):.1f} MiB/s, "
                f"channel of the {self.load.channel}"
            )
        if self.source_bases:
            lines.append(f"ring bases: source GET_VRING_BASE {self.source_bases}")
        if self.destination_bases:
            lines.append(f"ring bases: destination SET_VRING_BASE {self.destination_bases}")
        if self.logged_pages or self.copied_pages:
            lines.append(f"dirty pages: {self.logged_pages} logged by the back-end, {self.copied_pages} copied")
        if self.requests:
            lines.append("requests: " + ", ".join(f"{n} {phase}" for phase, n in self.requests.items()))
        lines.append(f"total time: {self.seconds:.3f} s")
        return lines


def run_migration(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    queue_pairs: int = 1,
    ring_size: int = 64,
    seed: int = 1,
    options: FrontendOptions | None = None,
    plan: MigrationPlan | None = None,
    transcript: Transcript | None = None,
) -> MigrationResult:
    """Migrate from the back-end listening at ``source`` to the one at ``destination``.

    Never raises for a protocol or transfer failure: the result says what happened.
    """
    plan = plan or MigrationPlan()
    result = MigrationResult(transcript=transcript if transcript is not None else Transcript())
    started = time.monotonic()
    guest = Guest(queue_pairs, ring_size, seed)
    memories: list[GuestMemory] = [guest.memory]
    src = Frontend(source, guest, options, transcript=result.transcript, label="source")
    dst = Frontend(destination, guest, options, transcript=result.transcript, label="destination")
    try:
        src.connect().setup()
        dst.connect().setup()
        src.start()
        result.requests["before"] = src.exchange(plan.requests)
        src.start_logging()
        copy = guest.memory.clone("vutrace-guest-ram-destination")
        memories.append(copy)
        guest.memory.track_writes()
        result.requests["during pre-copy"] = src.exchange(plan.requests)
        src.submit(plan.in_flight)
        result.requests["in flight"] = plan.in_flight
        result.source_bases = src.stop()
        if not _transfer(src, dst, guest, copy, plan, result):
            return result
        guest.move_to(copy)
        src.close_connection()
        dst.start(result.source_bases)
        result.destination_bases = list(result.source_bases)
        result.requests["after"] = dst.exchange(plan.requests)
        result.ok = True
        result.outcome = "migrated"
    except SimError as error:
        result.error = str(error)
        result.outcome = f"failed ({type(error).__name__})"
    finally:
        src.close()
        dst.close()
        for memory in memories:
            memory.close()
        result.seconds = time.monotonic() - started
    return result


def _transfer(
    src: Frontend, dst: Frontend, guest: Guest, copy: GuestMemory, plan: MigrationPlan, result: MigrationResult
) -> bool:
    """Save on the source, load on the destination; on failure resume the source. True if both worked."""
    try:
        with MigrationStream() as stream:
            result.save = src.save_state(stream, abort_after=plan.abort_after)
            result.state_sha256 = stream.sha256
            assert src.log is not None and guest.memory.driver_dirty is not None
            logged = src.log.dirty_pages()
            result.logged_pages = len(logged)
            result.copied_pages = guest.memory.copy_pages(copy, set(logged) | guest.memory.driver_dirty)
            if plan.corrupt and stream.size:
                stream.corrupt(stream.size // 2)
            result.load = dst.load_state(stream)
        return True
    except (Refused, TransferFailed, PeerClosed, PeerTimeout, GuestError) as error:
        result.error = str(error)
        dst.close_connection()
        result.outcome = _resume_source(src, plan, result)
        return False
    except ProtocolViolation as error:
        result.error = str(error)
        result.outcome = "failed (protocol violation; connection dropped as QEMU does)"
        return False


def _resume_source(src: Frontend, plan: MigrationPlan, result: MigrationResult) -> str:
    """QEMU's answer to a failed migration: restart the source device and stop dirty logging."""
    if src.main is None:
        return "failed; the source is gone too"
    try:
        src.start(result.source_bases)
        src.stop_logging()
        result.requests["after resuming the source"] = src.exchange(plan.requests)
    except SimError as error:
        return f"failed; resuming the source failed too: {error}"
    return "failed; the source resumed"
