"""Migration properties, checked from outside the migration code: state bytes, ring bases, device counters."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from dissectors.records import decode
from vutrace.sim import Backend, MigrationPlan, run_migration
from vutrace.sim.frontend import FRONTEND_PROTOCOL_FEATURES, FrontendOptions
from vutrace.sim.state import DIGEST_SIZE, HEADER, RING, encode_stream

OVERHEAD = HEADER.size + 16 * RING.size + DIGEST_SIZE
"""Header, the ring table of a 16-ring back-end, and the digest."""


def migrate(backend: Callable[..., Backend], state_size: int = 4096, **kwargs):
    source = backend("src", state_size=state_size)
    destination = backend("dst")
    result = run_migration(source.path, destination.path, **kwargs)
    assert source.wait_finished(1, 5) and destination.wait_finished(1, 5)
    return result, source, destination


@pytest.mark.parametrize("state_size", [0, 1, 100_000, 3 << 20])
def test_the_state_arrives_intact_whatever_its_size(backend, state_size: int) -> None:
    result, source, destination = migrate(backend, state_size)
    assert result.ok, result.summary()
    saved, loaded = source.transfers[-1], destination.transfers[-1]
    regenerated = hashlib.sha256(b"".join(encode_stream(loaded.snapshot))).hexdigest()
    assert saved.sha256 == loaded.sha256 == result.state_sha256 == regenerated
    assert saved.bytes == loaded.bytes == state_size + OVERHEAD


def test_the_destination_starts_from_the_sources_ring_bases(backend) -> None:
    result, _, _ = migrate(backend, queue_pairs=2)
    rows = result.transcript.rows()
    got = [decode(r.data)["num"] for r in rows if r.peer == "source" and r.request == "GET_VRING_BASE" and r.is_reply]
    set_on_destination = [
        decode(r.data)["num"] for r in rows if r.peer == "destination" and r.request == "SET_VRING_BASE"
    ]
    assert got == set_on_destination == result.source_bases
    assert len(got) == 4 and all(got)


def test_the_device_counters_continue_on_the_destination(backend) -> None:
    result, source, destination = migrate(backend, plan=MigrationPlan(requests=10, in_flight=3))
    assert result.ok, result.summary()
    assert sum(source.device.processed) == 10 + 10
    assert sum(destination.device.processed) == 10 + 10 + 3 + 10
    assert destination.device.config_generation == source.device.config_generation + 1


def test_pages_the_backend_wrote_during_pre_copy_are_in_the_dirty_log(backend) -> None:
    result, _, _ = migrate(backend, plan=MigrationPlan(requests=8))
    assert result.ok and result.logged_pages >= 4


def test_migration_without_reply_ack_uses_barriers_and_still_works(backend) -> None:
    options = FrontendOptions(protocol_features=FRONTEND_PROTOCOL_FEATURES & ~(1 << 3))
    result, _, _ = migrate(backend, options=options)
    assert result.ok, result.summary()
    sent = [r for r in result.transcript.rows() if r.direction == "sent" and r.channel == "main"]
    assert not [r for r in sent if r.flags != 0x1]


def test_a_failed_transfer_leaves_the_source_running(backend) -> None:
    source = backend("src", faults=frozenset({"check-fails"}))
    destination = backend("dst")
    result = run_migration(source.path, destination.path)
    assert result.outcome == "failed; the source resumed"
    assert result.requests["after resuming the source"] == 16
    assert sum(source.device.processed) == 16 + 16 + 2 + 16
    assert destination.device.processed[0] == 0


@pytest.mark.slow
def test_a_gibibyte_of_state_migrates_intact(backend) -> None:
    result, source, destination = migrate(backend, 1 << 30)
    assert result.ok, result.summary()
    assert source.transfers[-1].sha256 == destination.transfers[-1].sha256 == result.state_sha256
    assert result.state_bytes == (1 << 30) + OVERHEAD
