"""Fixtures for the proxy tests: short socket paths, a proxy between a test front-end and back-end."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest

from tests.proxy.peers import Endpoint, Listener, connect
from vutrace.capture.model import CaptureRecord, RecordKind
from vutrace.capture.pcapng import read_records
from vutrace.proxy import Proxy


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


class Harness:
    """A proxy writing a real capture, a listening test back-end, and helpers to open connections."""

    def __init__(self, directory: str, reverse: bool = False, **proxy_options: object) -> None:
        self.directory = directory
        self.listen_path = f"{directory}/proxy.sock"
        self.peer_path = f"{directory}/peer.sock"
        self.capture = f"{directory}/capture.pcapng"
        self.reverse = reverse
        self.peer_listener = Listener(self.peer_path)
        if reverse:
            kwargs = {"listen_backend": self.listen_path, "connect_frontend": self.peer_path}
        else:
            kwargs = {"listen": self.listen_path, "connect": self.peer_path}
        self.proxy = Proxy(capture=self.capture, **kwargs, **proxy_options)
        self.proxy.start()
        self._stopped = False

    def open(self) -> tuple[Endpoint, Endpoint]:
        """A new proxied connection: (front-end endpoint, back-end endpoint)."""
        dialer = connect(self.listen_path)
        accepted = self.peer_listener.accept()
        return (accepted, dialer) if self.reverse else (dialer, accepted)

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.proxy.stop()
            self.peer_listener.close()

    def records(self) -> list[CaptureRecord]:
        self.stop()
        return list(read_records(self.capture))

    def messages(self, channel: str = "main") -> list[CaptureRecord]:
        return [r for r in self.records() if r.kind is RecordKind.MESSAGE and r.channel == channel]

    def events(self, name: str) -> list[CaptureRecord]:
        return [r for r in self.records() if r.kind is RecordKind.EVENT and r.event == name]


@pytest.fixture
def sock_dir() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="vtp", dir="/tmp")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def harness(sock_dir: str) -> Iterator[Harness]:
    h = Harness(sock_dir)
    yield h
    h.stop()


@pytest.fixture
def make_harness(sock_dir: str) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(**options: object) -> Harness:
        h = Harness(sock_dir, **options)
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()
