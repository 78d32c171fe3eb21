"""Connections: numbering, reconnects, concurrency, unreachable peers, reverse roles."""

from __future__ import annotations

import os
import socket
import threading
import time

from dissectors.encode import encode
from tests.proxy.conftest import Harness, wait_for
from tests.proxy.peers import Listener, connect
from vutrace.capture.model import RecordKind


def test_reconnects_get_new_numbers_and_the_listening_socket_survives(harness: Harness) -> None:
    for _ in range(3):
        front, back = harness.open()
        front.send(encode("GET_FEATURES"))
        assert back.recv_message()[0] == encode("GET_FEATURES")
        front.close()
        assert back.at_eof()
        back.close()
    wait_for(lambda: harness.proxy.active == 0)
    assert os.path.exists(harness.listen_path)
    assert [r.conn for r in harness.messages()] == [1, 2, 3]
    disconnects = harness.events("disconnect")
    assert [r.conn for r in disconnects] == [1, 2, 3]
    assert [(r.attrs["frontend_messages"], r.attrs["backend_messages"]) for r in disconnects] == [(1, 0)] * 3


def test_concurrent_connections_are_kept_apart(harness: Harness) -> None:
    pairs = [harness.open() for _ in range(5)]
    for round_ in range(3):
        for index, (front, _) in enumerate(pairs):
            front.send(encode("SET_VRING_NUM", vring=index, num=round_))
        for index, (_, back) in enumerate(pairs):
            assert back.recv_message()[0] == encode("SET_VRING_NUM", vring=index, num=round_)
    by_conn: dict[int, set[bytes]] = {}
    for record in harness.messages():
        by_conn.setdefault(record.conn, set()).add(record.data[12:16])
    assert sorted(by_conn) == [1, 2, 3, 4, 5]
    assert all(len(rings) == 1 for rings in by_conn.values())


def test_unreachable_backend_closes_the_frontend_and_records_an_error(harness: Harness) -> None:
    harness.peer_listener.close()
    front = connect(harness.listen_path)
    assert front.at_eof()
    (error,) = harness.events("error")
    assert "cannot connect to the backend" in error.attrs["error"]
    assert error.conn == 1


def test_reverse_roles_proxy_accepts_the_backend_and_dials_the_frontend(make_harness) -> None:
    harness = make_harness(reverse=True)
    front, back = harness.open()
    front.send(encode("GET_FEATURES"))
    assert back.recv_message()[0] == encode("GET_FEATURES")
    back.send(encode("GET_FEATURES", reply=True, features=7))
    assert front.recv_message()[0] == encode("GET_FEATURES", reply=True, features=7)
    records = harness.records()
    assert [r.sender for r in records if r.kind is RecordKind.MESSAGE] == ["frontend", "backend"]
    (accept,) = [r for r in records if r.event == "accept"]
    assert accept.attrs["side"] == "backend"
    (dial,) = [r for r in records if r.event == "connect"]
    assert dial.attrs["side"] == "frontend"


class Reconnector:
    """A client that reconnects as soon as it is closed, like DPDK's vhost PMD with client=1."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.attempts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(0.2)
            try:
                sock.connect(self.path)
                self.attempts += 1
                while not self._stop.is_set():
                    try:
                        if sock.recv(1) == b"":
                            break
                    except TimeoutError:
                        continue
            except OSError:
                time.sleep(0.01)
            finally:
                sock.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_reconnecting_backend_with_the_frontend_gone_is_backed_off_and_its_errors_coalesced(make_harness) -> None:
    harness = make_harness(reverse=True)
    harness.peer_listener.close()  # the front-end has gone
    client = Reconnector(harness.listen_path)
    time.sleep(1.6)
    client.stop()
    records = harness.records()
    accepts = [r for r in records if r.event == "accept"]
    errors = [r for r in records if r.event == "error"]
    assert 3 <= client.attempts <= 8  # 0.05 + 0.1 + 0.2 + 0.4 + 0.8 s between attempts, not thousands
    assert len(accepts) == 1 and len(errors) == 2
    first, summary = errors
    assert "cannot connect to the frontend" in first.attrs["error"]
    assert summary.attrs["error"] == first.attrs["error"]
    accepted = 1 + summary.attrs["repeated"]
    assert accepted in (client.attempts, client.attempts - 1)  # the last attempt may still wait in the backlog


def test_after_the_other_side_comes_back_the_next_connection_goes_through(make_harness) -> None:
    harness = make_harness(reverse=True)
    harness.peer_listener.close()
    for _ in range(3):
        assert connect(harness.listen_path).at_eof()
    harness.peer_listener = Listener(harness.peer_path)
    front, back = harness.open()
    front.send(encode("GET_FEATURES"))
    assert back.recv_message()[0] == encode("GET_FEATURES")
    (summary,) = [r for r in harness.events("error") if "repeated" in r.attrs]
    assert summary.attrs["repeated"] == 2
