"""vutrace's own peers opposite real software, each conversation through a vutrace proxy.

The reference front-end (``vutrace sim frontend``) sets up two virtiofsd 1.13, saves the state of
one and loads it into the other; the reference back-end (``vutrace sim backend``) serves DPDK
22.11 testpmd's virtio-user front-end. What is asserted about the conversation comes from the
captures; the peers' own reports (the front-end's result, the back-end's JSON summary, testpmd's
forward statistics) are checked against them.
"""

from __future__ import annotations

import pandas as pd
import pytest

import vutrace
from dissectors.state import decode_state
from vutrace import interop
from vutrace.analysis import checks
from vutrace.analysis.checks import Severity
from vutrace.analysis.inputs import open_captures

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def requests(df: pd.DataFrame, name: str, reply: bool = False) -> pd.DataFrame:
    return df[(df.channel == "main") & (df.request == name) & (df.is_reply == reply)]


def state_bytes(df: pd.DataFrame) -> bytes:
    return b"".join(df[df.channel == "state"].sort_values("ts_ns").raw)


def findings_of(*captures) -> list[checks.Finding]:
    return checks.check(*open_captures([str(c) for c in captures]))


def test_the_sim_frontend_saves_and_loads_virtiofsd_state(peers, procs):
    outcome = interop.sim_frontend_virtiofsd(peers, procs)
    assert outcome.returncode == 0 and outcome.result.get("ok"), outcome.logs["sim-frontend"]
    src, dst = vutrace.load(outcome.source_capture), vutrace.load(outcome.destination_capture)
    for df in (src, dst):
        assert df.error.isna().all(), df[df.error.notna()][["request", "error"]]
        for name in ("GET_FEATURES", "SET_OWNER", "ADD_MEM_REG", "SET_VRING_KICK", "SET_VRING_ENABLE"):
            assert not requests(df, name).empty, f"{name} missing"

    (save,) = requests(src, "SET_DEVICE_STATE_FD").itertuples()
    assert (save.direction, save.phase, save.nfds) == (0, 0, 1)
    (load,) = requests(dst, "SET_DEVICE_STATE_FD").itertuples()
    assert (load.direction, load.phase, load.nfds) == (1, 0, 1)
    for df in (src, dst):
        (reply,) = requests(df, "SET_DEVICE_STATE_FD", reply=True).itertuples()
        assert (reply.flags, reply.u64, reply.state_error, reply.nofd, reply.nfds) == (0x5, 0x100, 0, True, 0)
        (check,) = requests(df, "CHECK_DEVICE_STATE", reply=True).itertuples()
        assert check.result == 0
    assert requests(src, "SET_DEVICE_STATE_FD").ts_ns.iloc[0] > requests(src, "GET_VRING_BASE", reply=True).ts_ns.max()

    saved, loaded = state_bytes(src), state_bytes(dst)
    assert saved and saved == loaded
    assert outcome.result["migration"]["state_bytes"] == len(saved)
    decoded = decode_state(saved)
    assert (decoded.format, decoded.recognised, decoded.error) == ("virtiofsd", True, None), decoded.summary
    assert decoded.content.version == "V2"

    findings = findings_of(outcome.source_capture, outcome.destination_capture)
    assert not [f for f in findings if f.severity is Severity.ERROR], findings


def test_the_sim_backend_serves_dpdk_virtio_user(peers, procs):
    outcome = interop.sim_backend_testpmd(peers, procs)
    stats, summary = outcome.statistics, outcome.summary
    assert stats.get("RX-packets", 0) > 0 and stats.get("TX-packets", 0) > 0, outcome.logs["testpmd-frontend"][-3000:]
    assert summary, outcome.logs["sim-backend"][-3000:]

    df = vutrace.load(outcome.capture)
    main = df[df.channel == "main"]
    assert main.error.isna().all(), main[main.error.notna()][["request", "error"]]
    sent = set(main[~main.is_reply].request)
    for name in (*interop.DPDK_SETUP_REQUESTS, "GET_PROTOCOL_FEATURES", "SET_PROTOCOL_FEATURES"):
        assert name in sent, f"{name} missing from {sorted(sent)}"
    (table,) = requests(df, "SET_MEM_TABLE").itertuples()
    (table_reply,) = requests(df, "SET_MEM_TABLE", reply=True).itertuples()
    assert table.need_reply and table_reply.result == 0 and table.nfds == table.num_regions == 1
    bases = {r.vring: r.num for r in requests(df, "GET_VRING_BASE", reply=True).itertuples()}
    assert set(bases) == {0, 1}

    events = [e["text"] for e in summary["events"]]
    gpa, size, uaddr, offset = table.regions[0]
    assert (
        f"memory region mapped: guest 0x{gpa:x}, 0x{size:x} bytes, user 0x{uaddr:x}, mmap offset 0x{offset:x}" in events
    )
    for ring in (0, 1):
        (num,) = requests(df, "SET_VRING_NUM")[lambda d, r=ring: d.vring == r].num
        assert f"ring {ring} started: size {num}, next avail 0" in events
        assert any(text.startswith(f"ring {ring} stopped: next avail {bases[ring]},") for text in events), events
    assert "all rings stopped: device suspended" in events

    # DPDK 22.11 sends GET_VRING_BASE for ring 1 with the previous reply's value in the reserved num:
    # the back-end names it, and still replies.
    (second,) = requests(df, "GET_VRING_BASE")[lambda d: d.vring == 1].num
    assert second == bases[0] != 0
    problems = [e["text"] for e in summary["events"] if e["level"] == "problem"]
    assert problems == [f"GET_VRING_BASE ring 1: num is reserved and must be 0, got {second}"]

    processed = summary["processed"]
    assert processed[0] >= stats["RX-packets"] > 0
    assert 0 < processed[1] <= stats["TX-packets"]

    findings = findings_of(outcome.capture)
    assert not [f for f in findings if f.severity is Severity.ERROR], findings
    assert "ring.reserved-num" in {f.rule for f in findings}
