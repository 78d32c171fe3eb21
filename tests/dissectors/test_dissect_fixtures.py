"""Hand-written wire bytes of every message, request and reply, decoded by both paths."""

from __future__ import annotations

import pytest
from dissect_fixtures import FIXTURES, Fixture
from dissect_paths import scapy_record

from dissectors import spec
from dissectors.layers import VhostUserVringBase, dissect
from dissectors.records import decode, packed_vring_base, split_vring_base


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.label)
def test_flat_record_has_the_fixture_fields(fixture: Fixture) -> None:
    rec = decode(fixture.raw, fixture.channel, fixture.nfds)
    assert (rec["error"], rec["warning"]) == (None, fixture.warning)
    assert rec["request"] == fixture.name
    assert rec["is_reply"] is fixture.is_reply
    assert rec["size"] == rec["payload_len"] == len(fixture.raw) - 12
    assert {k: rec[k] for k in fixture.fields} == fixture.fields


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.label)
def test_scapy_layers_have_the_fixture_fields(fixture: Fixture) -> None:
    pkt = dissect(fixture.raw, fixture.channel)
    assert pkt.get_field("request").i2repr(pkt, pkt.request) == fixture.name
    assert bytes(pkt) == fixture.raw
    fields = scapy_record(pkt)
    assert {k: fields[k] for k in fixture.fields} == fixture.fields


def test_every_message_has_a_request_and_a_reply_fixture() -> None:
    covered = {(f.channel, f.name, f.is_reply) for f in FIXTURES}
    wanted = {(str(m.channel), m.name, r) for table in spec.MESSAGES.values() for m in table.values() for r in (0, 1)}
    assert wanted - covered == set()
    assert len(wanted) == 2 * (45 + 10)


def test_the_packed_vring_base_reads_as_indices_and_wrap_counters() -> None:
    raw = bytes.fromhex("0b000000 05000000 08000000 01000000 03800580")
    assert packed_vring_base(decode(raw)["num"]) == (3, True, 5, True)
    assert dissect(raw)[VhostUserVringBase].packed() == (3, True, 5, True)


def test_the_split_vring_base_is_the_low_16_bits() -> None:
    assert split_vring_base(decode(bytes.fromhex("0b000000 05000000 08000000 01000000 2a000000"))["num"]) == 42


def test_the_info_line_names_the_message_and_its_fields() -> None:
    raw = bytes.fromhex("0f000000 05000000 08000000 2ba4080000000000")
    assert dissect(raw).summary() == (
        "GET_PROTOCOL_FEATURES reply protocol_features="
        "MQ+LOG_SHMFD+REPLY_ACK+BACKEND_REQ+BACKEND_SEND_FD+RESET_DEVICE+CONFIGURE_MEM_SLOTS+DEVICE_STATE"
    )


def test_unknown_feature_bits_are_shown_by_number() -> None:
    raw = bytes.fromhex("01000000 05000000 08000000 0100000000000080")
    assert dissect(raw).summary() == "GET_FEATURES reply features=bit0+bit63"
