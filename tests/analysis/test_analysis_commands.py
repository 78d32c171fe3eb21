"""The analysis commands as users run them: output, JSON, -Y filters, exit statuses, one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from analysis_captures import VIRTIOFSD_PROTOCOL, destination, source

from vutrace.cli import main


@pytest.fixture
def pair(tmp_path: Path) -> tuple[str, str]:
    source().write(tmp_path / "src.pcapng")
    destination().write(tmp_path / "dst.pcapng")
    return str(tmp_path / "src.pcapng"), str(tmp_path / "dst.pcapng")


@pytest.fixture
def ungated(tmp_path: Path) -> str:
    """A source whose front-end did not ack DEVICE_STATE but still sends SET_DEVICE_STATE_FD."""
    source(protocol=VIRTIOFSD_PROTOCOL & ~(1 << 19)).write(tmp_path / "ungated.pcapng")
    return str(tmp_path / "ungated.pcapng")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_session(capsys: pytest.CaptureFixture[str], pair: tuple[str, str]) -> None:
    status, out, _ = run(capsys, "session", pair[0])
    assert status == 0
    assert "SET_FEATURES           ack   0x154000000  +LOG_ALL" in out
    assert "gpa 0x0-0x20000000 (512 MiB)" in out
    assert "stopped, disabled log" in out and "history:" in out
    status, out, _ = run(capsys, "session", pair[0], "--format", "json")
    data = json.loads(out)
    assert [r["message"] for r in data["sessions"][0]["rounds"]][-1] == "SET_FEATURES"
    assert data["sessions"][0]["rings"]["1"]["stopped_base"] == 7


def test_session_filter_and_brief(capsys: pytest.CaptureFixture[str], pair: tuple[str, str]) -> None:
    _, out, _ = run(capsys, "session", pair[0], "-Y", "request == 'SET_VRING_BASE'")
    history = out.split("history:")[1].strip().splitlines()
    assert len(history) == 2 and all("base 0" in line for line in history)
    _, out, _ = run(capsys, "session", pair[0], "--brief")
    assert "history:" not in out


def test_timeline(capsys: pytest.CaptureFixture[str], pair: tuple[str, str]) -> None:
    status, out, _ = run(capsys, "timeline", pair[1], pair[0])
    assert status == 0
    assert "src.pcapng: source" in out and "dst.pcapng: destination" in out
    assert "migration src.pcapng -> dst.pcapng" in out and "downtime (suspension -> running)" in out
    assert "ring 1: source stopped at 7, destination restarts at 7 -> same" in out
    _, out, _ = run(capsys, "timeline", pair[0], pair[1], "--format", "json")
    data = json.loads(out)
    assert data["migration"]["downtime_ns"] > 0
    assert [p["name"] for p in data["sides"][0]["phases"]][:3] == ["negotiation", "setup", "running"]


def test_throughput(capsys: pytest.CaptureFixture[str], pair: tuple[str, str]) -> None:
    status, out, _ = run(capsys, "throughput", *pair)
    assert status == 0
    assert "the front-end's pipe" in out and "total: 10240 bytes" in out
    assert "same size, same SHA-256" in out
    _, out, _ = run(capsys, "throughput", pair[0], "--format", "json")
    (stream,) = json.loads(out)["streams"]
    assert stream["total_bytes"] == 10240 and stream["chunk_sizes"]["count"] == 3


def test_check_status_and_output(capsys: pytest.CaptureFixture[str], pair: tuple[str, str], ungated: str) -> None:
    status, out, _ = run(capsys, "check", *pair)
    assert status == 0 and "0 errors, 0 warnings" in out
    status, out, _ = run(capsys, "check", ungated)
    assert status == 1
    assert "gate.not-negotiated" in out and "[spec: Protocol features]" in out
    status, out, _ = run(capsys, "check", ungated, "--format", "json")
    data = json.loads(out)
    assert status == 1 and data["errors"] >= 1
    finding = next(f for f in data["findings"] if f["rule"] == "gate.not-negotiated")
    assert finding["severity"] == "error" and finding["records"][0]["row"] >= 0


def test_check_filter_and_severity(capsys: pytest.CaptureFixture[str], ungated: str) -> None:
    status, out, _ = run(capsys, "check", ungated, "-Y", "request == 'GET_FEATURES'")
    assert status == 0 and "0 errors" in out
    status, out, _ = run(capsys, "check", ungated, "-Y", "request == 'SET_DEVICE_STATE_FD'", "--severity", "error")
    assert status == 1 and "warning " not in out


def test_check_rules(capsys: pytest.CaptureFixture[str]) -> None:
    from vutrace.analysis.checks import rules

    status, out, _ = run(capsys, "check", "--rules")
    assert status == 0
    assert [line.split()[0] for line in out.splitlines()] == [r.id for r in rules()]


def test_diff(capsys: pytest.CaptureFixture[str], pair: tuple[str, str], ungated: str) -> None:
    status, out, _ = run(capsys, "diff", pair[0], pair[0])
    assert status == 0 and "no difference" in out
    status, out, _ = run(capsys, "diff", pair[0], ungated)
    assert status == 1
    first = out.split("first divergence:")[1].splitlines()[1]
    assert "SET_PROTOCOL_FEATURES: protocol_features 0x8a42b -> 0xa42b (-DEVICE_STATE)" in first
    status, out, _ = run(
        capsys, "diff", pair[0], ungated, "--format", "json", "-Y", "request != 'SET_PROTOCOL_FEATURES'"
    )
    assert status == 0 and json.loads(out)["first_divergence"] is None


def test_report_writes_a_self_contained_page(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, pair: tuple[str, str], ungated: str
) -> None:
    page = tmp_path / "report.html"
    status, out, _ = run(capsys, "report", ungated, "-o", str(page))
    assert status == 0 and str(page) in out
    html = page.read_text()
    assert not re.findall(r"<script[^>]*\ssrc=", html), "nothing is loaded from elsewhere"
    assert "Plotly.newPlot" in html
    assert "href='#f0'" in html and "id='f0'" in html, "the record list links back to the findings"
    finding_row = html.split("id='f0'")[1].split("</tr>")[0]
    anchor = finding_row.split("href='#")[1].split("'")[0]
    assert f"id='{anchor}'" in html, "each finding links to its record's anchor"


def test_errors_are_one_line(capsys: pytest.CaptureFixture[str], pair: tuple[str, str], tmp_path: Path) -> None:
    for argv in (
        ("check", str(tmp_path / "missing.pcapng")),
        ("session", pair[0], "-Y", "request =="),
        ("timeline", pair[0], pair[1], pair[0]),
        ("report", pair[0], "-o", str(tmp_path / "no" / "dir" / "r.html")),
    ):
        status, _, err = run(capsys, *argv)
        assert status == 2, argv
        assert len(err.strip().splitlines()) == 1 and err.startswith(f"vutrace {argv[0]}: "), err
