"""The device-state stream: deterministic, verified on load, every corruption found and located."""

from __future__ import annotations

import hashlib

import pytest

from vutrace.sim.errors import TransferFailed
from vutrace.sim.state import HEADER, DeviceSnapshot, RingState, StreamLoader, encode_stream

SNAPSHOT = DeviceSnapshot(seed=9, payload_size=200_000, config_generation=4, rings=(RingState(5, 5, True, 5),) * 2)


def stream(snapshot: DeviceSnapshot = SNAPSHOT) -> bytes:
    return b"".join(encode_stream(snapshot, chunk=7_000))


def load(data: bytes, piece: int = 4_099) -> DeviceSnapshot:
    loader = StreamLoader(max_rings=16)
    for start in range(0, len(data), piece):
        loader.feed(data[start : start + piece])
    return loader.finish()


def test_the_stream_round_trips_in_any_read_sizes() -> None:
    data = stream()
    assert len(data) == SNAPSHOT.stream_size
    assert load(data, piece=65_536) == SNAPSHOT
    small = DeviceSnapshot(seed=2, payload_size=3_000, config_generation=1, rings=SNAPSHOT.rings)
    assert load(stream(small), piece=1) == small


def test_the_stream_is_deterministic() -> None:
    assert hashlib.sha256(stream()).digest() == hashlib.sha256(stream()).digest()


def test_a_flipped_payload_bit_is_located() -> None:
    data = bytearray(stream())
    offset = HEADER.size + 2 * 16 + 150_000
    data[offset] ^= 1
    with pytest.raises(TransferFailed, match="payload byte 150000 is"):
        load(bytes(data))


def test_a_flipped_ring_table_bit_fails_the_digest() -> None:
    data = bytearray(stream())
    data[HEADER.size] ^= 1
    with pytest.raises(TransferFailed, match="SHA-256 at the end does not match"):
        load(bytes(data))


def test_a_truncated_stream_says_how_far_it_got() -> None:
    data = stream()
    with pytest.raises(TransferFailed, match=f"stream ended after {len(data) - 1} of {len(data)} bytes"):
        load(data[:-1])


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(TransferFailed, match="3 bytes after the end of the state"):
        load(stream() + b"xyz")


def test_a_foreign_stream_is_refused_at_the_magic() -> None:
    with pytest.raises(TransferFailed, match="header magic"):
        load(b"\x01\x00\x02\x00" + bytes(100))


def test_more_rings_than_the_device_has_are_refused() -> None:
    many = DeviceSnapshot(1, 0, 0, (RingState(0, 0, False, 0),) * 20)
    with pytest.raises(TransferFailed, match="header says 20 rings, this device has at most 16"):
        load(stream(many))


def test_an_empty_payload_is_a_valid_state() -> None:
    empty = DeviceSnapshot(1, 0, 0, (RingState(1, 1, True, 1),))
    assert load(stream(empty)) == empty
