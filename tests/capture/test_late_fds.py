"""``late_fds`` (record version 1.1): written, read back, loaded; captures of record version 1.0 read as 0."""

from __future__ import annotations

import struct
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
from capture_samples import LATE_FDS, MESSAGES, RAM, sample_records, write_capture
from scapy.utils import rdpcap

from dissectors.encode import encode
from vutrace.capture import record_format as rf
from vutrace.capture.model import CaptureRecord, RecordChannel, RecordKind
from vutrace.capture.pcapng import CaptureWarning, read_records
from vutrace.capture.scapy_layer import VutraceRecord
from vutrace.loader import load
from vutrace.rows import record_row

OLD_SAMPLE = Path(__file__).resolve().parent / "data" / "dpdk-testpmd-record-1.0.pcapng"
"""A real capture written by the record-version-1.0 writer: samples/dpdk-testpmd.pcapng as committed before late_fds."""
PSEUDO_HEADER = b"\0\0\0\0" + rf.MAGIC
"""The exported-PDU end tag followed by the magic: where each pseudo-header starts in a file."""


def _message(late_fds: int, fds: tuple = (RAM, RAM)) -> CaptureRecord:
    regions = [(i << 30, 1 << 20, 0x7F00_0000_0000 + (i << 30), 0) for i in range(len(fds))]
    data = encode("SET_MEM_TABLE", regions=regions)
    return CaptureRecord(RecordKind.MESSAGE, 1000, 1, RecordChannel.MAIN, "frontend", data, fds, late_fds=late_fds)


def _as_record_version_1_0(path: Path, reserved: int = 0) -> Path:
    """Rewrite every pseudo-header of a capture in the 1.0 layout: minor 0, byte 28 reserved (set to ``reserved``)."""
    buf = bytearray(path.read_bytes())
    start = 0
    count = 0
    while (found := buf.find(PSEUDO_HEADER, start)) >= 0:
        header = found + 4
        buf[header + rf.OFF_MINOR] = 0
        buf[header + rf.OFF_LATE_FDS] = reserved
        start = header + rf.COMMON_SIZE
        count += 1
    assert count
    old = path.with_name(f"old-{path.name}")
    old.write_bytes(bytes(buf))
    return old


def test_late_fds_is_byte_28_of_a_message_and_the_minor_version_is_1() -> None:
    encoded = rf.encode_record(_message(late_fds=2))
    assert encoded[rf.OFF_MINOR] == 1 == rf.VERSION_MINOR
    assert encoded[rf.OFF_LATE_FDS : rf.OFF_LATE_FDS + 4] == b"\x02\0\0\0"
    assert rf.COMMON.unpack_from(encoded)[-1] == 2


def test_late_fds_round_trips_through_the_file(tmp_path: Path) -> None:
    records = [_message(0), _message(1), _message(2), _message(1, (RAM,))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = list(read_records(write_capture(tmp_path / "c.pcapng", records)))
    assert back == records
    assert [r.late_fds for r in back] == [0, 1, 2, 1]


def test_sample_conversation_keeps_its_late_fds(tmp_path: Path) -> None:
    records = sample_records()
    assert sum(r.late_fds for r in records) == sum(LATE_FDS.values())
    back = list(read_records(write_capture(tmp_path / "c.pcapng", records)))
    assert [r.late_fds for r in back] == [r.late_fds for r in records]


def test_loader_column(tmp_path: Path) -> None:
    records = sample_records()
    frame = load(write_capture(tmp_path / "c.pcapng", records))
    assert frame["late_fds"].dtype == "int64"
    assert frame["late_fds"].tolist() == [r.late_fds for r in records]
    late = frame[frame["late_fds"] > 0]
    assert late["request"].tolist() == ["SET_MEM_TABLE", "VRING_HOST_NOTIFIER_MSG"]
    assert (late["late_fds"] <= late["nfds"]).all()
    assert (frame.loc[frame["channel"].isin(["state", "event"]), "late_fds"] == 0).all()


def test_record_row_has_late_fds() -> None:
    assert record_row(_message(2))["late_fds"] == 2
    assert record_row(_message(0))["late_fds"] == 0
    assert record_row(sample_records()[0])["late_fds"] == 0


def test_record_version_1_0_file_reads_as_no_late_fds(tmp_path: Path) -> None:
    records = sample_records()
    old = _as_record_version_1_0(write_capture(tmp_path / "c.pcapng", records))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = list(read_records(old))
        frame = load(old)
    assert back == [replace(r, late_fds=0) for r in records]
    assert (frame["late_fds"] == 0).all()
    assert frame["nfds"].sum() == sum(len(fds) for _, _, _, fds in MESSAGES)


def test_reserved_byte_of_a_1_0_record_is_ignored(tmp_path: Path) -> None:
    """Byte 28 was reserved in 1.0: a reader takes late_fds only from 1.1 records, whatever 1.0 left there."""
    old = _as_record_version_1_0(write_capture(tmp_path / "c.pcapng", [_message(0)]), reserved=1)
    assert [r.late_fds for r in read_records(old)] == [0]
    assert load(old)["late_fds"].tolist() == [0]


def test_real_capture_of_record_version_1_0_loads_with_zero_late_fds() -> None:
    buf = OLD_SAMPLE.read_bytes()
    frame = load(OLD_SAMPLE)
    assert buf.count(PSEUDO_HEADER + bytes([rf.VERSION_MAJOR, 0])) == len(frame)
    assert frame["nfds"].sum() > 0
    assert (frame["late_fds"] == 0).all()


def test_late_fds_only_on_state_or_event_records_is_refused() -> None:
    chunk = CaptureRecord(RecordKind.STATE_CHUNK, 1, 1, RecordChannel.STATE, "backend", b"x", late_fds=1)
    with pytest.raises(ValueError, match="only messages"):
        rf.encode_record(chunk)


@pytest.mark.parametrize("late_fds", [-1, 3])
def test_late_fds_outside_the_message_fds_is_refused(late_fds: int) -> None:
    with pytest.raises(ValueError, match="late_fds"):
        rf.encode_record(_message(late_fds))


def test_record_claiming_more_late_fds_than_fds_is_skipped_as_malformed(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "c.pcapng", [_message(1), _message(0, (RAM,))])
    buf = bytearray(path.read_bytes())
    second = buf.find(PSEUDO_HEADER, buf.find(PSEUDO_HEADER) + 8) + 4
    struct.pack_into("<B", buf, second + rf.OFF_LATE_FDS, 2)
    path.write_bytes(bytes(buf))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        back = list(read_records(path))
    assert [r.late_fds for r in back] == [1]
    assert [type(w.message) for w in caught] == [CaptureWarning]
    assert "malformed" in str(caught[0].message)


def test_scapy_shows_late_fds(tmp_path: Path) -> None:
    records = sample_records()
    packets = rdpcap(str(write_capture(tmp_path / "c.pcapng", records)))
    assert all(isinstance(p, VutraceRecord) for p in packets)
    assert [p.late_fds for p in packets] == [r.late_fds for r in records]
    assert all(p.reserved == 0 for p in packets)
