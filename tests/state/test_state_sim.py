"""The simulated back-end's state format, decoded from streams the back-end's own encoder writes."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from dissectors.state import sim
from dissectors.state.sim import BLOCK, DIGEST_SIZE, HEADER, RING, SimState
from vutrace.sim.state import DeviceSnapshot, RingState, encode_stream

RINGS = (RingState(7, 6, True, 40), RingState(0, 0, False, 0), RingState(65535, 1, True, 2**40))


def stream(payload_size: int = 3000, seed: int = 11, rings: tuple[RingState, ...] = RINGS) -> bytes:
    snapshot = DeviceSnapshot(seed=seed, payload_size=payload_size, config_generation=4, rings=rings)
    return b"".join(encode_stream(snapshot, chunk=1000))


def content(data: bytes) -> SimState:
    result = sim.decode(data)
    assert isinstance(result.content, SimState)
    return result.content


def test_the_header_rings_payload_and_digest_of_a_written_stream() -> None:
    data = stream()
    result = sim.decode(data)
    assert result.recognised and result.error is None and sim.detect(data)
    state = content(data)
    assert (state.version, state.ring_count, state.seed, state.payload_size, state.config_generation) == (
        1,
        3,
        11,
        3000,
        4,
    )
    assert [(r.last_avail, r.used_idx, r.enabled, r.processed) for r in state.rings] == [
        (r.last_avail, r.used_idx, r.enabled, r.processed) for r in RINGS
    ]
    assert state.expected_size == len(data)
    assert state.payload_matches and state.digest_ok
    assert state.digest == hashlib.sha256(data[:-DIGEST_SIZE]).digest()
    assert [r["kind"] for r in result.rows] == ["header", "ring", "ring", "ring", "payload", "digest"]
    assert result.summary == "version 1, 3 rings, payload 3000 bytes, SHA-256 verifies"


def test_a_flipped_payload_bit_is_located_and_the_digest_fails() -> None:
    data = bytearray(stream(payload_size=3 * BLOCK + 100))
    payload_start = HEADER.size + RING.size * len(RINGS)
    at = 2 * BLOCK + 517
    data[payload_start + at] ^= 0x10
    result = sim.decode(bytes(data))
    state = content(bytes(data))
    assert result.recognised and state.first_difference == at and state.payload_matches is False
    assert state.digest_ok is False
    assert result.error is not None and result.error.startswith(f"payload byte {at} (stream byte {payload_start + at})")


def test_a_changed_ring_only_breaks_the_digest() -> None:
    data = bytearray(stream())
    data[HEADER.size] ^= 1
    state = content(bytes(data))
    assert state.rings[0].last_avail == RINGS[0].last_avail ^ 1
    assert state.payload_matches and state.digest_ok is False
    assert sim.decode(bytes(data)).error == "the SHA-256 at the end does not match the stream"


def test_every_cut_of_a_stream_decodes_without_raising() -> None:
    data = stream(payload_size=200)
    for cut in range(len(data)):
        result = sim.decode(data[:cut])
        assert result.error is not None
        assert result.recognised == (cut >= len(sim.MAGIC))
    assert content(data[: len(data) - 1]).digest is None


def test_bytes_after_the_digest_are_an_error() -> None:
    result = sim.decode(stream() + b"\x00")
    assert result.error == "1 bytes after the digest" and content(stream() + b"\x00").digest_ok


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        (1, 2, "header version 2, expected 1"),
        (2, 0, "header says 0 rings, expected 1 to 256"),
        (2, 257, "header says 257 rings, expected 1 to 256"),
    ],
)
def test_a_header_the_back_end_refuses_stops_the_decode(field: int, value: int, error: str) -> None:
    values = list(HEADER.unpack_from(stream()))
    values[field] = value
    data = HEADER.pack(*values) + stream()[HEADER.size :]
    result = sim.decode(data)
    assert result.error == error and content(data).rings == []


def test_without_the_magic_it_is_not_this_format() -> None:
    result = sim.decode(b"VUTRSTAX" + bytes(40))
    assert not result.recognised and not sim.detect(b"VUTRSTAX")


def test_the_dissectors_do_not_import_vutrace() -> None:
    code = "import sys, dissectors.state; sys.exit(any(m.split('.')[0] == 'vutrace' for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=60).returncode == 0
