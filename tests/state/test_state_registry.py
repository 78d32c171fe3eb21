"""decode_state picks the format: the sim magic, a complete virtiofsd value, else unknown with a preview."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from state_fixtures import FIND_PATHS, sample, state_bytes

from dissectors.state import EMPTY, UNKNOWN, decode_state
from dissectors.state.virtiofsd import VirtiofsdState
from vutrace.sim.state import DeviceSnapshot, RingState, encode_stream


def test_each_known_format_is_recognised() -> None:
    virtiofsd_state = state_bytes(sample(FIND_PATHS[0]))
    sim_state = b"".join(encode_stream(DeviceSnapshot(3, 100, 0, (RingState(1, 1, True, 1),))))
    assert decode_state(virtiofsd_state).format == "virtiofsd"
    assert decode_state(sim_state).format == "vutrace-sim"


def test_no_bytes_is_the_empty_format() -> None:
    result = decode_state(b"")
    assert result.format == EMPTY and not result.recognised and result.error is None


def test_unknown_bytes_get_a_hex_preview() -> None:
    data = bytes(range(0x40, 0x80))
    result = decode_state(data)
    assert result.format == UNKNOWN and result.attempts == []
    assert result.preview == " ".join(f"{b:02x}" for b in data[:32]) + " …"
    assert result.summary == "64 bytes in no known format"


def test_a_cut_virtiofsd_state_is_unknown_but_shows_what_decoded() -> None:
    data = state_bytes(sample(FIND_PATHS[0]))[:150]
    result = decode_state(data)
    assert result.format == UNKNOWN
    (attempt,) = result.attempts
    assert attempt.format == "virtiofsd" and attempt.error is not None
    assert isinstance(attempt.content, VirtiofsdState) and len(attempt.content.inodes) == 12


def test_a_sim_stream_cut_after_its_magic_stays_the_sim_format() -> None:
    result = decode_state(b"VUTRSTAT\x01")
    assert result.format == "vutrace-sim" and result.error == "stream ends inside the header: 9 of 40 bytes"


def test_every_result_is_json() -> None:
    data = state_bytes(sample(FIND_PATHS[0]))
    for piece in (data, data[:60], b"", b"\xff" * 5):
        text = json.dumps(decode_state(piece).to_dict())
        assert json.loads(text)["size"] == len(piece)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    result = decode_state(data)
    assert result.size == len(data)
