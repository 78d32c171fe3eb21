"""The front-end checks every reply and back-end request against the spec and says what is wrong, bounded."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dissectors.encode import encode
from dissectors.spec import Channel
from dissectors.spec import ProtocolFeature as PF
from vutrace.sim import Frontend, FrontendOptions, Guest, PeerClosed, PeerTimeout, ProtocolViolation, Refused
from vutrace.sim.wire import Endpoint, Received

PF_BIT = 1 << 30
VERSION_1 = 1 << 32
Handler = Callable[[Received], list[bytes] | None]
"""Given a request, the messages to answer with (None: close the connection)."""


class ScriptedBackend:
    """A back-end thread that answers each request as the test's handler says."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.handler = handler
        self.channel: socket.socket | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        endpoint = Endpoint(conn, Channel.MAIN, peer="scripted", timeout=2.0)
        try:
            while True:
                message = endpoint.receive(5.0)
                if message.name == "SET_BACKEND_REQ_FD":
                    self.channel = socket.socket(fileno=message.take_fd())
                answers = self.handler(message)
                message.close()
                if answers is None:
                    return
                for data in answers:
                    endpoint.send(data)
        except Exception:
            return
        finally:
            endpoint.close()

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)
        if self.channel is not None:
            self.channel.close()


def answer(features: int = VERSION_1, protocol: int = 0, fail: str = "") -> Handler:
    """Correct answers for a minimal back-end; the request named ``fail`` gets result 1."""

    def handle(message: Received) -> list[bytes] | None:
        name, record = message.name, message.record
        if name == "GET_FEATURES":
            return [encode(name, reply=True, features=features)]
        if name == "GET_PROTOCOL_FEATURES":
            return [encode(name, reply=True, protocol_features=protocol)]
        if record["need_reply"]:
            return [encode(name, reply=True, result=int(name == fail))]
        return []

    return handle


@pytest.fixture
def scripted(sockdir: Path) -> Iterator[Callable[[Handler], Frontend]]:
    """A connected front-end facing a ScriptedBackend (kept in ``frontend.scripted``)."""
    made: list[tuple[ScriptedBackend, Frontend, Guest]] = []

    def start(handler: Handler) -> Frontend:
        path = sockdir / f"scripted{len(made)}.sock"
        server = ScriptedBackend(path, handler)
        guest = Guest(queue_pairs=1)
        frontend = Frontend(path, guest, FrontendOptions(timeout=0.5))
        frontend.scripted = server  # type: ignore[attr-defined]
        made.append((server, frontend, guest))
        return frontend.connect()

    yield start
    for server, frontend, guest in made:
        frontend.close()
        server.close()
        guest.close()


def test_a_reply_to_another_request_is_rejected_with_both_names(scripted) -> None:
    def handle(message: Received) -> list[bytes]:
        return [encode("GET_PROTOCOL_FEATURES", reply=True, protocol_features=0)]

    frontend = scripted(handle)
    with pytest.raises(ProtocolViolation, match=r"reply to GET_FEATURES: request id expected 1, got 15 \(GET_PROTO"):
        frontend.setup()


def test_a_backend_that_hangs_up_during_setup_is_peer_closed(scripted) -> None:
    base = answer()

    def handle(message: Received) -> list[bytes] | None:
        return None if message.name == "SET_OWNER" else base(message)

    frontend = scripted(handle)
    with pytest.raises(PeerClosed, match="GET_FEATURES"):
        frontend.setup()


def test_a_failed_ack_is_refused_naming_the_message(scripted) -> None:
    frontend = scripted(answer(VERSION_1 | PF_BIT, 1 << PF.REPLY_ACK, fail="SET_MEM_TABLE"))
    frontend.setup()
    with pytest.raises(Refused, match="SET_MEM_TABLE: back-end replied 1 \\(failure\\)"):
        frontend.start()


def test_a_backend_that_never_answers_is_a_bounded_timeout(scripted) -> None:
    frontend = scripted(lambda message: [])
    started = time.monotonic()
    with pytest.raises(PeerTimeout, match=r"no reply to GET_FEATURES within 0\.5 s"):
        frontend.setup()
    assert time.monotonic() - started < 2


def test_a_backend_request_behind_an_unnegotiated_feature_is_reported(scripted) -> None:
    frontend = scripted(answer(VERSION_1 | PF_BIT, 1 << PF.BACKEND_REQ))
    frontend.setup()
    channel = frontend.scripted.channel
    assert channel is not None
    channel.sendall(encode("CONFIG_CHANGE_MSG", "backend"))
    deadline = time.monotonic() + 2
    while not frontend.problems and time.monotonic() < deadline:
        time.sleep(0.01)
    assert frontend.problems == [
        "CONFIG_CHANGE_MSG: needs protocol feature CONFIG (bit 9), not negotiated "
        "(not offered by the back-end, not acked by the front-end)"
    ]


def test_connecting_to_nothing_is_a_bounded_timeout(sockdir: Path) -> None:
    guest = Guest()
    frontend = Frontend(sockdir / "nobody.sock", guest, FrontendOptions(timeout=0.2))
    with pytest.raises(PeerTimeout, match=r"cannot connect to .*nobody\.sock within 0\.2 s"):
        frontend.connect()
    frontend.close()
    guest.close()
