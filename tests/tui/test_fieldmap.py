"""dissectors.fieldmap: the byte span of every field holds the value the flat record decodes for it."""

from __future__ import annotations

import struct

import pytest

from dissectors import spec
from dissectors.encode import encode
from dissectors.fieldmap import FieldSpan, field_spans
from dissectors.payloads import U64_SPLITS, alternatives
from dissectors.records import decode

FORMATS = {"Q": "<Q", "q": "<q", "I": "<I", "H": "<H", "B": "<B"}


def sample_fields(kind: spec.Payload) -> dict[str, object]:
    """Distinct, recognisable values for every field of a fixed layout (small enough for every format)."""
    values: dict[str, object] = {}
    for number, field in enumerate(spec.FIXED_LAYOUTS[kind], start=1):
        if field.name.endswith("padding") or field.name == "padding":
            continue
        if field.fmt.endswith("s"):
            values[field.name] = bytes(range(number, number + int(field.fmt[:-1])))
        elif field.name == "u64" and kind in U64_SPLITS:
            values[U64_SPLITS[kind][0]] = 3
            values["nofd"] = True
        else:
            values[field.name] = number + (1 if field.fmt == "B" else 0x100)
    return values


def fixed_cases() -> list[tuple[str, str, bool, spec.Payload]]:
    cases = []
    for channel, table in spec.MESSAGES.items():
        for message in table.values():
            for reply in (False, True):
                for kind in alternatives(message, reply)[:1]:
                    if kind in spec.FIXED_LAYOUTS and kind is not spec.Payload.NONE:
                        cases.append((channel.value, message.name, reply, kind))
    return cases


@pytest.mark.parametrize(("channel", "name", "reply", "kind"), fixed_cases(), ids=lambda v: str(v))
def test_each_fixed_field_span_holds_its_decoded_value(
    channel: str, name: str, reply: bool, kind: spec.Payload
) -> None:
    data = encode(name, channel, reply=reply, **sample_fields(kind))
    record = decode(data, channel)
    spans = {s.name: s for s in field_spans(data, channel)}
    formats = {f.name: f.fmt for f in spec.FIXED_LAYOUTS[kind]}
    checked = 0
    for field_name, value in record.items():
        span = spans.get(field_name)
        fmt = formats.get(field_name)
        if span is None or fmt is None:
            continue
        raw = data[span.start : span.end]
        if fmt.endswith("s"):
            assert raw == value
        else:
            assert struct.unpack(FORMATS[fmt], raw)[0] == value, field_name
        checked += 1
    assert checked == len([f for f in formats if not f.endswith("padding") and f != "padding" and f in record])


def test_header_fields_are_the_first_twelve_bytes() -> None:
    spans = field_spans(encode("GET_FEATURES", reply=True, features=5))
    assert spans[:3] == [FieldSpan("request", 0, 4), FieldSpan("flags", 4, 8), FieldSpan("size", 8, 12)]


def test_the_ring_index_and_no_fd_flag_are_the_bytes_of_their_bits() -> None:
    data = encode("SET_VRING_KICK", vring=0x2A, nofd=True)
    spans = {s.name: (s.start, s.end) for s in field_spans(data)}
    assert spans["vring"] == (12, 13) and data[12] == 0x2A
    assert spans["nofd"] == (13, 14) and data[13] == 0x01
    assert spans["u64"] == (12, 20)


def test_each_memory_region_and_its_fields_have_spans() -> None:
    regions = [(0x1000, 0x2000, 0x7F00_0000_0000, 0), (0x10_0000, 0x4000, 0x7F80_0000_0000, 0x3000)]
    data = encode("SET_MEM_TABLE", regions=regions)
    spans = {s.name: s for s in field_spans(data)}
    for index, region in enumerate(regions):
        whole = spans[f"regions[{index}]"]
        assert whole.end - whole.start == spec.MEM_REGION_SIZE
        for name, value in zip(("guest_addr", "region_size", "user_addr", "mmap_offset"), region, strict=True):
            part = spans[f"regions[{index}].{name}"]
            assert struct.unpack("<Q", data[part.start : part.end])[0] == value


def test_config_data_covers_the_config_bytes() -> None:
    data = encode("SET_CONFIG", config_offset=4, config_size=6, config_data=b"abcdef")
    spans = {s.name: s for s in field_spans(data)}
    config = spans["config_data"]
    assert data[config.start : config.end] == b"abcdef"


def test_undecodable_bytes_are_named_not_dropped() -> None:
    assert field_spans(b"\x01\x00") == [FieldSpan("undecoded", 0, 2)]
    unknown = encode(99, size=4) + b"wxyz"
    assert field_spans(unknown)[-1] == FieldSpan("payload", 12, 16)
    extra = encode("GET_FEATURES", reply=True, features=1, size=8) + b"!!"
    assert field_spans(extra)[-1] == FieldSpan("extra", 20, 22)
    assert field_spans(b"") == []
