"""The Wireshark dissector: tshark reads vutrace captures and agrees with vutrace on every message."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from capture_samples import sample_records, write_capture

from vutrace.capture import record_format as rf
from vutrace.capture.wireshark_lua import LUA_PATH, main, payload_fields, render
from vutrace.loader import load

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (scripts/install-debs)")

HEADER_FIELDS = [
    "frame.number",
    "vutrace.kind",
    "vutrace.channel",
    "vutrace.sender",
    "vutrace.conn",
    "vutrace.nfds",
    "vutrace.late_fds",
]
MESSAGE_FIELDS = [
    "vutrace.request",
    "vutrace.request_name",
    "vutrace.flags",
    "vutrace.flags.version",
    "vutrace.flags.reply",
    "vutrace.flags.need_reply",
    "vutrace.size",
]


def test_committed_lua_file_is_up_to_date() -> None:
    assert LUA_PATH.read_text() == render(), "run: python -m vutrace.capture.wireshark_lua"
    assert main(["--check"]) == 0


def test_check_reports_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "vutrace.lua"
    stale.write_text(render() + "-- edited by hand\n")
    assert main(["--check", "-o", str(stale)]) == 1


def tshark(*args: str | Path, lua: bool = True) -> subprocess.CompletedProcess[str]:
    assert TSHARK is not None
    command = [TSHARK, "-n", *(["-X", f"lua_script:{LUA_PATH}"] if lua else []), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _fields(path: Path, names: list[str], *extra: str) -> list[dict[str, str]]:
    args = ["-r", path, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f", *extra]
    for name in names:
        args += ["-e", name]
    result = tshark(*args)
    assert result.returncode == 0, result.stderr
    return [dict(zip(names, line.split("\t"), strict=True)) for line in result.stdout.splitlines()]


def _int(text: str) -> int:
    """A tshark field value as an integer (booleans print as True/False, hex fields with 0x; absent = 0)."""
    return {"True": 1, "False": 0, "": 0}[text] if text in ("True", "False", "") else int(text, 0)


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_capture(tmp_path_factory.mktemp("tshark") / "c.pcapng", sample_records(), socket_path="/run/vu.sock")


@needs_tshark
def test_tshark_reads_the_file_without_the_lua_dissector(capture: Path) -> None:
    result = tshark("-r", capture, lua=False)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(sample_records())
    assert "Exported PDU" in result.stdout or "vutrace" in result.stdout
    assert "error" not in result.stderr.lower()


@needs_tshark
def test_tshark_agrees_with_vutrace_on_every_record(capture: Path) -> None:
    frame = load(capture)
    rows = _fields(capture, HEADER_FIELDS + MESSAGE_FIELDS)
    assert len(rows) == len(frame)
    codes = {name: code for code, name in rf.CHANNEL_NAMES.items()}
    senders = rf.SENDER_CODES
    for got, (_, row) in zip(rows, frame.iterrows(), strict=True):
        assert int(got["vutrace.channel"]) == codes[row["channel"]]
        assert int(got["vutrace.sender"]) == senders[row["sender"]]
        assert int(got["vutrace.conn"]) == row["conn"]
        assert int(got["vutrace.nfds"]) == row["nfds"]
        if row["channel"] not in ("main", "backend"):
            assert got["vutrace.request"] == "" and got["vutrace.late_fds"] == ""
            continue
        assert int(got["vutrace.late_fds"]) == row["late_fds"]
        if row["request"] == "TRUNCATED":
            assert got["vutrace.request_name"] == ""
            continue
        assert got["vutrace.request_name"] == row["request"]
        assert int(got["vutrace.request"]) == row["request_id"]
        assert int(got["vutrace.flags"], 16) == row["flags"]
        assert int(got["vutrace.flags.version"]) == row["version"]
        assert _int(got["vutrace.flags.reply"]) == int(row["is_reply"])
        assert _int(got["vutrace.flags.need_reply"]) == int(row["need_reply"])
        assert int(got["vutrace.size"]) == row["size"]


@needs_tshark
def test_tshark_payload_fields_equal_the_flat_records(capture: Path) -> None:
    frame = load(capture)
    names = sorted(n for n in payload_fields() if n in frame.columns and frame[n].dtype.kind in "iub")
    names += ["nofd"]
    rows = _fields(capture, ["frame.number"] + [f"vutrace.{n}" for n in names])
    compared = 0
    for got, (_, row) in zip(rows, frame.iterrows(), strict=True):
        if row["channel"] not in ("main", "backend") or not pd.isna(row["error"]):
            continue
        for name in names:
            if pd.isna(row[name]):
                assert got[f"vutrace.{name}"] == "", (row["request"], name)
                continue
            assert _int(got[f"vutrace.{name}"]) == int(row[name]), (row["request"], name)
            compared += 1
    assert compared > 30


@needs_tshark
def test_display_filters(capture: Path) -> None:
    frame = load(capture)
    for expression, expected in [
        ("vutrace.flags.reply", frame["is_reply"]),
        ("vutrace.request == 42", (frame["request_id"] == 42).fillna(False)),
        ('vutrace.request_name == "SET_VRING_ENABLE"', frame["request"] == "SET_VRING_ENABLE"),
        ("vutrace.channel == 2", frame["channel"] == "backend"),
        ("vutrace.nfds > 0", frame["nfds"] > 0),
        ("vutrace.late_fds > 0", frame["late_fds"] > 0),
        ("vutrace.fds_after_first_byte", frame["late_fds"] > 0),
        ("vutrace.kind == 2", frame["channel"] == "state"),
        ('vutrace.event.name == "disconnect"', frame["request"] == "disconnect"),
    ]:
        rows = _fields(capture, ["frame.number"], "-Y", expression)
        assert [int(r["frame.number"]) for r in rows] == [i + 1 for i in frame.index[expected.to_numpy(bool)]], (
            expression
        )


@needs_tshark
def test_interfaces_name_connection_and_channel(capture: Path) -> None:
    result = tshark("-r", capture, "-T", "fields", "-e", "frame.interface_name", lua=False)
    names = set(result.stdout.split())
    assert names == {f"vu:/run/vu.sock#1/{c}" for c in ("main", "backend", "state", "event")}


@needs_tshark
def test_tshark_info_column(capture: Path) -> None:
    result = tshark("-r", capture, "-Y", "vutrace.request == 1")
    lines = result.stdout.splitlines()
    assert "vhost-user" in lines[0] and "#1 main GET_FEATURES" in lines[0]
    assert "GET_FEATURES reply features=0x8000000170000000" in lines[1]


@needs_tshark
def test_record_version_1_0_messages_have_no_late_fds_field() -> None:
    """A capture written before late_fds existed (byte 28 reserved): the dissector leaves the field out."""
    old = Path(__file__).resolve().parent / "data" / "dpdk-testpmd-record-1.0.pcapng"
    rows = _fields(old, ["vutrace.minor", "vutrace.kind", "vutrace.late_fds"])
    assert rows and {r["vutrace.minor"] for r in rows} == {"0"}
    assert any(r["vutrace.kind"] == "1" for r in rows)
    assert {r["vutrace.late_fds"] for r in rows} == {""}
