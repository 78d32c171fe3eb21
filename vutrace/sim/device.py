"""The simulated device: an echo/checksum device, its responses, and its config space.

For every request chain the device writes into the device-writable buffer a
56-byte response header (magic, ring, sequence number, request length, SHA-256
of the request) followed by the request bytes. The sequence number counts the
requests the device processed on that ring over its whole life: it is device
state, so after a migration or a reconnect the numbers continue, which the
front-end checks.

Chains of other drivers get the same rules: a chain with no device-readable
descriptor (a net front-end's receive buffer) is an empty request and gets the
56-byte response to it; a chain with no device-writable descriptor (a net
front-end's transmit) is read, counted and returned with used length 0.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

RESPONSE = struct.Struct("<4sIQI4x32s")
RESPONSE_MAGIC = b"VUTR"
CONFIG = struct.Struct("<IIQ")
"""Config space: max queue pairs u32, rings u32, config generation u64."""


def response(ring: int, seq: int, request: bytes) -> bytes:
    return RESPONSE.pack(RESPONSE_MAGIC, ring, seq, len(request), hashlib.sha256(request).digest()) + request


def response_problem(ring: int, seq: int, request: bytes, data: bytes) -> str | None:
    """What is wrong with a response, or None if it is the one the device must give."""
    if not data:
        return f"ring {ring} request {seq}: completed with 0 bytes (discarded, as a disabled ring does)"
    if len(data) < RESPONSE.size:
        return f"ring {ring} request {seq}: response of {len(data)} bytes, expected {RESPONSE.size + len(request)}"
    magic, got_ring, got_seq, length, digest = RESPONSE.unpack_from(data)
    if magic != RESPONSE_MAGIC:
        return f"ring {ring} request {seq}: response magic {magic!r}, expected {RESPONSE_MAGIC!r}"
    if got_ring != ring:
        return f"ring {ring} request {seq}: response names ring {got_ring}"
    if got_seq != seq:
        return f"ring {ring}: response sequence number expected {seq}, got {got_seq}"
    if length != len(request) or digest != hashlib.sha256(request).digest():
        return f"ring {ring} request {seq}: checksum of the request does not match"
    if data[RESPONSE.size :] != request:
        return f"ring {ring} request {seq}: echoed bytes differ from the request"
    return None


@dataclass
class EchoDevice:
    """Device state that outlives connections: per-ring request counters and the config generation."""

    queue_pairs: int
    processed: list[int] = field(default_factory=list)
    config_generation: int = 0

    def __post_init__(self) -> None:
        if not self.processed:
            self.processed = [0] * self.rings

    @property
    def rings(self) -> int:
        return 2 * self.queue_pairs

    def handle(self, ring: int, request: bytes) -> bytes:
        self.processed[ring] += 1
        return response(ring, self.processed[ring], request)

    def consume(self, ring: int) -> None:
        """A request with no room for a response (e.g. a net front-end's transmit): counted, not answered."""
        self.processed[ring] += 1

    def config_space(self) -> bytes:
        return CONFIG.pack(self.queue_pairs, self.rings, self.config_generation)
