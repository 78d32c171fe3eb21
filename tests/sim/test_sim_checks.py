"""The spec checks both peers run on what they receive: each names message, field, expected and got."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from dissectors.encode import encode
from dissectors.spec import F_PROTOCOL_FEATURES, Channel, by_name
from dissectors.spec import ProtocolFeature as PF
from vutrace.sim.checks import Negotiation, check_reply, check_request
from vutrace.sim.fds import close_all, new_eventfd
from vutrace.sim.wire import Endpoint, Received

NEGOTIATED = Negotiation(
    offered_features=1 << F_PROTOCOL_FEATURES,
    acked_features=1 << F_PROTOCOL_FEATURES,
    offered_protocol=(1 << PF.REPLY_ACK) | (1 << PF.LOG_SHMFD) | (1 << PF.DEVICE_STATE),
    acked_protocol=(1 << PF.REPLY_ACK) | (1 << PF.LOG_SHMFD),
)


@pytest.fixture
def carry() -> Iterator:
    """Send bytes (and FDs) over a real socketpair and receive them as a ``Received``."""
    a, b = socket.socketpair()
    left = Endpoint(a, Channel.MAIN, peer="a", timeout=1)
    right = Endpoint(b, Channel.MAIN, peer="b", timeout=1)
    received: list[Received] = []

    def send(data: bytes, nfds: int = 0) -> Received:
        fds = [new_eventfd() for _ in range(nfds)]
        left.send(data, fds)
        close_all(fds)
        message = right.receive(1)
        received.append(message)
        return message

    yield send
    for message in received:
        message.close()
    left.close()
    right.close()


def test_a_message_behind_an_unnegotiated_feature_is_named_with_the_feature(carry) -> None:
    _, problems = check_request(carry(encode("CHECK_DEVICE_STATE")), Channel.MAIN, NEGOTIATED)
    assert problems == [
        "CHECK_DEVICE_STATE: needs protocol feature DEVICE_STATE (bit 19), not negotiated "
        "(offered by the back-end, not acked by the front-end)"
    ]


def test_need_reply_without_reply_ack_is_reported(carry) -> None:
    without = Negotiation(offered_features=1 << F_PROTOCOL_FEATURES)
    _, problems = check_request(carry(encode("SET_OWNER", need_reply=True)), Channel.MAIN, without)
    assert problems == ["SET_OWNER: NEED_REPLY (0x8) set but REPLY_ACK was not negotiated"]


def test_a_payload_of_the_wrong_size_names_message_expected_and_got(carry) -> None:
    message = carry(encode("SET_VRING_NUM", body=b"\0" * 4))
    _, problems = check_request(message, Channel.MAIN, NEGOTIATED)
    assert problems == ["SET_VRING_NUM: payload size 4, expected 8 for SET_VRING_NUM request"]


def test_set_log_base_needs_its_fd_when_log_shmfd_is_negotiated(carry) -> None:
    _, problems = check_request(carry(encode("SET_LOG_BASE", log_size=64)), Channel.MAIN, NEGOTIATED)
    assert problems == ["SET_LOG_BASE: 0 FDs, expected 1 (LOG_SHMFD decides)"]


def test_a_request_with_the_reply_bit_is_reported(carry) -> None:
    _, problems = check_request(carry(encode("SET_OWNER", flags=0x5)), Channel.MAIN, NEGOTIATED)
    assert problems == ["SET_OWNER: a reply (flags 0x5) arrived where a request was expected"]


def test_a_reply_must_carry_flags_0x5_exactly(carry) -> None:
    reply = carry(encode("GET_FEATURES", reply=True, flags=0x1, features=7))
    assert check_reply(reply, by_name(Channel.MAIN, "GET_FEATURES")) == [
        "GET_FEATURES reply: flags expected 0x5, got 0x1"
    ]


def test_a_reply_to_another_request_is_reported_by_both_names(carry) -> None:
    reply = carry(encode("GET_FEATURES", reply=True, features=7))
    assert check_reply(reply, by_name(Channel.MAIN, "GET_VRING_BASE")) == [
        "reply to GET_VRING_BASE: request id expected 11, got 1 (GET_FEATURES)"
    ]


def test_a_reply_fd_the_invalid_fd_flag_rules_out_is_reported(carry) -> None:
    reply = carry(encode("SET_DEVICE_STATE_FD", reply=True, state_error=0, nofd=True), nfds=1)
    assert check_reply(reply, by_name(Channel.MAIN, "SET_DEVICE_STATE_FD")) == [
        "SET_DEVICE_STATE_FD reply: 1 FDs attached, expected 0"
    ]


def test_reply_rules_follow_reply_ack_and_log_shmfd() -> None:
    ack = by_name(Channel.MAIN, "SET_VRING_ENABLE")
    assert NEGOTIATED.replies_to(ack, need_reply=True)
    assert not NEGOTIATED.replies_to(ack, need_reply=False)
    assert not Negotiation(offered_features=1 << F_PROTOCOL_FEATURES).replies_to(ack, need_reply=True)
    assert NEGOTIATED.replies_to(by_name(Channel.MAIN, "SET_LOG_BASE"), need_reply=False)
    assert NEGOTIATED.replies_to(by_name(Channel.MAIN, "GET_VRING_BASE"), need_reply=False)
