"""The migration timeline: phases of each connection, roles, and the spans that make up downtime.

Phases follow QEMU's message order (handshake, device start, dirty logging, stop, device-state
save or load, check, restart or teardown):

* ``negotiation``: connection start to the end of the handshake (features, protocol features,
  SET_OWNER, SET_BACKEND_REQ_FD, notifier FDs), i.e. up to the first other message;
* ``setup``: memory table and rings, until every configured ring is started (and enabled when
  PROTOCOL_FEATURES is in force); called ``resume`` when it follows a suspension or a state load;
* ``running``: rings started;
* ``dirty logging``: SET_FEATURES with LOG_ALL until it is cleared or the connection ends
  (overlaps the others);
* ``suspension``: first SET_VRING_ENABLE 0 / GET_VRING_BASE until every started ring is stopped;
* ``suspended``: all rings stopped, until a restart or the end;
* ``state transfer``: SET_DEVICE_STATE_FD until the end of the stream (state_close event);
* ``check``: CHECK_DEVICE_STATE until its reply;
* ``teardown``: the connection's end (disconnect, error or shutdown event).

The role of a capture (source or destination) comes from the direction of its
SET_DEVICE_STATE_FD: SAVE on the source, LOAD on the destination.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from dissectors import spec
from dissectors.spec import F_LOG_ALL, F_PROTOCOL_FEATURES
from vutrace.analysis.frame import PROXY_CONN, Capture, is_event, is_message, is_request

HANDSHAKE = frozenset(
    {
        "GET_FEATURES",
        "GET_PROTOCOL_FEATURES",
        "SET_PROTOCOL_FEATURES",
        "GET_QUEUE_NUM",
        "GET_MAX_MEM_SLOTS",
        "SET_BACKEND_REQ_FD",
        "SET_OWNER",
        "SET_VRING_CALL",
        "SET_VRING_ERR",
        "RESET_DEVICE",
        "GET_CONFIG",
        "GET_STATUS",
        "GET_SHMEM_CONFIG",
    }
)
"""Messages of the connection handshake (QEMU's vhost_dev_init and device realize)."""
SETUP = frozenset(
    {"SET_FEATURES", "SET_MEM_TABLE", "ADD_MEM_REG", "SET_VRING_NUM", "SET_VRING_BASE", "SET_VRING_ADDR"}
    | {"SET_VRING_KICK", "SET_LOG_BASE", "SET_INFLIGHT_FD", "GET_INFLIGHT_FD"}
)
"""Messages that set the device up for running (QEMU's vhost_dev_start)."""
STOPS = frozenset({"GET_VRING_BASE", "GET_VRING_BASE_SKIP_DRAIN"})
END_EVENTS = ("disconnect", "error", "shutdown")
PHASE_ORDER = (
    "negotiation",
    "setup",
    "running",
    "dirty logging",
    "suspension",
    "suspended",
    "state transfer",
    "check",
    "resume",
    "teardown",
)


@dataclass
class Phase:
    name: str
    side: str
    conn: int
    start_ns: int
    end_ns: int
    first_row: int
    last_row: int
    detail: str = ""

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "duration_ns": self.duration_ns}


@dataclass
class Transfer:
    """One SET_DEVICE_STATE_FD exchange and its stream, as the timeline needs it."""

    conn: int
    direction: int | None
    request_row: int
    request_ns: int
    reply_row: int | None = None
    reply_ns: int | None = None
    state_error: int | None = None
    nofd: bool | None = None
    close_row: int | None = None
    close_ns: int | None = None
    check_row: int | None = None
    check_ns: int | None = None
    check_reply_row: int | None = None
    check_reply_ns: int | None = None
    check_result: int | None = None

    @property
    def direction_name(self) -> str:
        if self.direction is None:
            return "?"
        return spec.TRANSFER_DIRECTION.get(self.direction, f"direction {self.direction}")

    @property
    def end_ns(self) -> int:
        """When the transfer ended as far as the capture tells: check reply, stream end or 42 reply."""
        for value in (self.check_reply_ns, self.close_ns, self.reply_ns):
            if value is not None:
                return value
        return self.request_ns


