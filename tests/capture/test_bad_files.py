"""Files that are cut, foreign or damaged: each gives the documented warning or one-line error."""

from __future__ import annotations

import random
import struct
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
from capture_samples import sample_records, write_capture

from vutrace.capture import blocks
from vutrace.capture import record_format as rf
from vutrace.capture.pcapng import (
    CaptureFormatError,
    CaptureTruncatedWarning,
    CaptureWarning,
    read_records,
)
from vutrace.loader import load


def _read(path: Path) -> tuple[list, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = list(read_records(path))
    return records, caught


def test_cut_at_every_offset_of_the_last_block(tmp_path: Path) -> None:
    records = sample_records()
    full = write_capture(tmp_path / "full.pcapng", records).read_bytes()
    without_last = write_capture(tmp_path / "short.pcapng", records[:-1]).read_bytes()
    assert full.startswith(without_last)
    path = tmp_path / "cut.pcapng"
    for cut in range(len(without_last), len(full)):
        path.write_bytes(full[:cut])
        back, caught = _read(path)
        assert back == records[:-1], cut
        if cut == len(without_last):
            assert caught == []
        else:
            assert [type(w.message) for w in caught] == [CaptureTruncatedWarning], cut
            assert "incomplete block" in str(caught[0].message)


def test_cut_file_loads_up_to_the_cut(tmp_path: Path) -> None:
    full = write_capture(tmp_path / "full.pcapng", sample_records()).read_bytes()
    path = tmp_path / "cut.pcapng"
    path.write_bytes(full[:-3])
    with pytest.warns(CaptureTruncatedWarning):
        frame = load(path)
    assert len(frame) == len(sample_records()) - 1


def _error(path: Path) -> str:
    with pytest.raises(CaptureFormatError) as info:
        read_records(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcapng"
    path.write_bytes(b"")
    assert "empty file" in _error(path)


def test_classic_pcap(tmp_path: Path) -> None:
    path = tmp_path / "classic.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 147))
    assert "classic pcap" in _error(path)


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "random.bin"
    path.write_bytes(random.Random(7).randbytes(4096))
    assert "not a pcapng file" in _error(path)


def test_pcapng_with_another_link_type(tmp_path: Path) -> None:
    idb = struct.pack("<IIHHII", blocks.IDB_TYPE, 20, 1, 0, 0, 20)
    path = tmp_path / "ethernet.pcapng"
    path.write_bytes(blocks.section_header("other tool") + idb)
    message = _error(path)
    assert "link type 1" in message and "252" in message


def test_truncated_section_header(tmp_path: Path) -> None:
    path = tmp_path / "c.pcapng"
    path.write_bytes(blocks.section_header("vutrace")[:20])
    assert "section header" in _error(path)


def test_corrupt_block_length(tmp_path: Path) -> None:
    data = bytearray(write_capture(tmp_path / "c.pcapng", sample_records()[:4]).read_bytes())
    shb_len = struct.unpack_from("<I", data, 4)[0]
    struct.pack_into("<I", data, shb_len + 4, 13)
    path = tmp_path / "bad.pcapng"
    path.write_bytes(bytes(data))
    assert f"corrupt pcapng block at offset {shb_len}" in _error(path)


def _packet_file(tmp_path: Path, packets: list[bytes]) -> Path:
    parts = [blocks.section_header("test"), blocks.interface_description("x")]
    parts += [blocks.enhanced_packet(0, 1000 + i, p) for i, p in enumerate(packets)]
    path = tmp_path / "p.pcapng"
    path.write_bytes(b"".join(parts))
    return path


def _packet(record_bytes: bytes, dissector: bytes = b"vutrace\0") -> bytes:
    tags = struct.pack(">HH", rf.TAG_DISSECTOR_NAME, len(dissector)) + dissector + struct.pack(">HH", 0, 0)
    return tags + record_bytes


def test_unknown_kind_and_newer_major_version_are_skipped_with_a_warning(tmp_path: Path) -> None:
    good = sample_records()[5]
    encoded = bytearray(rf.encode_record(good))
    unknown_kind = bytearray(encoded)
    unknown_kind[rf.OFF_KIND] = 9
    newer = bytearray(encoded)
    newer[rf.OFF_MAJOR] = 2
    path = _packet_file(tmp_path, [_packet(bytes(unknown_kind)), _packet(bytes(encoded)), _packet(bytes(newer))])
    back, caught = _read(path)
    assert [r.data for r in back] == [good.data]
    texts = sorted(str(w.message) for w in caught)
    assert all(isinstance(w.message, CaptureWarning) for w in caught)
    assert any("unknown kind" in t for t in texts)
    assert any("record version" in t for t in texts)


def test_newer_minor_version_with_extra_header_bytes_is_read(tmp_path: Path) -> None:
    good = sample_records()[8]
    assert good.fds
    encoded = rf.encode_record(good)
    header_len = struct.unpack_from("<I", encoded, rf.OFF_HEADER_LEN)[0]
    extra = b"future fields"
    newer = bytearray(encoded[:header_len] + extra + encoded[header_len:])
    newer[rf.OFF_MINOR] = 7
    struct.pack_into("<I", newer, rf.OFF_HEADER_LEN, header_len + len(extra))
    back, caught = _read(_packet_file(tmp_path, [_packet(bytes(newer))]))
    assert caught == []
    assert back == [replace(good, ts_ns=1000)]


def test_packets_of_another_exported_pdu_dissector_are_skipped(tmp_path: Path) -> None:
    good = sample_records()[4]
    path = _packet_file(tmp_path, [_packet(b"GET / HTTP/1.1\r\n", b"http"), _packet(rf.encode_record(good))])
    back, caught = _read(path)
    assert back == [replace(good, ts_ns=1001)]
    assert len(caught) == 1 and "not vutrace records" in str(caught[0].message)


def test_record_whose_data_runs_past_the_packet_is_skipped(tmp_path: Path) -> None:
    good = sample_records()[4]
    encoded = bytearray(rf.encode_record(good))
    struct.pack_into("<I", encoded, rf.OFF_DATA_LEN, 5000)
    back, caught = _read(_packet_file(tmp_path, [_packet(bytes(encoded))]))
    assert back == []
    assert "malformed" in str(caught[0].message)


def test_microsecond_interfaces_are_scaled_to_nanoseconds(tmp_path: Path) -> None:
    record = sample_records()[4]
    idb = struct.pack("<IIHHII", blocks.IDB_TYPE, 20, 252, 0, 0, 20)
    packet = _packet(rf.encode_record(record))
    path = tmp_path / "us.pcapng"
    path.write_bytes(blocks.section_header("t") + idb + blocks.enhanced_packet(0, 1_234_567, packet))
    assert [r.ts_ns for r in read_records(path)] == [1_234_567_000]


def test_big_endian_sections_are_read(tmp_path: Path) -> None:
    record = sample_records()[4]
    packet = _packet(rf.encode_record(record))
    shb = struct.pack(">IIIHHq", blocks.SHB_TYPE, 28, blocks.BYTE_ORDER_MAGIC, 1, 0, -1) + struct.pack(">I", 28)
    idb = struct.pack(">IIHHI", blocks.IDB_TYPE, 32, 252, 0, 0) + struct.pack(">HHBxxxHH", 9, 1, 9, 0, 0)
    idb += struct.pack(">I", 32)
    pad = -len(packet) % 4
    total = 32 + len(packet) + pad
    epb = struct.pack(">IIIIIII", blocks.EPB_TYPE, total, 0, 0, 5, len(packet), len(packet))
    epb += packet + b"\0" * pad + struct.pack(">I", total)
    path = tmp_path / "be.pcapng"
    path.write_bytes(shb + idb + epb)
    assert list(read_records(path)) == [replace(record, ts_ns=5)]
