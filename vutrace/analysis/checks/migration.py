"""Rules on suspension and the device-state transfer (SET_DEVICE_STATE_FD, the stream, CHECK_DEVICE_STATE).

They follow each connection's rings: SET_VRING_KICK (or an in-band VRING_KICK) starts a ring,
GET_VRING_BASE (or GET_VRING_BASE_SKIP_DRAIN) stops it; the device is suspended once every
started ring was stopped, until the next kick.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dissectors import spec
from vutrace.analysis.checks.context import END_EVENTS, CheckContext, every
from vutrace.analysis.checks.model import Hit, Severity, rule
from vutrace.analysis.frame import attrs_of, is_chunk, is_event, is_message
from vutrace.analysis.sessions import human_duration

SUSPEND_GRACE_NS = 20_000_000
"""Back-end channel requests stamped this soon after the suspension are not reported: the proxy relays the
back-end channel and the main socket in different threads, which stamp what they receive independently, so
a request sent just before the last GET_VRING_BASE reply can be stamped after it."""
STARTS = ("SET_VRING_KICK", "VRING_KICK")
STOPS = ("GET_VRING_BASE", "GET_VRING_BASE_SKIP_DRAIN")
NO_ROWS = np.zeros(0, dtype=np.int64)


@dataclass
class Rings:
    """When each connection's rings were started (a kick) and stopped (a GET_VRING_BASE reply), as rows.

    A ring is started at a row if its last kick before the row came after its last stop before it.
    """

    kicks: dict[tuple[int, int], np.ndarray]
    """(conn, vring) -> the rows of the ring's kicks, in order."""
    stops: dict[tuple[int, int], np.ndarray]
    """(conn, vring) -> the rows of the ring's stops, in order."""

    @classmethod
    def of(cls, ctx: CheckContext) -> Rings:
        kicks = ctx.row_numbers_by(_is_kick, _ring, kind="message", channel="main")
        return cls(kicks, ctx.row_numbers_by(_is_stop, _ring, kind="message", channel="main"))

    def started(self, conn: int, row: int) -> dict[int, int]:
        """The rings of ``conn`` started just before ``row``: vring -> the row of the kick that started it."""
        found: dict[int, int] = {}
        for (number, vring), kicks in self.kicks.items():
            kick = _last_before(kicks, row) if number == conn else None
            if kick is None:
                continue
            stop = _last_before(self.stops.get((conn, vring), NO_ROWS), row)
            if stop is None or stop < kick:
                found[vring] = kick
        return found

    def suspensions(self) -> Iterator[tuple[int, int, int | None]]:
        """Each time a connection was suspended: (conn, the stop that left no ring started, the next kick)."""
        for (conn, vring), stops in self.stops.items():
            for stop in stops.tolist():
                if list(self.started(conn, stop)) == [vring]:
                    later = [_first_after(kicks, stop) for (number, _), kicks in self.kicks.items() if number == conn]
                    yield conn, stop, min((k for k in later if k is not None), default=None)


def _is_kick(message: dict[str, Any]) -> bool:
    """A main-channel message that starts its ring."""
    return message.get("vring") is not None and message.get("request") in STARTS and not message.get("is_reply")


def _is_stop(message: dict[str, Any]) -> bool:
    """A main-channel message that stops its ring."""
    return message.get("vring") is not None and message.get("request") in STOPS and bool(message.get("is_reply"))


def _ring(row: dict[str, Any]) -> tuple[int, int]:
    return int(row.get("conn", 0)), int(row["vring"])


def _last_before(rows: np.ndarray, row: int) -> int | None:
    index = int(np.searchsorted(rows, row, side="left"))
    return int(rows[index - 1]) if index else None


def _first_after(rows: np.ndarray, row: int) -> int | None:
    index = int(np.searchsorted(rows, row, side="right"))
    return int(rows[index]) if index < len(rows) else None


def _between(rows: np.ndarray, after: int, before: int | None) -> list[int]:
    """The rows strictly between ``after`` and ``before`` (None: the end)."""
    end = len(rows) if before is None else int(np.searchsorted(rows, before, side="left"))
    return rows[int(np.searchsorted(rows, after, side="right")) : end].tolist()


def _conn(row: dict[str, Any]) -> int:
    return int(row.get("conn", 0))


