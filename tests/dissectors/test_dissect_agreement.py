"""The flat records and the scapy layers agree on every field of every layout, and neither raises."""

from __future__ import annotations

import struct

import pytest
from dissect_paths import scapy_record
from dissect_strategies import CASES, Case, channels, fields_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dissectors.encode import encode
from dissectors.layers import HEADER_CLASSES, dissect
from dissectors.records import decode

_FLAT_ONLY = ("request", "payload_len", "error", "warning")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_flat_and_scapy_paths_give_the_same_fields(case: Case, data: st.DataObject) -> None:
    fields = data.draw(fields_for(case.kind, case.first))
    channel = case.message.channel
    raw = encode(case.message.name, channel, reply=case.is_reply, need_reply=data.draw(st.booleans()), **fields)
    flat = {k: v for k, v in decode(raw, channel).items() if k not in _FLAT_ONLY}
    assert scapy_record(dissect(raw, channel)) == flat


def test_a_scapy_built_message_has_the_bytes_the_encoder_builds() -> None:
    from dissectors.layers import VhostUser, VhostUserVringState

    built = VhostUser(request=8, flags=0x9) / VhostUserVringState(vring=1, num=256)
    assert bytes(built) == encode("SET_VRING_NUM", need_reply=True, vring=1, num=256)


_messages = st.sampled_from(CASES).flatmap(
    lambda case: fields_for(case.kind, case.first).map(
        lambda fields: encode(case.message.name, case.message.channel, reply=case.is_reply, **fields)
    )
)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(_messages))
    for _ in range(draw(st.integers(1, 4))):
        if raw:
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(raw) + 8))
    return bytes(raw[:cut]) + draw(st.binary(max_size=8))


def _both_paths(data: bytes, channel: str, nfds: int) -> None:
    """Decode with both paths; fail on an exception or on the flat decoder's internal-error record."""
    rec = decode(data, channel, nfds)
    assert not (rec["error"] or "").startswith("internal decoder error"), rec["error"]
    assert set(rec) >= {"request_id", "request", "is_reply", "flags", "need_reply", "version", "size"}
    if channel in HEADER_CLASSES and len(data) >= 12:
        pkt = HEADER_CLASSES[channel](data)  # the class itself: dissect() would hide an exception
        assert bytes(pkt) == data
    else:
        pkt = dissect(data, channel)
    pkt.summary()


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=80) | _mutated(),
    channel=channels | st.sampled_from(["state", ""]),
    nfds=st.integers(0, 9),
)
def test_neither_path_fails_on_any_input(data: bytes, channel: str, nfds: int) -> None:
    _both_paths(data, channel, nfds)


_AWKWARD_SIZES = (0, 1, 7, 8, 9, 12, 15, 16, 20, 24, 31, 32, 40, 48, 72, 2055, 2056)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_every_message_at_every_awkward_size_decodes_without_failure(case: Case) -> None:
    flags = 0x5 if case.is_reply else 0x1
    for size in _AWKWARD_SIZES:
        header = struct.pack("<III", case.message.id, flags, size)
        for payload in (bytes(size), b"\xff" * size, bytes(size // 2)):
            _both_paths(header + payload, case.message.channel, 1)
