"""The checker asks its questions once per group of alike rows; these tests pin what that must not change.

* Identical messages sent under different negotiation states are judged separately.
* The suspension and transfer rules (state.not-suspended, state.restarted, suspend.backend-message)
  find ring starts and stops by row number instead of walking every row; on random conversations
  they report exactly what ``reference_hits`` (the row-by-row walk they replaced) reports.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis_captures import EVENTFD, PIPE, VIRTIOFSD_FEATURES, VIRTIOFSD_PROTOCOL, Conversation, capture_of
from hypothesis import example, given, settings
from hypothesis import strategies as st

from vutrace.analysis import checks
from vutrace.analysis.checks.context import END_EVENTS, CheckContext
from vutrace.analysis.checks.migration import SUSPEND_GRACE_NS
from vutrace.analysis.frame import Capture, attrs_of, is_event, is_message
from vutrace.analysis.sessions import human_duration
from vutrace.loader import frame_from_records

STARTS = ("SET_VRING_KICK", "VRING_KICK")
STOPS = ("GET_VRING_BASE", "GET_VRING_BASE_SKIP_DRAIN")
RULES = ("state.not-suspended", "state.restarted", "suspend.backend-message")


def test_the_same_message_before_and_after_negotiation_is_judged_each_time(tmp_path: Path) -> None:
    """GET_QUEUE_NUM needs MQ, NEED_REPLY needs REPLY_ACK: both only count once SET_PROTOCOL_FEATURES acked them."""
    c = Conversation()
    c.request("GET_FEATURES")
    c.reply("GET_FEATURES", features=VIRTIOFSD_FEATURES)
    c.request("GET_PROTOCOL_FEATURES")
    c.reply("GET_PROTOCOL_FEATURES", protocol_features=VIRTIOFSD_PROTOCOL)
    for round in range(4):
        if round == 2:
            c.request("SET_PROTOCOL_FEATURES", protocol_features=VIRTIOFSD_PROTOCOL)
        c.request("GET_QUEUE_NUM")
        c.reply("GET_QUEUE_NUM", queue_num=1)
        c.request("SET_VRING_NUM", need_reply=True, vring=0, num=256)
        c.ack("SET_VRING_NUM")
    capture = capture_of(tmp_path, c)
    asked = [r for r in capture.records if r["request"] in ("GET_QUEUE_NUM", "SET_VRING_NUM") and not r["is_reply"]]
    shapes = capture.shapes.number
    assert len({shapes[r["row"]] for r in asked}) == 2, "each message is sent four times with the same bytes"
    findings = [(f.rule, f.records[0].row) for f in checks.check(capture)]
    assert sorted(findings) == [
        ("gate.not-negotiated", asked[0]["row"]),
        ("gate.not-negotiated", asked[2]["row"]),
        ("reply.need-reply-without-reply-ack", asked[1]["row"]),
        ("reply.need-reply-without-reply-ack", asked[3]["row"]),
    ]


# -- the row-by-row walk the suspension and transfer rules replaced --------------------------------------------


@dataclass
class RingWalk:
    started: dict[int, int] = field(default_factory=dict)
    suspended_since: dict[str, Any] | None = None

    def feed(self, row: dict[str, Any]) -> None:
        if not is_message(row) or row.get("channel") != "main" or row.get("vring") is None:
            return
        name, vring = row.get("request"), int(row["vring"])
        if name in STARTS and not row.get("is_reply"):
            self.started[vring] = row["row"]
            self.suspended_since = None
        elif name in STOPS and row.get("is_reply"):
            was_started = self.started.pop(vring, None) is not None
            if was_started and not self.started:
                self.suspended_since = row


def walk(records: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], RingWalk]]:
    walks: dict[int, RingWalk] = {}
    for row in records:
        state = walks.setdefault(int(row.get("conn", 0)), RingWalk())
        yield row, state
        state.feed(row)


def reference_hits(records: list[dict[str, Any]]) -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    hits: dict[str, list[tuple[str, tuple[int, ...]]]] = {rule: [] for rule in RULES}
    for row, state in walk(records):
        transfer = is_message(row) and row.get("request") == "SET_DEVICE_STATE_FD" and not row.get("is_reply")
        if transfer and state.started:
            rings = ", ".join(str(v) for v in sorted(state.started))
            message = f"SET_DEVICE_STATE_FD while ring(s) {rings} are started (no GET_VRING_BASE stopped them)"
            hits["state.not-suspended"].append((message, (row["row"], *sorted(state.started.values()))))
        since = state.suspended_since
        backend_request = (
            is_message(row)
            and row.get("channel") == "backend"
            and row.get("sender") == "backend"
            and not row.get("is_reply")
        )
        if since is not None and backend_request and int(row["ts_ns"]) - int(since["ts_ns"]) > SUSPEND_GRACE_NS:
            later = human_duration(int(row["ts_ns"]) - int(since["ts_ns"]))
            message = (
                f"back-end channel {row['request']} while the device is suspended (all rings stopped {later} before)"
            )
            hits["suspend.backend-message"].append((message, (row["row"], since["row"])))
    transfers: dict[int, dict[str, Any]] = {}
    for row in records:
        conn, name = int(row.get("conn", 0)), row.get("request")
        aborted = is_event(row, "state_close") and attrs_of(row).get("reason", "eof") != "eof"
        if aborted or is_event(row, *END_EVENTS):
            transfers.pop(conn, None)
        if not is_message(row) or row.get("channel") != "main":
            continue
        if name == "SET_DEVICE_STATE_FD":
            if not row.get("is_reply"):
                transfers[conn] = row
            elif row.get("state_error"):
                transfers.pop(conn, None)
        elif name == "CHECK_DEVICE_STATE" and row.get("is_reply"):
            transfers.pop(conn, None)
        elif name in STARTS and not row.get("is_reply") and conn in transfers:
            message = (
                f"{name} ring {row.get('vring')} during the device-state transfer (before CHECK_DEVICE_STATE was "
                "answered)"
            )
            hits["state.restarted"].append((message, (transfers[conn]["row"], row["row"])))
    return hits


# -- random conversations of two connections ------------------------------------------------------------------

STEPS = {
    "kick": lambda c, v: c.request("SET_VRING_KICK", fds=(EVENTFD,), vring=v),
    "inband-kick": lambda c, v: c.request("VRING_KICK", vring=v, num=0),
    "stop": lambda c, v: (c.request("GET_VRING_BASE", vring=v, num=0), c.reply("GET_VRING_BASE", vring=v, num=3)),
    "stop-reply": lambda c, v: c.reply("GET_VRING_BASE_SKIP_DRAIN", vring=v, num=3),
    "suspend": lambda c, v: [STEPS["stop"](c, ring) for ring in range(3)],
    "transfer": lambda c, v: c.request("SET_DEVICE_STATE_FD", fds=(PIPE,), direction=0, phase=0),
    "accepted": lambda c, v: c.reply("SET_DEVICE_STATE_FD", state_error=0, nofd=True),
    "refused": lambda c, v: c.reply("SET_DEVICE_STATE_FD", state_error=1, nofd=True),
    "checked": lambda c, v: (c.request("CHECK_DEVICE_STATE"), c.reply("CHECK_DEVICE_STATE", result=0)),
    "backend-request": lambda c, v: c.backend_request("VRING_CALL", vring=v, num=0),
    "backend-config": lambda c, v: c.backend_request("CONFIG_CHANGE_MSG", need_reply=True),
    "stream-end": lambda c, v: c.event("state_close", stream=1, reason="eof"),
    "stream-aborted": lambda c, v: c.event("state_close", stream=1, reason="error"),
    "disconnect": lambda c, v: c.event("disconnect", closed_by="frontend"),
    "pause": lambda c, v: c.tick((5_000_000, 15_000_000, 25_000_000)[v]),
}
OFTEN = ("kick", "suspend", "transfer", "backend-request", "backend-request", "pause", "pause")
step = st.tuples(st.sampled_from(sorted(STEPS) + list(OFTEN)), st.integers(1, 2), st.integers(0, 2))


EVERY_RULE = [
    ("kick", 1, 0),
    ("kick", 1, 1),
    ("transfer", 1, 0),
    ("accepted", 1, 0),
    ("inband-kick", 1, 1),
    ("checked", 1, 0),
    ("suspend", 1, 0),
    ("pause", 1, 2),
    ("backend-request", 1, 0),
]
"""Rings started during a transfer, a transfer while rings run, a back-end request 25 ms into the suspension."""


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=8, max_size=50))
@example(EVERY_RULE)
def test_suspension_and_transfer_rules_match_the_row_by_row_walk(steps: list[tuple[str, int, int]]) -> None:
    c = Conversation()
    for name, conn, vring in steps:
        c.conn = conn
        STEPS[name](c, vring)
    capture = Capture(frame_from_records(c.records), "random")
    context = CheckContext(capture)
    found = {r.id: [(h.message, h.rows) for h in r.check(context)] for r in checks.rules() if r.id in RULES}
    expected = reference_hits(capture.records)
    assert found == expected
    if steps == EVERY_RULE:
        assert all(expected.values()), expected
