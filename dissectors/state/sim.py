"""The device-state stream of vutrace's simulated back-end (``vutrace sim``): its layout and its decoder.

Layout (little-endian)::

    header   magic "VUTRSTAT", version u32, rings u32, seed u64, payload_size u64, config_generation u64
    rings    per ring: last_avail u16, used_idx u16, flags u32 (bit 0 enabled), processed u64
    payload  payload_size bytes: 64 KiB blocks, each = seed u64, block number u64, then bytes
             of a PRNG stream seeded with ``seed`` (Python's ``random.Random``, the same for every block)
    digest   SHA-256 of everything before it

The payload stands in for the bulk of a real back-end's state, so a test can pick any size. This
module is where the layout is written down: the simulated back-end (``vutrace.sim.state``) takes
the constants and ``payload_bytes`` from here to write and verify its streams.

The decoder reads the header and the ring table, regenerates the payload from the seed to find
the first byte that differs, and checks the digest.
"""

from __future__ import annotations

import hashlib
import random
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from dissectors.state.result import StateDecode, error_row, preview

NAME = "vutrace-sim"
TITLE = "vutrace simulated back-end state"

MAGIC = b"VUTRSTAT"
VERSION = 1
HEADER = struct.Struct("<8sIIQQQ")
RING = struct.Struct("<HHIQ")
RING_ENABLED = 1
"""Bit of a ring's ``flags``: the ring was enabled."""
DIGEST_SIZE = 32
BLOCK = 64 * 1024
BLOCK_HEAD = struct.Struct("<QQ")
MAX_RINGS = 256


@lru_cache(maxsize=4)
def _block(seed: int) -> bytes:
    return random.Random(seed).randbytes(BLOCK)


def payload_bytes(seed: int, start: int, length: int) -> bytes:
    """Bytes [start, start+length) of the payload for ``seed``."""
    block = _block(seed)
    out = []
    position = start
    end = start + length
    while position < end:
        number, within = divmod(position, BLOCK)
        whole = BLOCK_HEAD.pack(seed, number) + block[BLOCK_HEAD.size :]
        take = min(BLOCK - within, end - position)
        out.append(whole[within : within + take])
        position += take
    return b"".join(out)


@dataclass
class SimRing:
    index: int
    last_avail: int
    used_idx: int
    flags: int
    processed: int

    @property
    def enabled(self) -> bool:
        return bool(self.flags & RING_ENABLED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "last_avail": self.last_avail,
            "used_idx": self.used_idx,
            "flags": self.flags,
            "enabled": self.enabled,
            "processed": self.processed,
        }


@dataclass
class SimState:
    """What the stream says; fields stay None where the stream ends (or fails) before them."""

    version: int | None = None
    ring_count: int | None = None
    seed: int | None = None
    payload_size: int | None = None
    config_generation: int | None = None
    rings: list[SimRing] = field(default_factory=list)
    expected_size: int | None = None
    """Header + ring table + payload + digest, as the header describes the stream."""
    payload_present: int = 0
    payload_matches: bool | None = None
    """Whether the payload bytes present are the seed's stream."""
    first_difference: int | None = None
    """Payload offset of the first byte that is not the seed's stream."""
    digest: bytes | None = None
    """The SHA-256 stored at the end of the stream."""
    computed_digest: bytes | None = None
    digest_ok: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "ring_count": self.ring_count,
            "seed": self.seed,
            "payload_size": self.payload_size,
            "config_generation": self.config_generation,
            "rings": [r.to_dict() for r in self.rings],
            "expected_size": self.expected_size,
            "payload_present": self.payload_present,
            "payload_matches": self.payload_matches,
            "first_difference": self.first_difference,
            "digest": self.digest.hex() if self.digest else None,
            "computed_digest": self.computed_digest.hex() if self.computed_digest else None,
            "digest_ok": self.digest_ok,
        }


def detect(stream: bytes) -> bool:
    return stream[: len(MAGIC)] == MAGIC


def _first_difference(seed: int, payload: bytes) -> int | None:
    """Where ``payload`` first departs from the seed's stream (block by block, then byte by byte)."""
    for start in range(0, len(payload), BLOCK):
        part = payload[start : start + BLOCK]
        expected = payload_bytes(seed, start, len(part))
        if part != expected:
            return start + next(i for i in range(len(part)) if part[i] != expected[i])
    return None


