"""Rules on suspension and the device-state transfer (SET_DEVICE_STATE_FD, the stream, CHECK_DEVICE_STATE).

They follow each connection's rings: SET_VRING_KICK (or an in-band VRING_KICK) starts a ring,
GET_VRING_BASE (or GET_VRING_BASE_SKIP_DRAIN) stops it; the device is suspended once every
started ring was stopped, until the next kick.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dissectors import spec
from vutrace.analysis.checks.context import END_EVENTS, CheckContext
from vutrace.analysis.checks.model import Hit, Severity, rule
from vutrace.analysis.frame import attrs_of, is_chunk, is_event, is_message
from vutrace.analysis.sessions import human_duration

SUSPEND_GRACE_NS = 20_000_000
"""Back-end channel requests stamped this soon after the suspension are not reported: the proxy relays the
back-end channel and the main socket in different threads, which stamp what they receive independently, so
a request sent just before the last GET_VRING_BASE reply can be stamped after it."""
STARTS = ("SET_VRING_KICK", "VRING_KICK")
STOPS = ("GET_VRING_BASE", "GET_VRING_BASE_SKIP_DRAIN")


@dataclass
class RingWalk:
    """Ring state of one connection while walking its rows."""

    started: dict[int, int] = field(default_factory=dict)
    """vring -> row of the kick that started it."""
    stopped_any: bool = False
    suspended_since: dict[str, Any] | None = None
    """The GET_VRING_BASE reply that stopped the last started ring (None: not suspended)."""

    def feed(self, row: dict[str, Any]) -> None:
        if not is_message(row) or row.get("channel") != "main" or row.get("vring") is None:
            return
        name = row.get("request")
        vring = int(row["vring"])
        if name in STARTS and not row.get("is_reply"):
            self.started[vring] = row["row"]
            self.suspended_since = None
        elif name in STOPS and row.get("is_reply"):
            was_started = self.started.pop(vring, None) is not None
            if was_started and not self.started:
                self.suspended_since = row


def _walk(ctx: CheckContext) -> Iterator[tuple[dict[str, Any], RingWalk]]:
    """Every row with the ring state of its connection as it was before the row."""
    walks: dict[int, RingWalk] = {}
    for row in ctx.records:
        walk = walks.setdefault(int(row.get("conn", 0)), RingWalk())
        yield row, walk
        walk.feed(row)


def _transfers(ctx: CheckContext) -> Iterator[dict[str, Any]]:
    for row in ctx.requests("main"):
        if row.get("request") == "SET_DEVICE_STATE_FD":
            yield row


@rule(
    "state.parameters",
    Severity.ERROR,
    "SET_DEVICE_STATE_FD has direction SAVE or LOAD and phase STOPPED",
    "Device state transfer parameters",
    "S1",
)
def parameters(ctx: CheckContext) -> Iterator[Hit]:
    for row in _transfers(ctx):
        problems = []
        if row.get("direction") not in spec.TRANSFER_DIRECTION:
            problems.append(f"unknown direction {row.get('direction')}")
        if row.get("phase") not in spec.MIGRATION_PHASE:
            problems.append(f"unknown phase {row.get('phase')}")
        if problems:
            yield Hit("SET_DEVICE_STATE_FD with " + " and ".join(problems), (row["row"],))


@rule(
    "state.not-suspended",
    Severity.ERROR,
    "SET_DEVICE_STATE_FD only when every started ring was stopped by GET_VRING_BASE",
    "Migrating back-end state",
    "S2",
)
def not_suspended(ctx: CheckContext) -> Iterator[Hit]:
    for row, walk in _walk(ctx):
        transfer = is_message(row) and row.get("request") == "SET_DEVICE_STATE_FD" and not row.get("is_reply")
        if transfer and walk.started:
            rings = ", ".join(str(v) for v in sorted(walk.started))
            yield Hit(
                f"SET_DEVICE_STATE_FD while ring(s) {rings} are started (no GET_VRING_BASE stopped them)",
                (row["row"], *sorted(walk.started.values())),
            )


@rule(
    "state.restarted",
    Severity.ERROR,
    "No ring starts between SET_DEVICE_STATE_FD and the CHECK_DEVICE_STATE reply",
    "Migrating back-end state",
    "S2",
)
def restarted(ctx: CheckContext) -> Iterator[Hit]:
    transfer: dict[int, dict[str, Any]] = {}
    for row in ctx.records:
        conn = int(row.get("conn", 0))
        name = row.get("request")
        aborted = is_event(row, "state_close") and attrs_of(row).get("reason", "eof") != "eof"
        if aborted or is_event(row, *END_EVENTS):
            transfer.pop(conn, None)
        if not is_message(row) or row.get("channel") != "main":
            continue
        if name == "SET_DEVICE_STATE_FD":
            if not row.get("is_reply"):
                transfer[conn] = row
            elif row.get("state_error"):
                transfer.pop(conn, None)
        elif name == "CHECK_DEVICE_STATE" and row.get("is_reply"):
            transfer.pop(conn, None)
        elif name in STARTS and not row.get("is_reply") and conn in transfer:
            yield Hit(
                f"{name} ring {row.get('vring')} during the device-state transfer (before CHECK_DEVICE_STATE was "
                "answered)",
                (transfer[conn]["row"], row["row"]),
            )


@rule(
    "state.reply-error-with-fd",
    Severity.ERROR,
    "A SET_DEVICE_STATE_FD reply does not report an error and return an FD together",
    "Front-end message types",
    "S4",
)
def reply_error_with_fd(ctx: CheckContext) -> Iterator[Hit]:
    for request in _transfers(ctx):
        reply = ctx.replies.get(request["row"])
        if reply is None or not reply.get("state_error"):
            continue
        nfds = int(reply.get("nfds") or 0)
        if nfds or reply.get("nofd") is False:
            what = f"{nfds} FD(s) attached" if nfds else "bit 8 (no FD) clear"
            yield Hit(
                f"SET_DEVICE_STATE_FD reply reports error {reply['state_error']} with {what}",
                (request["row"], reply["row"]),
            )


@rule(
    "state.refused",
    Severity.ERROR,
    "The back-end accepts the device-state transfer",
    "Front-end message types",
    "S4",
)
def refused(ctx: CheckContext) -> Iterator[Hit]:
    for request in _transfers(ctx):
        reply = ctx.replies.get(request["row"])
        if reply is not None and reply.get("state_error"):
            direction = spec.TRANSFER_DIRECTION.get(request.get("direction"), str(request.get("direction")))
            yield Hit(
                f"back-end refused the {direction} transfer (SET_DEVICE_STATE_FD error {reply['state_error']}): "
                "the migration fails",
                (request["row"], reply["row"]),
            )


@dataclass
class _Stream:
    request: dict[str, Any]
    direction: int | None
    open_row: dict[str, Any] | None = None
    close_row: dict[str, Any] | None = None
    last_chunk: dict[str, Any] | None = None
    check: dict[str, Any] | None = None
    check_reply: dict[str, Any] | None = None
    check_held: dict[str, Any] | None = None
    """The proxy's ``message_held`` event for the CHECK_DEVICE_STATE: when the front-end sent it."""


