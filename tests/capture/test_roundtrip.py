"""Writer → reader: every record comes back as it was written; the file is safe to follow and to kill."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
from capture_samples import STATE, sample_records, write_capture

from vutrace.capture import blocks
from vutrace.capture.follow import CaptureFollower, follow_records
from vutrace.capture.model import CaptureRecord, RecordChannel, RecordKind
from vutrace.capture.pcapng import CaptureTruncatedWarning, CaptureWriteError, CaptureWriter, read_records


def test_every_record_kind_round_trips(tmp_path: Path) -> None:
    records = sample_records()
    kinds = {r.kind for r in records}
    assert kinds == set(RecordKind)
    path = write_capture(tmp_path / "c.pcapng", records)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(read_records(path)) == records


def test_hash_mode_keeps_length_and_digest_of_state_chunks_only(tmp_path: Path) -> None:
    records = sample_records()
    path = write_capture(tmp_path / "c.pcapng", records, state_payload="hash")
    back = list(read_records(path))
    assert len(back) == len(records)
    for before, after in zip(records, back, strict=True):
        if before.kind is RecordKind.STATE_CHUNK:
            assert after.data == b""
            assert after.length == len(before.data)
            assert after.sha256 == hashlib.sha256(before.data).digest()
            assert after.offset == before.offset
        else:
            assert after == before
    assert b"".join(r.data for r in records if r.kind is RecordKind.STATE_CHUNK) == STATE
    assert STATE[300:600] not in path.read_bytes()


def test_full_mode_stores_the_state_bytes(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "c.pcapng", sample_records())
    assert STATE[300:600] in path.read_bytes()


def test_unknown_state_payload_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="state_payload"):
        CaptureWriter(tmp_path / "c.pcapng", state_payload="none")


def test_file_mode_is_0600_by_default_and_can_be_changed(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_capture(tmp_path / "a.pcapng", [])
        write_capture(tmp_path / "b.pcapng", [], mode=0o640)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.pcapng").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "b.pcapng").stat().st_mode) == 0o640


def test_existing_regular_file_is_replaced_with_the_capture_mode(tmp_path: Path) -> None:
    path = tmp_path / "c.pcapng"
    path.write_bytes(b"old contents " * 100)
    path.chmod(0o644)
    write_capture(path, sample_records()[:3])
    assert len(list(read_records(path))) == 3
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory"])
def test_refuses_to_write_over_anything_but_a_regular_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "c.pcapng"
    target = tmp_path / "victim"
    target.write_bytes(b"keep me")
    if kind == "symlink":
        path.symlink_to(target)
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    with pytest.raises(CaptureWriteError, match="not a regular file"):
        CaptureWriter(path)
    assert target.read_bytes() == b"keep me"


def test_write_after_close_raises(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path / "c.pcapng")
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(sample_records()[0])


def test_unknown_sender_is_refused(tmp_path: Path) -> None:
    record = replace(sample_records()[3], sender="qemu")
    with CaptureWriter(tmp_path / "c.pcapng") as writer, pytest.raises(ValueError, match="sender"):
        writer.write(record)


def test_one_interface_per_connection_and_channel(tmp_path: Path) -> None:
    records = sample_records(conn=1) + sample_records(conn=2)
    path = write_capture(tmp_path / "c.pcapng", records, socket_path="/run/vu.sock")
    data = path.read_bytes()
    for conn in (1, 2):
        for channel in RecordChannel:
            assert f"vu:/run/vu.sock#{conn}/{channel}".encode() in data
    state = blocks.WalkState()
    blocks.walk(data, state)
    assert len(state.interfaces) == 8
    assert all(i.link_type == 252 and i.ts_mul == 1 for i in state.interfaces)


def test_concurrent_writers_produce_whole_records(tmp_path: Path) -> None:
    base = [r for r in sample_records() if r.kind is RecordKind.MESSAGE]
    path = tmp_path / "c.pcapng"
    with CaptureWriter(path) as writer:

        def work(conn: int) -> None:
            for i in range(200):
                writer.write(replace(base[i % len(base)], conn=conn, ts_ns=i))

        threads = [threading.Thread(target=work, args=(conn,)) for conn in range(1, 5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    back = list(read_records(path))
    assert len(back) == 800
    for record in back:
        assert record == replace(base[record.ts_ns % len(base)], conn=record.conn, ts_ns=record.ts_ns)
    for conn in range(1, 5):
        assert [r.ts_ns for r in back if r.conn == conn] == list(range(200))


WRITER_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
from capture_samples import sample_records
from vutrace.capture.pcapng import CaptureWriter
from dataclasses import replace
records = sample_records()
with CaptureWriter({path!r}) as w:
    n = 0
    while True:
        w.write(replace(records[n % len(records)], ts_ns=n))
        n += 1
        if n == 50:
            print("ready", flush=True)
"""


