"""The back-end checks what it receives, answers by the spec's reply rules, and reports precisely."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from dissectors.encode import encode
from dissectors.spec import Channel
from dissectors.spec import ProtocolFeature as PF
from vutrace.sim import Backend, Frontend, Guest, GuestError, PeerClosed
from vutrace.sim.backend import BACKEND_PROTOCOL_FEATURES
from vutrace.sim.fds import close_all, new_eventfd, new_pipe, notify
from vutrace.sim.wire import Endpoint, Received


class RawFrontend:
    """A front-end that sends exactly the bytes a test builds."""

    def __init__(self, backend: Backend) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(backend.path))
        self.endpoint = Endpoint(sock, Channel.MAIN, peer="raw", timeout=2.0)
        self.backend = backend

    def send(self, data: bytes, fds: list[int] | None = None) -> None:
        self.endpoint.send(data, fds or [])

    def reply(self) -> Received:
        message = self.endpoint.receive(2.0, what="a reply")
        message.close()
        return message

    def negotiate(self, protocol: int = BACKEND_PROTOCOL_FEATURES) -> None:
        self.send(encode("GET_FEATURES"))
        self.reply()
        self.send(encode("GET_PROTOCOL_FEATURES"))
        self.reply()
        self.send(encode("SET_PROTOCOL_FEATURES", protocol_features=protocol))

    def finish(self) -> list[str]:
        """Close, wait for the back-end to end the connection, return its problems."""
        self.endpoint.close()
        assert self.backend.wait_finished(self.backend.connections, 5)
        return self.backend.problems()


@pytest.fixture
def raw(backend: Callable[..., Backend]) -> Iterator[RawFrontend]:
    front = RawFrontend(backend())
    yield front
    front.endpoint.close()


def test_an_undefined_request_with_need_reply_gets_a_failure_ack(raw: RawFrontend) -> None:
    raw.negotiate()
    raw.send(encode(99, need_reply=True))
    reply = raw.reply()
    assert (reply.record["request_id"], reply.record["flags"], reply.data[12:]) == (99, 0x5, (1).to_bytes(8, "little"))
    assert raw.finish() == ["request id 99 is not defined on the main channel"]


def test_set_mem_table_with_fewer_fds_than_regions_is_refused(raw: RawFrontend) -> None:
    raw.negotiate()
    regions = [(0, 4096, 0x1000, 0), (1 << 32, 4096, 0x10000, 0)]
    fd = new_eventfd()
    raw.send(encode("SET_MEM_TABLE", need_reply=True, regions=regions), [fd])
    close_all([fd])
    assert raw.reply().record["result"] == 1
    assert raw.finish() == [
        "SET_MEM_TABLE: 1 FDs attached, expected 2",
        "SET_MEM_TABLE: 1 FDs for 2 regions",
    ]


def test_inband_notifications_without_its_prerequisites_closes_the_connection(raw: RawFrontend) -> None:
    raw.negotiate(protocol=1 << PF.INBAND_NOTIFICATIONS)
    with pytest.raises(PeerClosed):
        raw.send(encode("GET_FEATURES"))
        raw.reply()
    assert any("INBAND_NOTIFICATIONS needs BACKEND_REQ and REPLY_ACK" in p for p in raw.finish())


def test_a_header_size_beyond_any_payload_closes_the_connection(raw: RawFrontend) -> None:
    raw.endpoint.sock.sendall(encode("SET_OWNER", size=1 << 24))
    with pytest.raises(PeerClosed):
        raw.reply()
    assert raw.finish() == [
        "closing the connection: SET_OWNER: header size field 16777216 exceeds the largest payload (4108); "
        "the stream cannot be framed"
    ]


def test_a_reserved_num_in_get_vring_base_is_reported(raw: RawFrontend) -> None:
    raw.negotiate()
    raw.send(encode("GET_VRING_BASE", vring=0, num=7))
    assert raw.reply().record["num"] == 0
    assert raw.finish() == ["GET_VRING_BASE ring 0: num is reserved and must be 0, got 7"]


def test_a_ring_started_before_its_addresses_is_refused(raw: RawFrontend) -> None:
    raw.negotiate()
    fd = new_eventfd()
    raw.send(encode("SET_VRING_KICK", need_reply=True, vring=1, nofd=False), [fd])
    close_all([fd])
    assert raw.reply().record["result"] == 1
    assert raw.finish() == ["SET_VRING_KICK: ring 1: no SET_VRING_ADDR before the ring was started"]


def test_check_device_state_without_a_transfer_fails(raw: RawFrontend) -> None:
    raw.negotiate()
    raw.send(encode("CHECK_DEVICE_STATE"))
    assert raw.reply().record["result"] == 1
    assert raw.finish() == ["CHECK_DEVICE_STATE: no state transfer was started on this connection"]


def test_a_transfer_phase_other_than_stopped_is_refused_with_0x101(raw: RawFrontend) -> None:
    raw.negotiate()
    read_end, write_end = new_pipe()
    raw.send(encode("SET_DEVICE_STATE_FD", direction=0, phase=1), [write_end])
    close_all([read_end, write_end])
    reply = raw.reply()
    assert (reply.record["state_error"], reply.record["nofd"], len(reply.fds)) == (1, True, 0)
    assert raw.finish() == ["SET_DEVICE_STATE_FD: phase 1, only 0 (STOPPED) is defined"]


def test_a_started_but_disabled_ring_completes_requests_without_responding(backend) -> None:
    guest = Guest(queue_pairs=1)
    with Frontend(backend().path, guest) as frontend:
        frontend.connect().setup()
        frontend.request("SET_FEATURES", features=frontend.features())
        frontend.negotiation.acked_features = frontend.features()
        for region in guest.memory.regions:
            frontend.request(
                "ADD_MEM_REG",
                fds=[guest.memory.fd],
                guest_addr=region.guest_addr,
                region_size=region.size,
                user_addr=region.user_addr,
                mmap_offset=region.mmap_offset,
            )
        frontend.request("SET_VRING_NUM", vring=0, num=guest.ring_size)
        frontend._set_addr(0)
        frontend.request("SET_VRING_CALL", fds=[frontend.notifiers[0].call], vring=0, nofd=False)
        frontend.request("SET_VRING_KICK", fds=[frontend.notifiers[0].kick], vring=0, nofd=False)
        guest.submit(0)
        notify(frontend.notifiers[0].kick)
        with pytest.raises(GuestError, match="completed with 0 bytes \\(discarded, as a disabled ring does\\)"):
            frontend.collect()
    guest.close()


def test_set_features_without_bit_30_enables_every_ring_at_once(backend) -> None:
    legacy = backend(features=1 << 32)
    guest = Guest(queue_pairs=1)
    with Frontend(legacy.path, guest) as frontend:
        frontend.connect().setup()
        frontend.start()
        assert frontend.exchange(6) == 6
        ids = {r.request for r in frontend.transcript.rows()}
    guest.close()
    assert not ids & {"GET_PROTOCOL_FEATURES", "SET_VRING_ENABLE", "SET_BACKEND_REQ_FD"}


def test_the_backend_serves_the_next_connection_and_stops_mid_connection(backend) -> None:
    server = backend()
    first = RawFrontend(server)
    first.endpoint.close()
    second = RawFrontend(server)
    second.send(encode("GET_FEATURES"))
    assert second.reply().record["features"]
    server.close()
    with pytest.raises(PeerClosed):
        second.send(encode("GET_FEATURES"))
        second.reply()
    second.endpoint.close()
    assert [e.text for e in server.events if e.level == "info"][-1] == "stopped"
