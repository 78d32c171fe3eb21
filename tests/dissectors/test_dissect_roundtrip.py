"""decode(encode(m)) == m for every layout of every message, both channels, both directions."""

from __future__ import annotations

import pytest
from dissect_strategies import CASES, Case, expected_record, fields_for
from hypothesis import given, settings
from hypothesis import strategies as st

from dissectors.encode import encode
from dissectors.records import BASE_KEYS, decode


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_decode_gives_back_what_encode_was_given(case: Case, data: st.DataObject) -> None:
    fields = data.draw(fields_for(case.kind, case.first))
    need_reply = data.draw(st.booleans())
    raw = encode(case.message.name, case.message.channel, reply=case.is_reply, need_reply=need_reply, **fields)
    rec = decode(raw, case.message.channel)
    assert rec["error"] is None
    assert rec["request"] == case.message.name
    assert rec["request_id"] == case.message.id
    assert rec["is_reply"] is case.is_reply
    assert rec["need_reply"] is need_reply
    assert rec["size"] == rec["payload_len"] == len(raw) - 12
    payload = {k: v for k, v in rec.items() if k not in BASE_KEYS}
    assert payload == expected_record(case.kind, fields)


def test_encode_by_id_and_by_prefixed_name_give_the_same_bytes() -> None:
    by_name = encode("VHOST_USER_BACKEND_VRING_CALL", "backend", vring=3)
    assert by_name == encode(4, "backend", vring=3) == encode("VRING_CALL", "backend", vring=3)


def test_encode_rejects_a_field_the_layout_does_not_have() -> None:
    with pytest.raises(TypeError, match="num_regions"):
        encode("SET_VRING_NUM", num_regions=1)


def test_encode_rejects_an_unknown_name() -> None:
    with pytest.raises(ValueError, match="GET_FOO"):
        encode("GET_FOO")


def test_encode_overrides_build_malformed_headers() -> None:
    raw = encode("SET_FEATURES", flags=0x2, size=40, features=1)
    assert raw[4:12] == bytes.fromhex("02000000 28000000")
    assert len(raw) == 20
