"""``vutrace show``, ``stats`` and ``export`` run as real processes on real capture files."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from capture_samples import MESSAGES, sample_records, write_capture

from dissectors.records import decode
from vutrace.capture.model import RecordKind


def vutrace(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vutrace.cli", *map(str, args)], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_capture(tmp_path_factory.mktemp("cli") / "c.pcapng", sample_records())


def test_show_prints_one_line_per_record(capture: Path) -> None:
    result = vutrace("show", capture)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(sample_records())
    first_message = lines[3].split()
    assert first_message[:7] == ["4", "0.000003", "#1", "main", "frontend", "→", "backend"]
    assert first_message[7] == "GET_FEATURES"
    assert "GET_FEATURES reply features=0x8000000170000000 (+1µs)" in lines[4]
    assert "fds=[memfd:pc.ram 512MiB ino=77 passed]" in lines[11]


def test_show_filter_keeps_matching_records(capture: Path) -> None:
    result = vutrace("show", capture, "-Y", "request == 'SET_DEVICE_STATE_FD'")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert "SET_DEVICE_STATE_FD" in lines[0] and "fds=[pipe ino=555 substituted]" in lines[0]
    assert {"reply", "nofd", "state_error=0"} <= set(lines[1].split())


def test_show_verbose_and_hex(capture: Path) -> None:
    result = vutrace("show", capture, "-V", "-x", "-Y", "request == 'SET_VRING_ADDR'")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Header: request SET_VRING_ADDR (9), flags 0x1 (version 1), size 40" in out
    assert "desc_addr" in out and "0x1000" in out
    assert "0000  09 00 00 00 01 00 00 00 28 00 00 00" in out


def test_show_count(capture: Path) -> None:
    result = vutrace("show", capture, "-c", "5")
    assert len(result.stdout.splitlines()) == 5


@pytest.mark.parametrize(
    ("command", "expression", "message"),
    [
        ("show", "request ==", "SyntaxError"),
        ("show", "conn + 1", "not true/false"),
        ("stats", "nosuch > 1", "nosuch"),
        ("export", "nosuch > 1", "nosuch"),
    ],
)
def test_bad_filter_is_one_line_and_exit_2(capture: Path, command: str, expression: str, message: str) -> None:
    result = vutrace(command, capture, "-Y", expression)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"vutrace {command}: bad filter") and message in result.stderr


@pytest.mark.parametrize(
    ("command", "content", "message"),
    [
        ("show", b"", "empty file"),
        ("stats", b"\xd4\xc3\xb2\xa1" + bytes(20), "classic pcap"),
        ("export", b"hello world" * 9, "not a pcapng"),
    ],
)
def test_bad_file_is_one_line_and_exit_2(tmp_path: Path, command: str, content: bytes, message: str) -> None:
    path = tmp_path / "bad.pcapng"
    path.write_bytes(content)
    result = vutrace(command, path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"vutrace {command}: ") and message in result.stderr


def test_missing_file(tmp_path: Path) -> None:
    result = vutrace("show", tmp_path / "nope.pcapng")
    assert result.returncode == 2 and "nope.pcapng" in result.stderr


def test_truncated_file_warns_and_shows_the_rest(tmp_path: Path, capture: Path) -> None:
    path = tmp_path / "cut.pcapng"
    path.write_bytes(capture.read_bytes()[:-9])
    result = vutrace("show", path)
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == len(sample_records()) - 1
    assert "warning" in result.stderr and "incomplete block" in result.stderr


def test_stats(capture: Path) -> None:
    result = vutrace("stats", capture)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    kinds = Counter(r.kind for r in sample_records())
    assert (
        f"records: {len(sample_records())} ({kinds[RecordKind.MESSAGE]} messages, {kinds[RecordKind.STATE_CHUNK]} "
        f"state chunks, {kinds[RecordKind.EVENT]} events) on 1 connections"
    ) in out
    assert "decode errors: 2, warnings: 0, error events: 1" in out
    assert "device-state transfers:" in out and " 772 " in out
    assert "reply latency per request:" in out
    table = out.split("messages per channel and request:")[1]
    assert any(line.split()[-3:] == ["GET_FEATURES", "1", "1"] for line in table.splitlines())


def test_stats_with_filter(capture: Path) -> None:
    result = vutrace("stats", capture, "-Y", "channel == 'backend'")
    assert "records: 3 (3 messages, 0 state chunks, 0 events)" in result.stdout


def test_export_jsonl_to_stdout(capture: Path) -> None:
    result = vutrace("export", capture, "-Y", "channel in ['main', 'backend']")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == len(MESSAGES)
    for row, (channel, _, data, fds) in zip(rows, MESSAGES, strict=True):
        assert bytes.fromhex(row["raw"]) == data
        assert row["channel"] == channel
        decoded = decode(data, channel, len(fds))
        assert row["request"] == decoded["request"]
        assert row["size"] == (decoded["size"] if decoded["request"] != "TRUNCATED" else 0)
    table = next(r for r in rows if r["request"] == "SET_MEM_TABLE")
    assert table["regions"] == json.dumps([[0, 512 << 20, 0x7F00_0000_0000, 0]])


def test_export_csv_and_parquet_files(tmp_path: Path, capture: Path) -> None:
    csv = tmp_path / "out.csv"
    assert vutrace("export", capture, "--format", "csv", "-o", csv).returncode == 0
    frame = pd.read_csv(csv)
    assert len(frame) == len(sample_records())
    assert frame.loc[3, "raw"] == MESSAGES[0][2].hex()
    parquet = tmp_path / "out.parquet"
    assert vutrace("export", capture, "--format", "parquet", "-o", parquet).returncode == 0
    table = pd.read_parquet(parquet)
    assert table.loc[3, "raw"] == MESSAGES[0][2]
    assert table["request"].tolist() == frame["request"].tolist()


def test_parquet_needs_output_file(capture: Path) -> None:
    result = vutrace("export", capture, "--format", "parquet")
    assert result.returncode == 2 and "needs -o" in result.stderr