def _transfers(ctx: CheckContext) -> list[dict[str, Any]]:
    return ctx.requests("main", where=lambda r: r.get("request") == "SET_DEVICE_STATE_FD")


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
    rings = ctx.derived(Rings.of)
    for row in ctx.where(_is_transfer):
        started = rings.started(_conn(row), row["row"])
        if started:
            listed = ", ".join(str(v) for v in sorted(started))
            yield Hit(
                f"SET_DEVICE_STATE_FD while ring(s) {listed} are started (no GET_VRING_BASE stopped them)",
                (row["row"], *sorted(started.values())),
            )


def _is_transfer(row: dict[str, Any]) -> bool:
    return is_message(row) and row.get("request") == "SET_DEVICE_STATE_FD" and not row.get("is_reply")


@rule(
    "state.restarted",
    Severity.ERROR,
    "No ring starts between SET_DEVICE_STATE_FD and the CHECK_DEVICE_STATE reply",
    "Migrating back-end state",
    "S2",
)
def restarted(ctx: CheckContext) -> Iterator[Hit]:
    starts = ctx.row_numbers_by(
        lambda r: r.get("request") in STARTS and not r.get("is_reply"), _conn, kind="message", channel="main"
    )
    hits = []
    for transfer, end in _transfer_windows(ctx):
        for number in _between(starts.get(_conn(transfer), NO_ROWS), transfer["row"], end):
            row = ctx.by_row[number]
            hits.append(
                Hit(
                    f"{row.get('request')} ring {row.get('vring')} during the device-state transfer (before "
                    "CHECK_DEVICE_STATE was answered)",
                    (transfer["row"], row["row"]),
                )
            )
    yield from sorted(hits, key=lambda hit: hit.rows[1])


def _transfer_windows(ctx: CheckContext) -> list[tuple[dict[str, Any], int | None]]:
    """Each SET_DEVICE_STATE_FD request with the row that ended its transfer (None: never ended): the next
    request, an error reply, the CHECK_DEVICE_STATE reply, an aborted stream or the end of the connection."""
    windows: list[tuple[dict[str, Any], int | None]] = []
    running: dict[int, dict[str, Any]] = {}

    def end(row: dict[str, Any]) -> None:
        transfer = running.pop(_conn(row), None)
        if transfer is not None:
            windows.append((transfer, row["row"]))

    for row in ctx.where(
        lambda r: (
            is_event(r, "state_close", *END_EVENTS)
            or (
                is_message(r)
                and r.get("channel") == "main"
                and r.get("request") in ("SET_DEVICE_STATE_FD", "CHECK_DEVICE_STATE")
            )
        )
    ):
        if is_event(row):
            if is_event(row, *END_EVENTS) or attrs_of(row).get("reason", "eof") != "eof":
                end(row)
        elif row.get("request") == "SET_DEVICE_STATE_FD" and not row.get("is_reply"):
            end(row)
            running[_conn(row)] = row
        elif row.get("is_reply") and (row.get("request") == "CHECK_DEVICE_STATE" or row.get("state_error")):
            end(row)
    windows.extend((transfer, None) for transfer in running.values())
    return windows


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
    for row in ctx.where(_follows_stream):
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


def _follows_stream(row: dict[str, Any]) -> bool:
    """The rows ``_streams`` looks at: transfer requests and checks, stream events and chunks."""
    if is_message(row):
        return (
            row.get("channel") == "main"
            and not row.get("is_reply")
            and row.get("request") in ("SET_DEVICE_STATE_FD", "CHECK_DEVICE_STATE")
        )
    return is_event(row, "message_held", "state_open", "state_close") or is_chunk(row)


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
    for request in ctx.requests("main", where=lambda r: r.get("request") == "CHECK_DEVICE_STATE"):
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
    requests = ctx.row_numbers_by(every, _conn, kind="request", channel="backend")
    hits = []
    for conn, stop, kick in ctx.derived(Rings.of).suspensions():
        since = ctx.by_row[stop]
        for number in _between(requests.get(conn, NO_ROWS), stop, kick):
            row = ctx.by_row[number]
            if int(row["ts_ns"]) - int(since["ts_ns"]) > SUSPEND_GRACE_NS:
                later = human_duration(int(row["ts_ns"]) - int(since["ts_ns"]))
                hits.append(
                    Hit(
                        f"back-end channel {row['request']} while the device is suspended (all rings stopped "
                        f"{later} before)",
                        (row["row"], since["row"]),
                    )
                )
    yield from sorted(hits, key=lambda hit: hit.rows[0])
