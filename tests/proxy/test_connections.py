"""Connections: numbering, reconnects, concurrency, unreachable peers, reverse roles."""

from __future__ import annotations

import os

from dissectors.encode import encode
from tests.proxy.conftest import Harness, wait_for
from tests.proxy.peers import connect
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