_HEADER_FIELDS = ("version", "ring_count", "seed", "payload_size", "config_generation")


class _Decoder:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.state = SimState()
        self.rows: list[dict[str, Any]] = []
        self.error: str | None = None

    def row(self, offset: int, length: int, kind: str, **fields: Any) -> None:
        self.rows.append({"offset": offset, "length": length, "kind": kind, **fields})

    def decode(self) -> None:
        data, state = self.data, self.state
        if len(data) < HEADER.size:
            self.error = f"stream ends inside the header: {len(data)} of {HEADER.size} bytes"
            return
        _, state.version, state.ring_count, state.seed, state.payload_size, state.config_generation = (
            HEADER.unpack_from(data)
        )
        self.row(0, HEADER.size, "header", **{k: v for k, v in state.to_dict().items() if k in _HEADER_FIELDS})
        if state.version != VERSION:
            self.error = f"header version {state.version}, expected {VERSION}"
            return
        if not 0 < state.ring_count <= MAX_RINGS:
            self.error = f"header says {state.ring_count} rings, expected 1 to {MAX_RINGS}"
            return
        table_end = HEADER.size + RING.size * state.ring_count
        state.expected_size = table_end + state.payload_size + DIGEST_SIZE
        for index in range(state.ring_count):
            offset = HEADER.size + RING.size * index
            if offset + RING.size > len(data):
                self.error = f"stream ends inside ring {index} of {state.ring_count}"
                return
            ring = SimRing(index, *RING.unpack_from(data, offset))
            state.rings.append(ring)
            self.row(offset, RING.size, "ring", **ring.to_dict())
        self.payload(table_end, state.seed, state.payload_size, state.expected_size)

    def payload(self, start: int, seed: int, size: int, expected_size: int) -> None:
        """Compare the payload with the seed's stream, then check the digest after it."""
        data, state = self.data, self.state
        payload = data[start : start + size]
        state.payload_present = len(payload)
        state.first_difference = _first_difference(seed, payload)
        state.payload_matches = state.first_difference is None
        self.row(start, len(payload), "payload", size=size, matches_seed=state.payload_matches)
        if state.first_difference is not None:
            at = state.first_difference
            expected = payload_bytes(seed, at, 1)[0]
            self.error = (
                f"payload byte {at} (stream byte {start + at}) is 0x{payload[at]:02x}, expected 0x{expected:02x}"
            )
        digest_at = start + size
        if len(data) < expected_size:
            self.error = self.error or f"stream ends after {len(data)} of {expected_size} bytes"
            return
        state.digest = data[digest_at:expected_size]
        state.computed_digest = hashlib.sha256(data[:digest_at]).digest()
        state.digest_ok = state.digest == state.computed_digest
        self.row(digest_at, DIGEST_SIZE, "digest", sha256=state.digest.hex(), verifies=state.digest_ok)
        if not state.digest_ok:
            self.error = self.error or "the SHA-256 at the end does not match the stream"
        if len(data) > expected_size:
            self.error = self.error or f"{len(data) - expected_size} bytes after the digest"


def _summary(state: SimState, error: str | None) -> str:
    if state.version is None:
        return "header incomplete"
    parts = [f"version {state.version}", f"{len(state.rings)} rings", f"payload {state.payload_size} bytes"]
    if state.digest_ok is not None:
        parts.append("SHA-256 verifies" if state.digest_ok else "SHA-256 does NOT verify")
    elif error:
        parts.append("SHA-256 not checked")
    return ", ".join(parts)


def decode(stream: bytes) -> StateDecode:
    """Decode a whole state stream of the simulated back-end; never raises."""
    data = bytes(stream)
    if not detect(data):
        return StateDecode(
            NAME, TITLE, len(data), False, "no VUTRSTAT magic", error="no VUTRSTAT magic", preview=preview(data)
        )
    decoder = _Decoder(data)
    decoder.decode()
    rows = decoder.rows
    if decoder.error is not None:
        decoded_until = max((row["offset"] + row["length"] for row in rows), default=0)
        if decoded_until < len(data) or not rows:
            rows.append(error_row(decoded_until, len(data), decoder.error))
    return StateDecode(
        format=NAME,
        title=TITLE,
        size=len(data),
        recognised=True,
        summary=_summary(decoder.state, decoder.error),
        content=decoder.state,
        rows=rows,
        error=decoder.error,
        preview=preview(data),
    )
