"""The capture writer's fast paths (reused blocks, writev of parts, write_message, write_piped) write the same bytes.

The proxy writes every record through these paths; each block must be exactly what encoding the
record on its own gives (``blocks.enhanced_packet`` of the exported-PDU tags and the record).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import pytest

from dissectors.encode import encode
from vutrace.capture import blocks
from vutrace.capture import record_format as rf
from vutrace.capture.model import CaptureRecord, FdAction, FdInfo, FdKind, RecordChannel, RecordKind
from vutrace.capture.pcapng import CaptureWriter, read_records
from vutrace.proxy.pipes import make_pipe
from vutrace.proxy.recorder import PipedChunk, Recorder

SOCKET = "/run/vu.sock"


def message(ts: int, conn: int, sender: str, data: bytes, **more: object) -> CaptureRecord:
    return CaptureRecord(RecordKind.MESSAGE, ts, conn, RecordChannel.MAIN, sender, data, **more)


def sample_records() -> list[CaptureRecord]:
    request, reply = encode("GET_FEATURES"), encode("GET_FEATURES", reply=True, features=1 << 32)
    kick = FdInfo(FdKind.EVENTFD, FdAction.PASSED, fd=7, target="anon_inode:[eventfd]", ino=42)
    records = []
    for i in range(3):  # repeats hit the reused blocks
        records += [
            message(1_000 + 10 * i, 1, "frontend", request),
            message(1_001 + 10 * i, 1, "backend", reply),
            message(1_002 + 10 * i, 2, "frontend", request),
        ]
    records += [
        message(2_000, 1, "frontend", encode("SET_VRING_KICK", vring=0), fds=(kick,), late_fds=1),
        message(2_001, 1, "frontend", b"\x01\x00"),  # cut off inside the header
        CaptureRecord(RecordKind.STATE_CHUNK, 2_002, 1, RecordChannel.STATE, "backend", os.urandom(1001), length=1001),
        CaptureRecord(RecordKind.EVENT, 2_003, 1, RecordChannel.EVENT, "proxy", event="state_open", attrs={"a": 1}),
        message(2_004, 1, "frontend", request),
    ]
    return records


def reference_blocks(records: list[CaptureRecord]) -> bytes:
    """Each record encoded on its own, with the interface blocks the writer adds on first use."""
    interfaces: dict[tuple[int, str], int] = {}
    out = b""
    for record in records:
        key = (record.conn, record.channel.value)
        if key not in interfaces:
            interfaces[key] = len(interfaces)
            out += blocks.interface_description(
                f"vu:{SOCKET}#{record.conn}/{record.channel.value}",
                f"vutrace: {record.channel.value} channel of connection {record.conn}",
            )
        packet = rf.exported_pdu_tags(record.kind, rf.info_text(record)) + rf.encode_record(record)
        out += blocks.enhanced_packet(interfaces[key], record.ts_ns, packet, rf.EPB_DIRECTION.get(record.sender, 0))
    return out


def written_after_section_header(path: Path) -> bytes:
    data = path.read_bytes()
    return data[int.from_bytes(data[4:8], "little") :]


def test_write_gives_the_bytes_of_each_record_encoded_on_its_own(tmp_path: Path) -> None:
    records = sample_records()
    with CaptureWriter(tmp_path / "c.pcapng", socket_path=SOCKET) as writer:
        for record in records:
            writer.write(record)
    assert written_after_section_header(tmp_path / "c.pcapng") == reference_blocks(records)
    assert list(read_records(tmp_path / "c.pcapng")) == records


def test_write_message_gives_the_same_bytes_as_write(tmp_path: Path) -> None:
    records = [r for r in sample_records() if r.kind is RecordKind.MESSAGE]
    with CaptureWriter(tmp_path / "c.pcapng", socket_path=SOCKET) as writer:
        for r in records:
            writer.write_message(r.ts_ns, r.conn, r.channel, r.sender, r.data, r.fds, r.late_fds)
    assert written_after_section_header(tmp_path / "c.pcapng") == reference_blocks(records)


def state_chunks(sizes: list[int]) -> list[CaptureRecord]:
    chunks, offset = [], 0
    for i, size in enumerate(sizes):
        data = os.urandom(size)
        chunks.append(
            CaptureRecord(
                RecordKind.STATE_CHUNK, 3_000 + i, 1, RecordChannel.STATE, "backend", data, offset=offset, length=size
            )
        )
        offset += size
    return chunks


def test_write_piped_gives_the_same_bytes_as_write(tmp_path: Path) -> None:
    chunks = state_chunks([1, 4093, 70_000, 1 << 20])  # odd sizes need the EPB padding
    r, w = make_pipe()  # holds 1 MiB
    with CaptureWriter(tmp_path / "c.pcapng", socket_path=SOCKET) as writer:
        writer.write(sample_records()[0])
        for chunk in chunks:
            os.write(w, chunk.data[: len(chunk.data) // 2])
            os.write(w, chunk.data[len(chunk.data) // 2 :])
            writer.write_piped(replace(chunk, data=b""), r)
    os.close(w)
    assert os.read(r, 1) == b""  # every byte left the pipe
    os.close(r)
    assert written_after_section_header(tmp_path / "c.pcapng") == reference_blocks([sample_records()[0], *chunks])


def test_write_piped_to_a_closed_writer_still_takes_the_bytes_out_of_the_pipe(tmp_path: Path) -> None:
    (chunk,) = state_chunks([5000])
    r, w = os.pipe()
    os.write(w, chunk.data + b"next")
    writer = CaptureWriter(tmp_path / "c.pcapng")
    writer.close()
    with pytest.raises(ValueError):
        writer.write_piped(replace(chunk, data=b""), r)
    assert os.read(r, 100) == b"next"
    os.close(r)
    os.close(w)


def test_write_piped_is_refused_in_hash_mode(tmp_path: Path) -> None:
    (chunk,) = state_chunks([10])
    with CaptureWriter(tmp_path / "c.pcapng", state_payload="hash") as writer, pytest.raises(ValueError):
        writer.write_piped(replace(chunk, data=b""), 0)


def test_piped_chunks_reach_listeners_with_their_bytes_and_the_file_whole(tmp_path: Path) -> None:
    chunks = state_chunks([3000, 5000])
    heard: list[CaptureRecord] = []
    r, w = os.pipe()
    with CaptureWriter(tmp_path / "c.pcapng", socket_path=SOCKET) as writer:
        recorder = Recorder(writer)
        assert recorder.splices_state()
        recorder.add_listener(heard.append)
        assert not recorder.splices_state()
        for chunk in chunks:  # a listener added while chunks wait in the pipe still gets their bytes
            os.write(w, chunk.data)
            slot = recorder.reserve()
            recorder.fill(slot, PipedChunk(replace(chunk, ts_ns=slot.ts_ns, data=b""), r))
    os.close(w)
    os.close(r)
    assert [c.data for c in heard] == [c.data for c in chunks]
    assert [c.data for c in read_records(tmp_path / "c.pcapng")] == [c.data for c in chunks]


FULL_DISK_SCRIPT = """
import os, resource, signal
from dataclasses import replace
from vutrace.capture.model import CaptureRecord, RecordChannel, RecordKind
from vutrace.capture.pcapng import CaptureWriter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
r, w = os.pipe()
written = 0
with CaptureWriter({path!r}) as writer:
    try:
        while True:
            os.write(w, bytes([written]) * 30_000 + b"next")
            chunk = CaptureRecord(RecordKind.STATE_CHUNK, written, 1, RecordChannel.STATE, "backend",
                                  offset=written * 30_000, length=30_000)
            writer.write_piped(chunk, r)
            assert os.read(r, 4) == b"next"
            written += 1
    except OSError as error:
        print(written, error.errno, os.read(r, 4))
"""


def test_write_piped_on_a_full_disk_leaves_whole_records_and_an_emptied_pipe(tmp_path: Path) -> None:
    path = tmp_path / "c.pcapng"
    script = FULL_DISK_SCRIPT.format(path=str(path))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    written, _, rest = result.stdout.split()
    assert int(written) == 3  # the fourth 30 kB chunk does not fit in 100 kB
    assert rest == "b'next'"  # the failed chunk's bytes were taken out of the pipe, nothing more
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chunks = list(read_records(path))
    assert [c.data for c in chunks] == [bytes([i]) * 30_000 for i in range(3)]
