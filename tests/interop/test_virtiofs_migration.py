"""A real QEMU 10 + virtiofsd 1.13 live migration, each back-end behind a vutrace proxy.

Everything asserted about the vhost-user conversation comes from the two captures alone; the
guest's own view (it still reads its files on the destination) comes from its serial console.
"""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

import vutrace
from vutrace import interop

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def requests(df: pd.DataFrame, name: str, reply: bool = False) -> pd.DataFrame:
    return df[(df.channel == "main") & (df.request == name) & (df.is_reply == reply)]


def state_bytes(df: pd.DataFrame) -> bytes:
    return b"".join(df[df.channel == "state"].sort_values("ts_ns").raw)


def assert_migration_visible(outcome: interop.MigrationOutcome) -> tuple[pd.DataFrame, pd.DataFrame]:
    src, dst = vutrace.load(outcome.source_capture), vutrace.load(outcome.destination_capture)
    for df in (src, dst):
        assert df.error.isna().all(), df[df.error.notna()][["request", "error"]]

    (save,) = requests(src, "SET_DEVICE_STATE_FD").itertuples()
    assert (save.direction, save.phase, save.nfds) == (0, 0, 1)
    (load,) = requests(dst, "SET_DEVICE_STATE_FD").itertuples()
    assert (load.direction, load.phase, load.nfds) == (1, 0, 1)
    for df in (src, dst):
        (reply,) = requests(df, "SET_DEVICE_STATE_FD", reply=True).itertuples()
        assert reply.state_error == 0
        (check,) = requests(df, "CHECK_DEVICE_STATE", reply=True).itertuples()
        assert check.result == 0

    saved, loaded = state_bytes(src), state_bytes(dst)
    assert len(saved) > 0
    assert hashlib.sha256(saved).hexdigest() == hashlib.sha256(loaded).hexdigest()

    source_bases = {r.vring: r.num for r in requests(src, "GET_VRING_BASE", reply=True).itertuples()}
    check_ts = requests(dst, "CHECK_DEVICE_STATE", reply=True).ts_ns.iloc[0]
    after = requests(dst, "SET_VRING_BASE")
    destination_bases = {r.vring: r.num for r in after[after.ts_ns > check_ts].itertuples()}
    if source_bases:
        assert destination_bases == source_bases
    return src, dst


def test_virtiofs_live_migration_with_guest(peers, procs):
    outcome = interop.virtiofs_migration(peers, procs, guest=True)
    src, _ = assert_migration_visible(outcome)
    assert "vutrace-guest: read content-1" in outcome.destination_console
    assert (outcome.shared / "appended").read_text().split() == ["before", "after"]
    assert len(requests(src, "GET_VRING_BASE", reply=True)) >= 2
    assert outcome.query_migrate["status"] == "completed"


def test_virtiofs_live_migration_file_handles(peers, procs):
    extra = ("--migration-mode", "file-handles", "--modcaps=+dac_read_search")
    outcome = interop.virtiofs_migration(peers, procs, guest=True, virtiofsd_extra=extra)
    assert_migration_visible(outcome)
    assert "vutrace-guest: read content-1" in outcome.destination_console


def test_virtiofs_migration_without_guest(peers, procs):
    outcome = interop.virtiofs_migration(peers, procs, guest=False)
    src, _ = assert_migration_visible(outcome)
    assert requests(src, "GET_VRING_BASE").empty


def test_hiding_device_state_makes_qemu_refuse_and_the_capture_shows_why(peers, procs):
    capture, error = interop.virtiofs_migration_refused(peers, procs, hidden_bit=19)
    assert "pre-save failed" in error or "does not support migration" in error, error
    src = vutrace.load(capture)
    (offer,) = requests(src, "GET_PROTOCOL_FEATURES", reply=True).itertuples()
    assert not offer.protocol_features >> 19 & 1
    (acked,) = requests(src, "SET_PROTOCOL_FEATURES").itertuples()
    assert not acked.protocol_features >> 19 & 1
    assert requests(src, "SET_DEVICE_STATE_FD").empty
