"""Message I/O: whole messages, FDs with the first byte, bounded waits, clear errors."""

from __future__ import annotations

import array
import os
import socket
from collections.abc import Iterator

import pytest

from dissectors.encode import encode
from dissectors.spec import Channel
from vutrace.sim.errors import PeerClosed, PeerTimeout, ProtocolViolation
from vutrace.sim.fds import new_eventfd
from vutrace.sim.wire import Endpoint, Transcript


@pytest.fixture
def pair() -> Iterator[tuple[Endpoint, Endpoint]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    transcript = Transcript()
    left = Endpoint(a, Channel.MAIN, peer="frontend", timeout=0.3, transcript=transcript)
    right = Endpoint(b, Channel.MAIN, peer="backend", timeout=0.3, transcript=transcript)
    yield left, right
    left.close()
    right.close()


def test_a_message_arrives_whole_with_its_fds_and_decoded(pair: tuple[Endpoint, Endpoint]) -> None:
    left, right = pair
    fd = new_eventfd()
    left.send(encode("SET_VRING_KICK", vring=3, nofd=False), [fd])
    os.close(fd)
    message = right.receive(1.0)
    assert (message.name, message.record["vring"], len(message.fds), message.late_fds) == ("SET_VRING_KICK", 3, 1, 0)
    os.eventfd_write(message.fds[0], 1)
    message.close()
    assert message.fds == []


def test_fds_sent_after_the_first_byte_are_counted_and_closed(pair: tuple[Endpoint, Endpoint]) -> None:
    left, right = pair
    data = encode("SET_VRING_CALL", vring=0, nofd=False)
    fd = new_eventfd()
    left.sock.sendall(data[:12])
    left.sock.sendmsg([data[12:]], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
    os.close(fd)
    message = right.receive(1.0)
    assert (len(message.fds), message.late_fds) == (0, 1)


def test_a_size_field_beyond_any_payload_is_a_framing_error(pair: tuple[Endpoint, Endpoint]) -> None:
    left, right = pair
    left.sock.sendall(encode("GET_FEATURES", size=1 << 20))
    with pytest.raises(ProtocolViolation, match="GET_FEATURES: header size field 1048576 exceeds"):
        right.receive(1.0)


def test_the_peer_closing_is_peer_closed(pair: tuple[Endpoint, Endpoint]) -> None:
    left, right = pair
    left.close()
    with pytest.raises(PeerClosed, match="closed the connection"):
        right.receive(1.0, what="a request")


def test_a_message_cut_short_times_out_with_the_byte_count(pair: tuple[Endpoint, Endpoint]) -> None:
    left, right = pair
    left.sock.sendall(encode("SET_FEATURES", features=1)[:15])
    with pytest.raises(PeerTimeout, match=r"3 of 8 bytes"):
        right.receive(1.0)


def test_no_message_within_the_timeout_is_peer_timeout(pair: tuple[Endpoint, Endpoint]) -> None:
    _, right = pair
    with pytest.raises(PeerTimeout, match=r"timed out after 0\.05 s waiting for the reply to X"):
        right.receive(0.05, what="the reply to X")


def test_the_transcript_keeps_both_directions_in_order(pair: tuple[Endpoint, Endpoint]) -> None:
    left, right = pair
    left.send(encode("GET_FEATURES"))
    right.receive(1.0).close()
    right.send(encode("GET_FEATURES", reply=True, features=5))
    left.receive(1.0).close()
    rows = [(r.peer, r.direction, r.request, r.flags) for r in left.transcript.rows()]
    assert rows == [
        ("frontend", "sent", "GET_FEATURES", 0x1),
        ("backend", "received", "GET_FEATURES", 0x1),
        ("backend", "sent", "GET_FEATURES", 0x5),
        ("frontend", "received", "GET_FEATURES", 0x5),
    ]


def test_sending_to_a_closed_peer_is_peer_closed(pair: tuple[Endpoint, Endpoint]) -> None:
    left, right = pair
    right.close()
    with pytest.raises(PeerClosed, match="GET_FEATURES: cannot send"):
        for _ in range(3):
            left.send(encode("GET_FEATURES"))