def test_killed_writer_leaves_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "c.pcapng"
    script = WRITER_SCRIPT.format(tests=str(Path(__file__).parent), path=str(path))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        child.stdout.close()  # type: ignore[union-attr]
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        back = list(read_records(path))
    records = sample_records()
    assert len(back) >= 50
    assert back == [replace(records[n % len(records)], ts_ns=n) for n in range(len(back))]


def test_follower_sees_records_as_they_are_written(tmp_path: Path) -> None:
    path = tmp_path / "c.pcapng"
    records = sample_records()
    with CaptureFollower(path) as follower:
        assert follower.poll() == []
        writer = CaptureWriter(path)
        assert follower.poll() == []
        writer.write(records[0])
        writer.write(records[1])
        assert follower.poll() == records[:2]
        assert follower.poll() == []
        for record in records[2:10]:
            writer.write(record)
        assert follower.poll() == records[2:10]
        writer.close()


def test_follower_waits_for_the_rest_of_a_partial_block(tmp_path: Path) -> None:
    source = write_capture(tmp_path / "full.pcapng", sample_records()[:6])
    data = source.read_bytes()
    path = tmp_path / "growing.pcapng"
    with CaptureFollower(path) as follower:
        seen: list[CaptureRecord] = []
        with path.open("wb") as out:
            for start in range(0, len(data), 7):
                out.write(data[start : start + 7])
                out.flush()
                seen += follower.poll()
        assert seen == sample_records()[:6]
        assert follower.incomplete_bytes == 0


def test_follow_records_stops_when_idle(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "c.pcapng", sample_records())
    start = time.monotonic()
    assert list(follow_records(path, poll_interval=0.01, idle_timeout=0.2)) == sample_records()
    assert time.monotonic() - start < 5


def test_follow_records_stops_on_event(tmp_path: Path) -> None:
    path = tmp_path / "c.pcapng"
    stop = threading.Event()
    got: list[CaptureRecord] = []

    def consume() -> None:
        got.extend(follow_records(path, stop=stop, poll_interval=0.01))

    thread = threading.Thread(target=consume)
    thread.start()
    with CaptureWriter(path) as writer:
        for record in sample_records()[:5]:
            writer.write(record)
        deadline = time.monotonic() + 5
        while len(got) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert got == sample_records()[:5]


def test_truncated_file_during_read_gives_warning_type(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "c.pcapng", sample_records())
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.warns(CaptureTruncatedWarning):
        assert len(list(read_records(path))) == len(sample_records()) - 1


FULL_DISK_SCRIPT = """
import resource, signal, sys
sys.path.insert(0, {tests!r})
from capture_samples import sample_records
from vutrace.capture.pcapng import CaptureWriter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000))
records = sample_records()
written = 0
with CaptureWriter({path!r}) as w:
    try:
        while True:
            w.write(records[written % len(records)])
            written += 1
    except OSError as error:
        print(written, error.errno)
"""


def test_failed_write_leaves_the_file_ending_on_a_whole_record(tmp_path: Path) -> None:
    path = tmp_path / "c.pcapng"
    script = FULL_DISK_SCRIPT.format(tests=str(Path(__file__).parent), path=str(path))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    written = int(result.stdout.split()[0])
    assert 0 < written < len(sample_records())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(read_records(path)) == sample_records()[:written]