def _streams(ctx: CheckContext) -> list[_Stream]:
    """Each accepted SET_DEVICE_STATE_FD with its stream events, chunks and check, per connection in order."""
    found: list[_Stream] = []
    current: dict[int, _Stream] = {}
    by_number: dict[tuple[int, int], _Stream] = {}
    for row in ctx.records:
        conn = int(row.get("conn", 0))
        if is_message(row) and row.get("channel") == "main" and not row.get("is_reply"):
            if row.get("request") == "SET_DEVICE_STATE_FD":
                reply = ctx.replies.get(row["row"])
                if reply is not None and reply.get("state_error"):
                    continue
                current[conn] = _Stream(row, row.get("direction"))
                found.append(current[conn])
            elif row.get("request") == "CHECK_DEVICE_STATE" and conn in current and current[conn].check is None:
                current[conn].check = row
                current[conn].check_reply = ctx.replies.get(row["row"])
        elif (
            is_event(row, "message_held")
            and attrs_of(row).get("request") == "CHECK_DEVICE_STATE"
            and conn in current
            and current[conn].check is None
        ):
            current[conn].check_held = row
        elif is_event(row, "state_open") and conn in current:
            by_number[(conn, int(row.get("stream") or 0))] = current[conn]
            current[conn].open_row = row
        elif is_event(row, "state_close") or is_chunk(row):
            stream = by_number.get((conn, int(row.get("stream") or 0)))
            if stream is None:
                continue
            if is_chunk(row):
                stream.last_chunk = row
            else:
                stream.close_row = row
    return found


