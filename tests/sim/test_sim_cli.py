"""``vutrace sim`` as real processes: back-end and front-end apart, whole migrations, proxies, clean exits."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vutrace.capture.model import RecordKind
from vutrace.capture.pcapng import read_records
from vutrace.cli import main
from vutrace.commands.sim import size
from vutrace.sim import SCENARIOS
from vutrace.sim.state import DIGEST_SIZE, HEADER, RING

VUTRACE = [sys.executable, "-m", "vutrace.cli"]
TIMEOUT = 60


def vutrace(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*VUTRACE, *args], capture_output=True, text=True, timeout=TIMEOUT)


def start_backend(socket: Path, *args: str) -> subprocess.Popen:
    command = [*VUTRACE, "sim", "backend", "--socket", str(socket), "--json", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> tuple[dict, str]:
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, err
    return json.loads(out), err


def test_migrate_runs_two_backend_processes_and_checks_the_state_in_both(tmp_path: Path) -> None:
    done = vutrace("sim", "migrate", "--state-size", "1M", "--queue-pairs", "2", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["migration"]["state_bytes"] == (1 << 20) + HEADER.size + 16 * RING.size + DIGEST_SIZE
    assert "the state arrived intact (SHA-256 equal in both back-end processes and the front-end)" in report["checks"]
    assert report["migration"]["source_bases"] == report["migration"]["destination_bases"]


def test_backend_and_frontend_as_separate_processes_run_a_fault_scenario(sockdir: Path) -> None:
    socket = sockdir / "be.sock"
    backend = start_backend(socket, "--wrong-reply-flags", "GET_VRING_BASE", "--connections", "1")
    done = vutrace("sim", "frontend", "--socket", str(socket), "--scenario", "violation-reply-flags")
    summary, err = finish(backend)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "GET_VRING_BASE reply: flags expected 0x5, got 0x1" in done.stdout
    assert {"level": "fault", "text": "GET_VRING_BASE: reply sent with flags 0x1 instead of 0x5 on purpose"} in summary[
        "events"
    ]
    assert "reply sent with flags 0x1" in err


def test_a_frontend_against_the_wrong_backend_fails_and_says_how_to_start_the_right_one(sockdir: Path) -> None:
    socket = sockdir / "be.sock"
    backend = start_backend(socket, "--connections", "1")
    done = vutrace("sim", "frontend", "--socket", str(socket), "--scenario", "violation-missing-reply")
    finish(backend)
    assert done.returncode == 1
    assert f"vutrace sim backend --socket {socket} --missing-reply GET_VRING_BASE" in done.stderr


def test_the_backend_exits_cleanly_on_sigterm_and_removes_its_socket(sockdir: Path) -> None:
    socket = sockdir / "be.sock"
    backend = start_backend(socket)
    deadline = time.monotonic() + TIMEOUT
    while not socket.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    backend.send_signal(signal.SIGTERM)
    summary, _ = finish(backend)
    assert summary["connections"] == 0 and not socket.exists()


@pytest.mark.slow
def test_migrate_through_proxies_writes_a_capture_per_side(tmp_path: Path) -> None:
    done = vutrace("sim", "migrate", "--variant", "migrate-own-channel", "-w", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    for side in ("source", "destination"):
        records = list(read_records(tmp_path / f"{side}.pcapng"))
        kinds = {r.kind for r in records}
        assert {RecordKind.MESSAGE, RecordKind.STATE_CHUNK, RecordKind.EVENT} <= kinds
        assert f"capture: {tmp_path / side}.pcapng" in done.stdout


def test_a_migration_scenario_needs_two_sockets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "frontend", "--socket", "/nonexistent.sock", "--scenario", "migrate"]) == 2
    assert capsys.readouterr().err.strip() == (
        "vutrace sim: scenario migrate migrates between two back-ends: give --dest-socket too"
    )


def test_scenarios_lists_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "scenarios", "--json"]) == 0
    assert [row["name"] for row in json.loads(capsys.readouterr().out)] == list(SCENARIOS)


@pytest.mark.parametrize("name", ["reconnect", "migrate-corrupt"])
def test_run_executes_a_scenario_in_one_process(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "run", name]) == 0
    assert capsys.readouterr().out.startswith(f"{name}: ok")


def test_sizes_accept_binary_suffixes() -> None:
    assert [size(text) for text in ("4096", "64K", "64KiB", "1.5M", "2G")] == [4096, 65536, 65536, 1572864, 2 << 30]
    with pytest.raises(argparse.ArgumentTypeError, match="not a size"):
        size("lots")
