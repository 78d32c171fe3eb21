"""The analysis on real captures: vutrace's simulated peers talking through the capturing proxy.

Each scenario runs once per session (back-ends in threads, the proxy in-process writing
<side>.pcapng, real sockets, FDs and pipes); the checker must flag exactly the designed
violations and stay silent (no error) on the conforming runs.
"""

from __future__ import annotations

import pytest

from vutrace.analysis import checks, sessions, throughput, timeline
from vutrace.analysis.checks import Severity
from vutrace.analysis.frame import Capture
from vutrace.loader import load
from vutrace.sim.routing import ProxyThreads
from vutrace.sim.scenarios import run_scenario

CONFORMING = ("basic", "no-reply-ack", "set-mem-table", "multiqueue", "reconnect", "migrate", "migrate-own-channel")
VIOLATIONS = {
    "violation-ungated": "gate.not-negotiated",
    "violation-reply-flags": "header.reply-bit",
    "violation-missing-reply": "reply.missing",
    "violation-running-transfer": "state.not-suspended",
    "violation-error-with-fd": "state.reply-error-with-fd",
    "migrate-fd-error": "state.refused",
    "migrate-check-fails": "state.check-failed",
    "migrate-corrupt": "migration.state-hash",
}


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Capture]]:
    """Every scenario's captures (source first for migrations)."""
    out: dict[str, list[Capture]] = {}
    for name in (*CONFORMING, *VIOLATIONS):
        directory = tmp_path_factory.mktemp(name)
        result = run_scenario(name, route=ProxyThreads(directory))
        assert result.ok, result.lines()
        paths = [directory / f"{side}.pcapng" for side in ("source", "destination", "backend")]
        out[name] = [Capture(load(p), p.name, str(p)) for p in paths if p.exists()]
    return out


@pytest.mark.parametrize("name", CONFORMING)
def test_conforming_runs_have_no_errors(captured: dict[str, list[Capture]], name: str) -> None:
    findings = checks.check(*captured[name])
    assert not [f.to_dict() for f in findings if f.severity is Severity.ERROR]


@pytest.mark.parametrize(("name", "rule"), VIOLATIONS.items())
def test_violations_are_flagged(captured: dict[str, list[Capture]], name: str, rule: str) -> None:
    findings = checks.check(*captured[name])
    assert rule in {f.rule for f in findings if f.severity is Severity.ERROR}, [f.to_dict() for f in findings]


def test_migration_through_the_proxy(captured: dict[str, list[Capture]]) -> None:
    source, destination = captured["migrate"]
    sides = [timeline.side_timeline(c) for c in (destination, source)]
    assert {s.role for s in sides} == {"source", "destination"}
    result = timeline.migration(*sides)
    assert result.downtime_ns is not None and result.downtime_ns > 0
    assert 0 < (result.transfer_share or 0) < 1
    assert result.ring_bases and all(r.match for r in result.ring_bases)
    compared = throughput.compare(throughput.streams(source), throughput.streams(destination))
    assert compared.same_size and compared.same_hash
    assert compared.source is not None and compared.source.provider == "front-end pipe"
    assert compared.source.total > 0 and compared.source.first_byte_ns is not None


def test_own_channel_is_told_apart(captured: dict[str, list[Capture]]) -> None:
    source, _ = captured["migrate-own-channel"]
    (stream,) = throughput.streams(source)
    assert stream.provider == "back-end FD"


def test_reconnect_shows_two_sessions_of_one_socket(captured: dict[str, list[Capture]]) -> None:
    (capture,) = captured["reconnect"]
    found = sessions.sessions(capture)
    assert [s.conn for s in found] == [1, 2]
    assert found[0].socket and found[0].socket == found[1].socket
    assert found[0].ended_by == "disconnect"
    assert found[1].rings and all(r.base is not None for r in found[1].rings.values())