@dataclass
class SideTimeline:
    """The timeline of one capture."""

    label: str
    role: str | None
    """"source", "destination" or None when the capture has no device-state transfer."""
    first_ns: int
    last_ns: int
    phases: list[Phase] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    stopped_bases: dict[int, tuple[int, int]] = field(default_factory=dict)
    """Source: vring -> (GET_VRING_BASE reply value, row), the last stop before the SAVE."""
    set_bases: dict[int, tuple[int, int]] = field(default_factory=dict)
    """Destination: vring -> (SET_VRING_BASE value, row), the first after the LOAD."""

    def phase(self, name: str) -> list[Phase]:
        return [p for p in self.phases if p.name == name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "role": self.role,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "phases": [p.to_dict() for p in self.phases],
            "transfers": [vars(t) | {"direction_name": t.direction_name} for t in self.transfers],
            "stopped_bases": {str(k): v[0] for k, v in self.stopped_bases.items()},
            "set_bases": {str(k): v[0] for k, v in self.set_bases.items()},
        }


@dataclass
class RingBase:
    vring: int
    source: int | None
    destination: int | None
    source_row: int | None
    destination_row: int | None

    @property
    def match(self) -> bool:
        return self.source is not None and self.source == self.destination


@dataclass
class Migration:
    """Source and destination timelines side by side, with the downtime spans."""

    source: SideTimeline | None
    destination: SideTimeline | None
    suspend_ns: int | None = None
    """Source: start of the suspension that preceded the SAVE."""
    running_ns: int | None = None
    """Destination: rings running again after the LOAD."""
    save_span: tuple[int, int] | None = None
    load_span: tuple[int, int] | None = None
    ring_bases: list[RingBase] = field(default_factory=list)

    @property
    def downtime_ns(self) -> int | None:
        if self.suspend_ns is None or self.running_ns is None:
            return None
        return self.running_ns - self.suspend_ns

    @property
    def transfer_ns(self) -> int | None:
        """Time inside the downtime window spent in the device-state save and load (union of both spans)."""
        if self.downtime_ns is None or self.suspend_ns is None or self.running_ns is None:
            return None
        spans = sorted(
            (max(a, self.suspend_ns), min(b, self.running_ns))
            for a, b in (self.save_span, self.load_span)
            if a is not None and b is not None
        )
        total, end = 0, None
        for a, b in spans:
            if b <= a:
                continue
            if end is None or a > end:
                total += b - a
                end = b
            elif b > end:
                total += b - end
                end = b
        return total

    @property
    def transfer_share(self) -> float | None:
        if not self.downtime_ns or self.transfer_ns is None or self.downtime_ns <= 0:
            return None
        return self.transfer_ns / self.downtime_ns

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.label if self.source else None,
            "destination": self.destination.label if self.destination else None,
            "suspend_ns": self.suspend_ns,
            "running_ns": self.running_ns,
            "downtime_ns": self.downtime_ns,
            "save_span": self.save_span,
            "load_span": self.load_span,
            "transfer_ns": self.transfer_ns,
            "transfer_share": self.transfer_share,
            "ring_bases": [vars(r) | {"match": r.match} for r in self.ring_bases],
        }


