"""``vutrace proxy`` as a real process: signals mid-transfer, --force, --live."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from dissectors.encode import encode
from tests.proxy.conftest import wait_for
from tests.proxy.peers import Endpoint, Listener, connect, read_some
from vutrace.capture.model import RecordKind
from vutrace.capture.pcapng import read_records
from vutrace.cli import build_parser

TOP = Path(__file__).resolve().parents[2]
EXIT_TIMEOUT_S = 10


class ProxyProcess:
    def __init__(self, directory: str, *extra: str) -> None:
        self.front_path = f"{directory}/fe.sock"
        self.back_path = f"{directory}/be.sock"
        self.capture = f"{directory}/capture.pcapng"
        self.backend = Listener(self.back_path)
        args = ["proxy", "--listen", self.front_path, "--connect", self.back_path, "-w", self.capture, *extra]
        self.process = start(args)
        deadline = time.monotonic() + EXIT_TIMEOUT_S
        while not os.path.exists(self.front_path):
            assert self.process.poll() is None, self.process.communicate()
            assert time.monotonic() < deadline, "proxy did not start listening"
            time.sleep(0.02)

    def open(self) -> tuple[Endpoint, Endpoint]:
        front = connect(self.front_path)
        return front, self.backend.accept()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=EXIT_TIMEOUT_S)
        self.backend.close()


def start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vutrace.cli", *args],
        cwd=TOP,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def proxy_process(sock_dir: str) -> Iterator[ProxyProcess]:
    running = ProxyProcess(sock_dir)
    yield running
    running.close()


def events_in(path: str) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [r.event for r in read_records(path)]


def start_save_transfer(front: Endpoint, back: Endpoint) -> tuple[int, int]:
    """Begin a SAVE transfer through the proxy; returns (front-end read end, back-end write end)."""
    r, w = os.pipe()
    front.send(encode("SET_DEVICE_STATE_FD", direction=0, phase=0), [w])
    os.close(w)
    _, (state,) = back.recv_message()
    back.send(encode("SET_DEVICE_STATE_FD", reply=True, u64=0x100))
    front.recv_message()
    os.write(state, b"x" * 65536)
    assert read_some(r)
    return r, state


def test_sigterm_mid_transfer_closes_both_sides_and_leaves_a_complete_capture(proxy_process: ProxyProcess) -> None:
    front, back = proxy_process.open()
    reader, writer = start_save_transfer(front, back)
    proxy_process.process.send_signal(signal.SIGTERM)
    assert proxy_process.process.wait(EXIT_TIMEOUT_S) == 0
    assert front.at_eof() and back.at_eof()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        records = list(read_records(proxy_process.capture))
    assert records[-1].event == "shutdown"
    assert records[-1].attrs["reason"] == "SIGTERM"
    (closed,) = [r for r in records if r.event == "state_close"]
    assert closed.attrs["reason"] == "stopped"
    assert any(r.kind is RecordKind.STATE_CHUNK for r in records)
    os.close(reader)
    os.close(writer)


def test_sigkill_mid_transfer_leaves_a_readable_capture(proxy_process: ProxyProcess) -> None:
    front, back = proxy_process.open()
    reader, writer = start_save_transfer(front, back)
    wait_for(lambda: "state_open" in events_in(proxy_process.capture))
    proxy_process.process.kill()
    proxy_process.process.wait(EXIT_TIMEOUT_S)
    assert front.at_eof() and back.at_eof()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = list(read_records(proxy_process.capture))
    assert [r.event for r in records if r.kind is RecordKind.EVENT][:4] == ["listen", "accept", "connect", "state_open"]
    assert [r.kind for r in records].count(RecordKind.MESSAGE) == 2
    assert all(r.event != "shutdown" for r in records)
    os.close(reader)
    os.close(writer)


def test_stale_socket_is_a_one_line_error_without_force(sock_dir: str) -> None:
    path = f"{sock_dir}/fe.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()
    args = ["proxy", "--listen", path, "--connect", f"{sock_dir}/be.sock", "-w", f"{sock_dir}/c.pcapng"]
    refused = start(args)
    _, err = refused.communicate(timeout=EXIT_TIMEOUT_S)
    assert refused.returncode == 2
    assert err.count("\n") == 1 and "--force" in err
    assert not os.path.exists(f"{sock_dir}/c.pcapng")
    forced = start([*args, "--force"])
    try:
        deadline = time.monotonic() + EXIT_TIMEOUT_S
        while not os.path.exists(f"{sock_dir}/c.pcapng"):
            assert time.monotonic() < deadline and forced.poll() is None
            time.sleep(0.02)
        connect(path).close()
    finally:
        forced.send_signal(signal.SIGINT)
        assert forced.wait(EXIT_TIMEOUT_S) == 0


def test_live_prints_one_line_per_message(sock_dir: str) -> None:
    running = ProxyProcess(sock_dir, "--live")
    try:
        front, back = running.open()
        front.send(encode("GET_FEATURES"))
        back.recv_message()
        back.send(encode("GET_FEATURES", reply=True, features=1))
        front.recv_message()
        running.process.send_signal(signal.SIGTERM)
        out, _ = running.process.communicate(timeout=EXIT_TIMEOUT_S)
    finally:
        running.close()
    lines = [line for line in out.splitlines() if "GET_FEATURES" in line]
    assert len(lines) == 2
    assert "frontend" in lines[0] and "backend" in lines[1]


def test_hidden_features_accept_numbers_and_names() -> None:
    hide = ["--hide-protocol-features", "19", "--hide-protocol-features", "vhost_user_protocol_f_reply_ack"]
    args = build_parser().parse_args(["proxy", "--listen", "a", "--connect", "b", *hide])
    assert args.hide_protocol_features == [19, 3]


@pytest.mark.parametrize("extra", [["--tui"], ["--tui", "--live", "-w", "c.pcapng"]])
def test_tui_needs_a_capture_file_and_excludes_live(tmp_path, extra):
    result = subprocess.run(
        [sys.executable, "-m", "vutrace.cli", "proxy", "--listen", str(tmp_path / "a"), "--connect", "b", *extra],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "--tui shows the capture being written" in result.stderr
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("command", ["proxy", "sim"])
def test_proxy_and_sim_commands_start_without_pandas(command: str) -> None:
    """The proxy and the simulated peers never load a capture into a DataFrame: they start without pandas."""
    probe = f"import sys, vutrace, vutrace.commands.{command}; print('pandas' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"