@rule(
    "state.check-before-close",
    Severity.ERROR,
    "CHECK_DEVICE_STATE comes after the end of the stream (and is answered after it)",
    "Migrating back-end state",
    "S6",
)
def check_before_close(ctx: CheckContext) -> Iterator[Hit]:
    for stream in _streams(ctx):
        check, answer = stream.check, stream.check_reply
        if check is None or stream.open_row is None:
            continue
        chunk, held, close = stream.last_chunk, stream.check_held, stream.close_row
        if close is None:
            yield Hit("CHECK_DEVICE_STATE while the state channel is still open (it never closed)", (check["row"],))
        elif stream.direction == 0 and held is not None and int(held["ts_ns"]) < int(close["ts_ns"]):
            yield Hit(
                "CHECK_DEVICE_STATE sent before the front-end could have read the end of the SAVE stream "
                f"(the proxy passed end-of-file on {human_duration(int(close['ts_ns']) - int(held['ts_ns']))} later "
                "and held the check until then)",
                (held["row"], close["row"], check["row"]),
            )
        elif stream.direction == 0 and chunk is not None and int(chunk["ts_ns"]) > int(check["ts_ns"]):
            yield Hit(
                "CHECK_DEVICE_STATE sent before the front-end received the whole SAVE stream "
                f"(data still came {human_duration(int(chunk['ts_ns']) - int(check['ts_ns']))} later)",
                (check["row"], chunk["row"]),
            )
        elif (
            stream.direction == 1
            and answer is not None
            and chunk is not None
            and int(chunk["ts_ns"]) > int(answer["ts_ns"])
        ):
            yield Hit(
                "back-end answered CHECK_DEVICE_STATE before it received the whole LOAD stream "
                f"(data still came {human_duration(int(chunk['ts_ns']) - int(answer['ts_ns']))} later)",
                (check["row"], answer["row"], chunk["row"]),
            )


@rule("state.check-failed", Severity.ERROR, "CHECK_DEVICE_STATE reports success (0)", "Front-end message types", "S6")
def check_failed(ctx: CheckContext) -> Iterator[Hit]:
    for request in ctx.requests("main"):
        if request.get("request") != "CHECK_DEVICE_STATE":
            continue
        reply = ctx.replies.get(request["row"])
        if reply is not None and reply.get("result"):
            yield Hit(
                f"CHECK_DEVICE_STATE failed: result {reply['result']} (the back-end could not use the state)",
                (request["row"], reply["row"]),
            )


@rule("state.empty", Severity.WARNING, "A device-state stream carries data", "Migrating back-end state", "S5")
def empty(ctx: CheckContext) -> Iterator[Hit]:
    for stream in _streams(ctx):
        close = stream.close_row
        if close is None:
            continue
        attrs = attrs_of(close)
        total = attrs.get("bytes")
        if total == 0 and attrs.get("reason", "eof") == "eof":
            direction = spec.TRANSFER_DIRECTION.get(stream.direction, str(stream.direction))
            yield Hit(f"the {direction} stream ended without a single byte", (stream.request["row"], close["row"]))


@rule(
    "suspend.backend-message",
    Severity.ERROR,
    "No back-end channel request while the device is suspended (all rings stopped)",
    "Suspended device state",
    "R4",
)
def backend_while_suspended(ctx: CheckContext) -> Iterator[Hit]:
    for row, walk in _walk(ctx):
        since = walk.suspended_since
        if (
            since is not None
            and is_message(row)
            and row.get("channel") == "backend"
            and row.get("sender") == "backend"
            and not row.get("is_reply")
            and int(row["ts_ns"]) - int(since["ts_ns"]) > SUSPEND_GRACE_NS
        ):
            later = human_duration(int(row["ts_ns"]) - int(since["ts_ns"]))
            yield Hit(
                f"back-end channel {row['request']} while the device is suspended (all rings stopped {later} before)",
                (row["row"], since["row"]),
            )
