"""The one-line format shared by ``vutrace show``, the proxy's live view and the TUI."""

from __future__ import annotations

import re

from capture_samples import T0, sample_records

from vutrace.loader import frame_from_records
from vutrace.views.lines import format_duration, format_line, format_record, hex_dump


def test_lines_of_each_record_kind() -> None:
    records = sample_records()
    rows = frame_from_records(records).to_dict("records")
    lines = [format_line(row, t0_ns=T0, number=i + 1) for i, row in enumerate(rows)]
    assert lines[0].split() == ["1", "0.000000", "#1", "event", "proxy", "listen", "path=/run/vu.sock"]
    assert "#1 main    frontend → backend  SET_VRING_KICK vring=0 fds=[eventfd ino=2051 passed]" in lines[14]
    assert "SET_VRING_ENABLE need_reply vring=0 num=1" in lines[18]
    assert lines[19].endswith("SET_VRING_ENABLE reply result=0 (+1µs)")
    assert "backend backend → frontend  IOTLB_MSG need_reply iova=0x4000" in lines[20]
    assert "UNKNOWN_99" in lines[29] and "[error: unknown request id 99 on the main channel]" in lines[29]
    assert "TRUNCATED [error: truncated header: 5 of 12 bytes]" in lines[30]
    state = next(line for line in lines if "STATE_CHUNK" in line)
    assert "backend → frontend  STATE_CHUNK stream=1 offset=0 nbytes=300" in state


def test_format_record_is_the_live_form_of_the_same_line() -> None:
    records = sample_records()
    rows = frame_from_records(records).to_dict("records")
    for record, row in zip(records, rows, strict=True):
        loaded = re.sub(r" \(\+[^)]*\)", "", format_line(row, t0_ns=T0))
        assert format_record(record, t0_ns=T0) == loaded


def test_durations() -> None:
    assert [format_duration(n) for n in (850, 12_300, 4_560_000, 1_230_000_000)] == [
        "850ns",
        "12.3µs",
        "4.56ms",
        "1.23s",
    ]


def test_hex_dump() -> None:
    assert hex_dump(b"\x01\x00\x00\x00ABC") == "0000  01 00 00 00 41 42 43" + " " * 27 + "  ....ABC"
