"""The front-end speaks like QEMU: message order, NEED_REPLY where QEMU sets it, barriers, exact reply flags."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from dissectors.records import decode
from dissectors.spec import F_LOG_ALL, VHOST_VRING_F_LOG
from dissectors.spec import ProtocolFeature as PF
from vutrace.sim import Backend, Frontend, FrontendOptions, Guest, run_migration
from vutrace.sim.frontend import FRONTEND_PROTOCOL_FEATURES
from vutrace.sim.wire import Transcript, WireEntry

SETUP = [1, 15, 16, 17, 36, 21, 3, 1, 13, 14, 13, 14, 24]
"""GET_FEATURES, GET/SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, GET_MAX_MEM_SLOTS, SET_BACKEND_REQ_FD, SET_OWNER,
GET_FEATURES, SET_VRING_CALL/ERR per ring, GET_CONFIG (QEMU 10 + virtiofsd order; GET_CONFIG as vhost-user-blk)."""
START = [13, 13, 2, 37, 37, 8, 10, 9, 12, 8, 10, 9, 12, 18, 18, 13, 13]
"""masked CALLs, SET_FEATURES, ADD_MEM_REG per region, per ring NUM/BASE/ADDR/KICK, ENABLE per ring, CALL per ring."""
STOP = [18, 18, 11, 11, 13, 13]


def sent(transcript: Transcript, peer: str = "frontend", channel: str = "main") -> list[WireEntry]:
    return [r for r in transcript.rows() if r.peer == peer and r.direction == "sent" and r.channel == channel]


@pytest.fixture
def run(backend: Callable[..., Backend]) -> Iterator[Callable[..., Transcript]]:
    """Set-up, start, two requests and stop against a fresh back-end; returns the front-end's transcript."""
    guests: list[Guest] = []

    def go(drop: int = 0) -> Transcript:
        guest = Guest(queue_pairs=1)
        guests.append(guest)
        options = FrontendOptions(protocol_features=FRONTEND_PROTOCOL_FEATURES & ~drop)
        with Frontend(backend().path, guest, options) as frontend:
            frontend.connect().setup()
            frontend.start()
            frontend.exchange(2)
            frontend.stop()
            return frontend.transcript

    yield go
    for guest in guests:
        guest.close()


def test_setup_start_and_stop_follow_qemus_message_order(run) -> None:
    assert [r.request_id for r in sent(run())] == [*SETUP, *START, *STOP]


def test_need_reply_is_set_exactly_where_qemu_sets_it(run) -> None:
    flagged = {r.request for r in sent(run()) if r.flags == 0x9}
    assert flagged == {"SET_BACKEND_REQ_FD", "ADD_MEM_REG", "SET_VRING_ENABLE"}
    assert {r.flags for r in sent(run())} == {0x1, 0x9}


def test_every_reply_carries_flags_0x5(run) -> None:
    replies = [r for r in run().rows() if r.direction == "received" and r.channel == "main"]
    assert replies and {r.flags for r in replies} == {0x5}


def test_without_reply_ack_no_need_reply_and_get_features_barriers_after_each_enable(run) -> None:
    ids = [r.request_id for r in sent(run(drop=1 << PF.REPLY_ACK))]
    assert {r.flags for r in sent(run(drop=1 << PF.REPLY_ACK))} == {0x1}
    enables = [i for i, request in enumerate(ids) if request == 18]
    assert len(enables) == 4 and all(ids[i + 1] == 1 for i in enables)


def test_without_mem_slots_one_set_mem_table_carries_one_fd_per_region(run) -> None:
    rows = sent(run(drop=1 << PF.CONFIGURE_MEM_SLOTS))
    tables = [r for r in rows if r.request == "SET_MEM_TABLE"]
    assert [(r.nfds, r.flags, decode(r.data)["num_regions"]) for r in tables] == [(2, 0x9, 2)]
    assert not [r for r in rows if r.request in ("ADD_MEM_REG", "GET_MAX_MEM_SLOTS")]


def test_the_backend_channel_carries_config_change_with_need_reply_and_a_0x5_reply(run) -> None:
    rows = [r for r in run().rows() if r.channel == "backend"]
    assert [(r.direction, r.request, r.flags) for r in rows] == [
        ("received", "CONFIG_CHANGE_MSG", 0x9),
        ("sent", "CONFIG_CHANGE_MSG", 0x5),
    ]


@pytest.fixture
def migration(backend: Callable[..., Backend]) -> Transcript:
    source, destination = backend("src"), backend("dst")
    result = run_migration(source.path, destination.path)
    assert result.ok, result.summary()
    return result.transcript


def test_the_source_logs_then_suspends_then_saves(migration: Transcript) -> None:
    ids = [r.request_id for r in sent(migration, "source")]
    assert ids == [*SETUP, *START, 6, 2, 9, 9, *STOP, 42, 43]


def test_the_destination_loads_before_it_starts(migration: Transcript) -> None:
    ids = [r.request_id for r in sent(migration, "destination")]
    assert ids == [*SETUP, 42, 43, *START]


def test_log_enabling_waits_with_need_reply_and_sets_log_all_and_the_ring_log_flag(migration: Transcript) -> None:
    rows = sent(migration, "source")
    features = [decode(r.data)["features"] for r in rows if r.request == "SET_FEATURES" and r.flags == 0x9]
    addresses = [decode(r.data)["addr_flags"] for r in rows if r.request == "SET_VRING_ADDR" and r.flags == 0x9]
    assert len(features) == 1 and features[0] >> F_LOG_ALL & 1
    assert addresses == [VHOST_VRING_F_LOG, VHOST_VRING_F_LOG]


def test_set_log_base_carries_the_log_description_and_its_memfd_and_is_answered(migration: Transcript) -> None:
    rows = [r for r in migration.rows() if r.peer == "source" and r.request == "SET_LOG_BASE"]
    request, reply = rows
    record = decode(request.data)
    assert (request.nfds, request.flags, record["log_offset"]) == (1, 0x1, 0)
    assert record["log_size"] % 8 == 0 and record["log_size"] > 0
    assert (reply.direction, reply.flags, decode(reply.data)["result"]) == ("received", 0x5, 0)


def test_state_messages_go_out_with_flags_0x1_and_one_fd(migration: Transcript) -> None:
    rows = [r for r in migration.rows() if r.request == "SET_DEVICE_STATE_FD" and r.direction == "sent"]
    assert [(r.peer, r.flags, r.nfds, decode(r.data)["direction"]) for r in rows] == [
        ("source", 0x1, 1, 0),
        ("destination", 0x1, 1, 1),
    ]
