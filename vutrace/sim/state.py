"""The back-end's device-state stream: what the source writes and the destination verifies.

The layout (header, ring table, seeded payload, SHA-256) is written down once, in
``dissectors/state/sim.py``, which also decodes such streams in captures; this module takes the
constants and the payload generator from there.

The payload stands in for the bulk of a real back-end's state and lets a test
pick any size from bytes to GiB. The destination regenerates it from the seed
and compares, and checks the digest, so a flipped byte anywhere is found.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from dissectors.state.sim import DIGEST_SIZE, HEADER, MAGIC, MAX_RINGS, RING, RING_ENABLED, VERSION, payload_bytes
from vutrace.sim.errors import TransferFailed


@dataclass(frozen=True)
class RingState:
    last_avail: int
    used_idx: int
    enabled: bool
    processed: int


@dataclass(frozen=True)
class DeviceSnapshot:
    """What the stream carries besides its payload."""

    seed: int
    payload_size: int
    config_generation: int
    rings: tuple[RingState, ...]

    @property
    def stream_size(self) -> int:
        return HEADER.size + RING.size * len(self.rings) + self.payload_size + DIGEST_SIZE


def encode_stream(snapshot: DeviceSnapshot, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The stream in pieces of at most ``chunk`` bytes (so GiB states never sit in memory)."""
    digest = hashlib.sha256()
    head = HEADER.pack(
        MAGIC, VERSION, len(snapshot.rings), snapshot.seed, snapshot.payload_size, snapshot.config_generation
    ) + b"".join(
        RING.pack(r.last_avail, r.used_idx, RING_ENABLED if r.enabled else 0, r.processed) for r in snapshot.rings
    )
    digest.update(head)
    yield head
    for start in range(0, snapshot.payload_size, chunk):
        data = payload_bytes(snapshot.seed, start, min(chunk, snapshot.payload_size - start))
        digest.update(data)
        yield data
    yield digest.digest()


class StreamLoader:
    """Verifies a state stream as it arrives; ``finish`` returns the snapshot or raises TransferFailed."""

    def __init__(self, max_rings: int) -> None:
        self.max_rings = max_rings
        self.received = 0
        self._digest = hashlib.sha256()
        self._head = bytearray()
        self._tail = bytearray()
        self._snapshot: DeviceSnapshot | None = None
        self._payload_seen = 0
        self.error: str | None = None

    def feed(self, data: bytes) -> None:
        if self.error:
            return
        self.received += len(data)
        view = memoryview(data)
        if self._snapshot is None:
            view = self._feed_head(view)
            if self._snapshot is None or self.error:
                return
        if self._payload_seen < self._snapshot.payload_size:
            take = min(len(view), self._snapshot.payload_size - self._payload_seen)
            part = bytes(view[:take])
            expected = payload_bytes(self._snapshot.seed, self._payload_seen, take)
            if part != expected:
                offset = next(i for i in range(take) if part[i] != expected[i])
                at = self._payload_seen + offset
                self.error = f"payload byte {at} is 0x{part[offset]:02x}, expected 0x{expected[offset]:02x}"
                return
            self._digest.update(part)
            self._payload_seen += take
            view = view[take:]
        self._tail += view
        if len(self._tail) > DIGEST_SIZE:
            self.error = f"{len(self._tail) - DIGEST_SIZE} bytes after the end of the state"

    def _feed_head(self, view: memoryview) -> memoryview:
        """Collect header and ring table; validate the header as soon as it is complete."""
        if len(self._head) < HEADER.size:
            take = min(len(view), HEADER.size - len(self._head))
            self._head += view[:take]
            view = view[take:]
            if len(self._head) < HEADER.size:
                return view
            magic, version, rings, *_ = HEADER.unpack_from(self._head)
            if magic != MAGIC:
                self.error = f"header magic {bytes(magic)!r}, expected {MAGIC!r}"
            elif version != VERSION:
                self.error = f"header version {version}, expected {VERSION}"
            elif not 0 < rings <= min(self.max_rings, MAX_RINGS):
                self.error = f"header says {rings} rings, this device has at most {self.max_rings}"
            if self.error:
                return view
        _, _, count, seed, payload_size, generation = HEADER.unpack_from(self._head)
        need = HEADER.size + RING.size * count
        take = min(len(view), need - len(self._head))
        self._head += view[:take]
        view = view[take:]
        if len(self._head) < need:
            return view
        rings = tuple(
            RingState(a, u, bool(f & RING_ENABLED), p)
            for a, u, f, p in RING.iter_unpack(bytes(self._head[HEADER.size :]))
        )
        self._snapshot = DeviceSnapshot(seed, payload_size, generation, rings)
        self._digest.update(self._head)
        return view

    def finish(self) -> DeviceSnapshot:
        if self.error:
            raise TransferFailed(f"device state: {self.error}")
        if self._snapshot is None:
            raise TransferFailed(f"device state: stream ended after {self.received} bytes, inside the header")
        if self._payload_seen < self._snapshot.payload_size or len(self._tail) < DIGEST_SIZE:
            raise TransferFailed(
                f"device state: stream ended after {self.received} of {self._snapshot.stream_size} bytes"
            )
        if bytes(self._tail) != self._digest.digest():
            raise TransferFailed("device state: SHA-256 at the end does not match the stream")
        return self._snapshot