class _ConnPhases:
    """Walks one connection and cuts it into phases."""

    def __init__(self, side: str, conn: int, replies: dict[int, dict[str, Any]]) -> None:
        self.side = side
        self.conn = conn
        self.replies = replies
        self.phases: list[Phase] = []
        self.device: Phase | None = None
        """The open phase of the device lane."""
        self.overlapping: dict[str, Phase] = {}
        self.started: set[int] = set()
        self.enabled: set[int] = set()
        self.configured: set[int] = set()
        self.protocol_features = False
        self.handshake_done = False
        self.last_handshake: dict[str, Any] | None = None
        self.restarting = False
        """Set after a suspension or a state load: the next set-up is a resume."""
        self.last_row: dict[str, Any] | None = None
        self.transfers: list[Transfer] = []

    # -- phase bookkeeping ----------------------------------------------------------------------

    def _phase(self, name: str, row: dict[str, Any], ts: int | None, detail: str = "") -> Phase:
        start = int(row["ts_ns"]) if ts is None else ts
        return Phase(name, self.side, self.conn, start, start, row["row"], row["row"], detail)

    def _close(self, phase: Phase, row: dict[str, Any], ts: int | None) -> None:
        phase.end_ns = max(int(row["ts_ns"]) if ts is None else ts, phase.start_ns)
        phase.last_row = row["row"]
        self.phases.append(phase)

    def switch(self, name: str | None, row: dict[str, Any], ts: int | None = None) -> None:
        """End the device lane's phase at ``row`` and start ``name`` there (None: nothing until the next)."""
        if self.device is not None:
            self._close(self.device, row, ts)
        self.device = self._phase(name, row, ts) if name else None

    def begin(self, name: str, row: dict[str, Any], detail: str = "") -> None:
        if name not in self.overlapping:
            self.overlapping[name] = self._phase(name, row, None, detail)

    def end(self, name: str, row: dict[str, Any]) -> None:
        phase = self.overlapping.pop(name, None)
        if phase is not None:
            self._close(phase, row, None)

    def in_device(self, *names: str) -> bool:
        return self.device is not None and self.device.name in names

    def answered(self, row: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """The reply of a request (or the request itself when it has none) and its time."""
        reply = self.replies.get(row["row"], row)
        return reply, int(reply["ts_ns"])

    def running(self) -> bool:
        """Every configured ring is started (and enabled, when PROTOCOL_FEATURES is in force)."""
        if not self.started or not self.configured <= self.started:
            return False
        return not self.protocol_features or self.started <= self.enabled

    # -- walking --------------------------------------------------------------------------------

    def feed(self, row: dict[str, Any]) -> None:
        if self.last_row is None and self.device is None:
            self.switch("negotiation", row)
        if is_event(row):
            self.on_event(row)
            return
        self.last_row = row
        if is_message(row) and row.get("channel") == "main":
            if row.get("is_reply"):
                self.on_reply(row)
            else:
                self.on_request(row)
            if self.in_device("setup", "resume") and self.running():
                reply, ts = self.answered(row)
                self.switch("running", reply, ts)

    def on_event(self, row: dict[str, Any]) -> None:
        name = row.get("request")
        if name == "state_close":
            for transfer in self.transfers:
                if transfer.close_row is None:
                    transfer.close_row, transfer.close_ns = row["row"], int(row["ts_ns"])
            self.end("state transfer", row)
        elif name in END_EVENTS:
            self.finish(row)
            self.phases.append(self._phase("teardown", row, None, str(name)))

    def on_request(self, row: dict[str, Any]) -> None:
        name = str(row.get("request"))
        if not self.handshake_done and name not in HANDSHAKE:
            self.handshake_done = True
            if self.in_device("negotiation"):
                reply, ts = self.answered(self.last_handshake or row)
                self.switch(None, reply, ts)
        if name in HANDSHAKE:
            self.last_handshake = row
        vring = int(row["vring"]) if row.get("vring") is not None else None
        if name == "SET_FEATURES":
            features = int(row.get("features") or 0)
            self.protocol_features = bool(features >> F_PROTOCOL_FEATURES & 1)
            if features >> F_LOG_ALL & 1:
                self.begin("dirty logging", row)
            else:
                self.end("dirty logging", row)
        starts_setup = name in SETUP and name != "SET_LOG_BASE" and not (name == "SET_FEATURES" and self.started)
        if starts_setup and not self.in_device("setup", "resume", "running"):
            self.switch("resume" if self.restarting else "setup", row)
        if name in ("SET_VRING_NUM", "SET_VRING_ADDR") and vring is not None:
            self.configured.add(vring)
        elif name in ("SET_VRING_KICK", "VRING_KICK") and vring is not None:
            self.started.add(vring)
            self.configured.add(vring)
        elif name == "SET_VRING_ENABLE" and vring is not None:
            if row.get("num"):
                self.enabled.add(vring)
            else:
                self.enabled.discard(vring)
                self.stop_begins(row)
        elif name in STOPS:
            self.stop_begins(row)
        elif name in ("RESET_DEVICE", "RESET_OWNER"):
            self.started.clear()
            self.enabled.clear()
        elif name == "SET_DEVICE_STATE_FD":
            direction = row.get("direction")
            self.transfers.append(Transfer(self.conn, direction, row["row"], int(row["ts_ns"])))
            label = spec.TRANSFER_DIRECTION.get(int(direction), str(direction)) if direction is not None else "?"
            self.begin("state transfer", row, label)
            if direction == 1:
                self.restarting = True
        elif name == "CHECK_DEVICE_STATE":
            self.begin("check", row)
            for transfer in self.transfers:
                if transfer.check_row is None:
                    transfer.check_row, transfer.check_ns = row["row"], int(row["ts_ns"])

    def stop_begins(self, row: dict[str, Any]) -> None:
        if not self.in_device("suspension") and (self.started or row.get("request") in STOPS):
            self.switch("suspension", row)

    def on_reply(self, row: dict[str, Any]) -> None:
        name = row.get("request")
        if name in STOPS and row.get("vring") is not None:
            self.started.discard(int(row["vring"]))
            if not self.started and self.in_device("suspension"):
                self.switch("suspended", row)
                self.restarting = True
        elif name == "SET_DEVICE_STATE_FD":
            for transfer in self.transfers:
                if transfer.reply_row is None:
                    transfer.reply_row, transfer.reply_ns = row["row"], int(row["ts_ns"])
                    transfer.state_error, transfer.nofd = row.get("state_error"), row.get("nofd")
            if row.get("state_error"):
                self.end("state transfer", row)
        elif name == "CHECK_DEVICE_STATE":
            for transfer in self.transfers:
                if transfer.check_row is not None and transfer.check_reply_row is None:
                    transfer.check_reply_row, transfer.check_reply_ns = row["row"], int(row["ts_ns"])
                    transfer.check_result = row.get("result")
            phase = self.overlapping.get("check")
            if phase is not None:
                result = row.get("result")
                phase.detail = "success" if result == 0 else f"failed ({result})"
            self.end("check", row)

    def finish(self, row: dict[str, Any] | None = None) -> None:
        """Close the open phases at ``row`` (or at the last row seen)."""
        end = row or self.last_row
        if end is None:
            return
        self.switch(None, end)
        for name in list(self.overlapping):
            self.end(name, end)


def side_timeline(capture: Capture) -> SideTimeline:
    """The phases of every connection of a capture, its transfers, role and ring bases."""
    records = capture.records
    first = int(min(map(itemgetter("ts_ns"), records), default=0))
    last = int(max(map(itemgetter("ts_ns"), records), default=0))
    replies = capture.replies()
    side = SideTimeline(capture.label, None, first, last)
    walkers: dict[int, _ConnPhases] = {}
    for row in records:
        conn = row.get("conn")
        if conn is None or conn == PROXY_CONN:
            continue
        walker = walkers.get(int(conn))
        if walker is None:
            walker = walkers[int(conn)] = _ConnPhases(capture.label, int(conn), replies)
        walker.feed(row)
    for walker in walkers.values():
        walker.finish()
        side.phases.extend(walker.phases)
        side.transfers.extend(walker.transfers)
    side.phases.sort(key=lambda p: (p.start_ns, PHASE_ORDER.index(p.name)))
    directions = {t.direction for t in side.transfers}
    if 0 in directions and 1 not in directions:
        side.role = "source"
    elif 1 in directions and 0 not in directions:
        side.role = "destination"
    _ring_bases(capture, side)
    return side


def _ring_bases(capture: Capture, side: SideTimeline) -> None:
    """Source: the last GET_VRING_BASE reply per ring before the SAVE; destination: the first SET_VRING_BASE
    per ring after the LOAD."""
    if not side.transfers:
        return
    transfer = side.transfers[0]
    for row in capture.shapes.where(
        lambda r: r.get("conn") == transfer.conn and is_message(r) and r.get("channel") == "main"
    ):
        name = row.get("request")
        vring = row.get("vring")
        if vring is None or row.get("num") is None:
            continue
        if side.role == "source" and name in STOPS and row.get("is_reply") and row["row"] < transfer.request_row:
            side.stopped_bases[int(vring)] = (int(row["num"]), row["row"])
        elif (
            side.role == "destination"
            and name == "SET_VRING_BASE"
            and is_request(row)
            and row["row"] > transfer.request_row
            and int(vring) not in side.set_bases
        ):
            side.set_bases[int(vring)] = (int(row["num"]), row["row"])


def migration(first: SideTimeline, second: SideTimeline | None = None) -> Migration:
    """Pair a source and a destination timeline (in either order) and compute the downtime spans."""
    sides = [s for s in (first, second) if s is not None]
    source = next((s for s in sides if s.role == "source"), None)
    destination = next((s for s in sides if s.role == "destination"), None)
    result = Migration(source, destination)
    if source is not None:
        save = next((t for t in source.transfers if t.direction == 0), None)
        if save is not None:
            result.save_span = (save.request_ns, save.end_ns)
            before = [p for p in source.phases if p.name == "suspension" and p.start_ns <= save.request_ns]
            if before:
                result.suspend_ns = before[-1].start_ns
    if destination is not None:
        load = next((t for t in destination.transfers if t.direction == 1), None)
        if load is not None:
            result.load_span = (load.request_ns, load.end_ns)
            after = [p for p in destination.phases if p.name == "running" and p.start_ns >= load.request_ns]
            if after:
                result.running_ns = after[0].start_ns
    if source is not None and destination is not None:
        rings = sorted(set(source.stopped_bases) | set(destination.set_bases))
        for vring in rings:
            src = source.stopped_bases.get(vring)
            dst = destination.set_bases.get(vring)
            result.ring_bases.append(
                RingBase(
                    vring,
                    src[0] if src else None,
                    dst[0] if dst else None,
                    src[1] if src else None,
                    dst[1] if dst else None,
                )
            )
    return result
