"""Sessions: what each connection set up, and how it changed over time.

One ``Session`` per connection of a capture: every feature negotiation round, the memory table,
the state of each ring (size, base, addresses, enabled, started or stopped, which notification
FDs it has), the back-end channel, the device status, dirty-log set-up and device-state
transfers, plus a chronological list of every change with its timestamp and row. Reconnects show
as successive sessions of one socket (the proxy numbers connections and records accept, connect
and disconnect events).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dissectors import spec
from dissectors.spec import F_LOG_ALL, F_PROTOCOL_FEATURES
from vutrace.analysis.frame import PROXY_CONN, Capture, attrs_of, fd_list, is_chunk, is_event, is_message
from vutrace.analysis.negotiation import Negotiated, Round, Tracker, protocol_names, virtio_names


@dataclass
class Change:
    """One change of a session's state."""

    ts_ns: int
    row: int
    area: str
    """connection, features, protocol, memory, ring <n>, backend channel, status, log, state."""
    text: str


@dataclass
class Region:
    guest_addr: int
    size: int
    user_addr: int
    mmap_offset: int
    fd: str = ""
    """What the FD of the region is (memfd name, size), when the capture describes it."""

    def describe(self) -> str:
        end = self.guest_addr + self.size
        text = f"gpa {self.guest_addr:#x}-{end:#x} ({human_bytes(self.size)}) uaddr {self.user_addr:#x}"
        text += f" offset {self.mmap_offset:#x}"
        return text + (f" [{self.fd}]" if self.fd else "")

    def key(self) -> tuple[int, int, int]:
        return self.guest_addr, self.size, self.user_addr


@dataclass
class Ring:
    """What the front-end told the back-end about one virtqueue."""

    index: int
    size: int | None = None
    base: int | None = None
    """The last SET_VRING_BASE value."""
    stopped_base: int | None = None
    """The last GET_VRING_BASE reply value."""
    desc_addr: int | None = None
    used_addr: int | None = None
    avail_addr: int | None = None
    log_addr: int | None = None
    logging: bool = False
    """VHOST_VRING_F_LOG set in the last SET_VRING_ADDR."""
    enabled: bool | None = None
    """None until SET_VRING_ENABLE (rings without PROTOCOL_FEATURES are enabled at once)."""
    started: bool = False
    kick: str | None = None
    """"fd", "no fd" (polling) or None when never set; likewise call and err."""
    call: str | None = None
    err: str | None = None

    def state(self) -> str:
        enabled = {None: "enable unknown", True: "enabled", False: "disabled"}[self.enabled]
        return ("started" if self.started else "stopped") + ", " + enabled


@dataclass
class Session:
    """One connection of a capture."""

    capture: str
    conn: int
    start_ns: int
    end_ns: int
    messages: int = 0
    backend_messages: int = 0
    state_bytes: int = 0
    socket: str = ""
    ended_by: str = ""
    """The event that closed the connection (disconnect, error, shutdown) or "" (capture ends)."""
    rounds: list[Round] = field(default_factory=list)
    negotiated: Negotiated = field(default_factory=Negotiated)
    regions: list[Region] = field(default_factory=list)
    rings: dict[int, Ring] = field(default_factory=dict)
    backend_channel: str = "none"
    status: int | None = None
    queue_num: int | None = None
    max_mem_slots: int | None = None
    log: str = ""
    changes: list[Change] = field(default_factory=list)

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    def to_dict(self) -> dict[str, Any]:
        n = self.negotiated
        return {
            "capture": self.capture,
            "conn": self.conn,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "socket": self.socket,
            "ended_by": self.ended_by,
            "messages": self.messages,
            "backend_messages": self.backend_messages,
            "state_bytes": self.state_bytes,
            "negotiated": {
                "offered_features": n.offered_features,
                "acked_features": n.acked_features,
                "acked_feature_names": virtio_names(n.acked_features or 0),
                "offered_protocol_features": n.offered_protocol,
                "acked_protocol_features": n.acked_protocol,
                "protocol_feature_names": protocol_names(n.protocol_features),
            },
            "rounds": [
                {
                    "ts_ns": r.ts_ns,
                    "row": r.row,
                    "message": r.message,
                    "kind": r.kind,
                    "value": r.value,
                    "names": r.names(),
                    "added": r.delta()[0],
                    "removed": r.delta()[1],
                }
                for r in self.rounds
            ],
            "regions": [vars(r) for r in self.regions],
            "rings": {str(i): vars(r) for i, r in sorted(self.rings.items())},
            "backend_channel": self.backend_channel,
            "status": self.status,
            "queue_num": self.queue_num,
            "max_mem_slots": self.max_mem_slots,
            "log": self.log,
            "changes": [vars(c) for c in self.changes],
        }


def human_bytes(n: int | float) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.4g} {unit}"
        value /= 1024
    return f"{n} B"


def fd_text(row: dict[str, Any], position: int = 0) -> str:
    """The capture's description of the FD at ``position`` of a message ("" when it has none)."""
    fds = fd_list(row)
    return fds[position] if position < len(fds) else ""


def human_duration(ns: int | float) -> str:
    """1500 -> '1.5 µs', 2_500_000_000 -> '2.5 s'."""
    value = float(ns)
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.4g} {unit}"
    return f"{int(value)} ns"


def _nofd_text(row: dict[str, Any]) -> str:
    if row.get("nofd"):
        return "no fd"
    return "fd"


class _Builder:
    """Walks one connection's rows and records every change."""

    def __init__(self, capture: str, conn: int, first_ts: int) -> None:
        self.session = Session(capture, conn, first_ts, first_ts)
        self.tracker = Tracker()

    def change(self, row: dict[str, Any], area: str, text: str) -> None:
        self.session.changes.append(Change(int(row["ts_ns"]), int(row["row"]), area, text))

    def ring(self, row: dict[str, Any]) -> Ring:
        index = int(row.get("vring", 0))
        ring = self.session.rings.get(index)
        if ring is None:
            ring = self.session.rings[index] = Ring(index)
        return ring

    def feed(self, row: dict[str, Any]) -> None:
        s = self.session
        s.end_ns = max(s.end_ns, int(row["ts_ns"]))
        if is_event(row):
            self.event(row)
            return
        if is_chunk(row):
            s.state_bytes += int(row.get("nbytes") or 0)
            return
        if not is_message(row):
            return
        if row.get("channel") == "backend":
            s.backend_messages += 1
            if not row.get("is_reply"):
                self.change(row, "backend channel", f"back-end request {row.get('request')}")
            return
        s.messages += 1
        found = self.tracker.update(row)
        s.negotiated = self.tracker.state
        if found is not None:
            s.rounds.append(found)
            self.round(row, found)
            return
        handler = getattr(self, "on_" + str(row.get("request", "")).lower(), None)
        if handler is not None:
            handler(row, bool(row.get("is_reply")))

    def event(self, row: dict[str, Any]) -> None:
        name = str(row.get("request", ""))
        s = self.session
        attrs = attrs_of(row)
        if name in ("accept", "connect") and not s.socket:
            s.socket = str(attrs.get("path") or attrs.get("socket") or attrs.get("listen") or "")
        if name in ("disconnect", "error", "shutdown"):
            s.ended_by = name
        if name == "backend_channel_open":
            s.backend_channel = "open"
        elif name == "backend_channel_close":
            s.backend_channel = "closed"
        detail = " ".join(f"{k}={v}" for k, v in attrs.items() if k not in ("sha256",))
        area = "state" if name.startswith("state_") else "connection"
        self.change(row, area, f"{name} {detail}".strip())

    def round(self, row: dict[str, Any], r: Round) -> None:
        added, removed = r.delta()
        text = f"{r.message} {r.kind} {r.value:#x}"
        if r.previous is None:
            text += " " + " ".join(r.names())
        else:
            text += "".join(f" +{n}" for n in added) + "".join(f" -{n}" for n in removed)
            if not added and not removed:
                text += " (unchanged)"
        if r.message == "SET_FEATURES" and (F_LOG_ALL in _bits(r.value) or F_LOG_ALL in _bits(r.previous or 0)):
            logging = bool(r.value >> F_LOG_ALL & 1)
            if r.previous is None or logging != bool(r.previous >> F_LOG_ALL & 1):
                text += " [dirty logging " + ("on" if logging else "off") + "]"
        if r.message == "SET_FEATURES" and not r.value >> F_PROTOCOL_FEATURES & 1:
            text += " [no PROTOCOL_FEATURES: rings enabled at once]"
        self.change(row, "protocol" if r.protocol else "features", text)

    # -- memory ---------------------------------------------------------------------------------

    def on_set_mem_table(self, row: dict[str, Any], reply: bool) -> None:
        if reply:
            return
        regions = row.get("regions") or ()
        self.session.regions = [Region(*r, fd=fd_text(row, i)) for i, r in enumerate(regions)]
        self.change(row, "memory", f"SET_MEM_TABLE {len(regions)} region(s)")

    def on_add_mem_reg(self, row: dict[str, Any], reply: bool) -> None:
        if reply or "guest_addr" not in row:
            return
        region = Region(row["guest_addr"], row["region_size"], row["user_addr"], row["mmap_offset"], fd_text(row))
        self.session.regions.append(region)
        self.change(row, "memory", "ADD_MEM_REG " + region.describe())

    def on_rem_mem_reg(self, row: dict[str, Any], reply: bool) -> None:
        if reply or "guest_addr" not in row:
            return
        key = (row["guest_addr"], row["region_size"], row["user_addr"])
        before = len(self.session.regions)
        self.session.regions = [r for r in self.session.regions if r.key() != key]
        found = "" if len(self.session.regions) < before else " (no such region)"
        self.change(row, "memory", f"REM_MEM_REG gpa {key[0]:#x} size {human_bytes(key[1])}{found}")

    # -- rings ----------------------------------------------------------------------------------

    def on_set_vring_num(self, row: dict[str, Any], reply: bool) -> None:
        if not reply:
            self.ring(row).size = row.get("num")
            self.change(row, f"ring {row.get('vring')}", f"size {row.get('num')}")

    def on_set_vring_base(self, row: dict[str, Any], reply: bool) -> None:
        if not reply:
            self.ring(row).base = row.get("num")
            self.change(row, f"ring {row.get('vring')}", f"base {row.get('num')}")

    def on_get_vring_base(self, row: dict[str, Any], reply: bool) -> None:
        ring = self.ring(row)
        if reply:
            ring.stopped_base = row.get("num")
            self.change(row, f"ring {ring.index}", f"stopped at base {row.get('num')}")
        else:
            ring.started = False
            self.change(row, f"ring {ring.index}", f"stop ({row.get('request')})")

    on_get_vring_base_skip_drain = on_get_vring_base

    def on_set_vring_addr(self, row: dict[str, Any], reply: bool) -> None:
        if reply:
            return
        ring = self.ring(row)
        ring.desc_addr, ring.used_addr = row.get("desc_addr"), row.get("used_addr")
        ring.avail_addr, ring.log_addr = row.get("avail_addr"), row.get("log_addr")
        logging = bool(int(row.get("addr_flags") or 0) & spec.VHOST_VRING_F_LOG)
        toggled = " [used-ring logging " + ("on" if logging else "off") + "]" if logging != ring.logging else ""
        ring.logging = logging
        self.change(
            row,
            f"ring {ring.index}",
            f"addresses desc {ring.desc_addr:#x} avail {ring.avail_addr:#x} used {ring.used_addr:#x}{toggled}",
        )

    def _notifier(self, row: dict[str, Any], attribute: str, label: str, extra: str = "") -> Ring:
        ring = self.ring(row)
        setattr(ring, attribute, _nofd_text(row))
        self.change(row, f"ring {ring.index}", f"{label} {_nofd_text(row)}{extra}")
        return ring

    def on_set_vring_kick(self, row: dict[str, Any], reply: bool) -> None:
        if not reply:
            self._notifier(row, "kick", "kick", ", started").started = True

    def on_set_vring_call(self, row: dict[str, Any], reply: bool) -> None:
        if not reply:
            self._notifier(row, "call", "call")

    def on_set_vring_err(self, row: dict[str, Any], reply: bool) -> None:
        if not reply:
            self._notifier(row, "err", "err")

    def on_vring_kick(self, row: dict[str, Any], reply: bool) -> None:
        if not reply and not self.ring(row).started:
            self.ring(row).started = True
            self.change(row, f"ring {row.get('vring')}", "started (in-band kick)")

    def on_set_vring_enable(self, row: dict[str, Any], reply: bool) -> None:
        if not reply:
            ring = self.ring(row)
            ring.enabled = bool(row.get("num"))
            self.change(row, f"ring {ring.index}", "enabled" if ring.enabled else "disabled")

    def _reset(self, row: dict[str, Any], reply: bool) -> None:
        if reply:
            return
        for ring in self.session.rings.values():
            ring.started = False
            ring.enabled = None
        self.change(row, "device", f"{row.get('request')}: rings stopped and disabled")

    on_reset_device = _reset
    on_reset_owner = _reset

    # -- the rest -------------------------------------------------------------------------------

    def on_set_owner(self, row: dict[str, Any], reply: bool) -> None:
        if not reply:
            self.change(row, "device", "SET_OWNER (session start)")

    def on_set_backend_req_fd(self, row: dict[str, Any], reply: bool) -> None:
        if not reply:
            self.session.backend_channel = "set up"
            self.change(row, "backend channel", f"SET_BACKEND_REQ_FD {fd_text(row)}".strip())

    def on_set_status(self, row: dict[str, Any], reply: bool) -> None:
        if not reply:
            self.session.status = row.get("status")
            names = spec.flag_names(int(row.get("status") or 0), spec.DEVICE_STATUS)
            self.change(row, "status", f"SET_STATUS {row.get('status'):#x} {' '.join(names) or 'reset'}")

    def on_get_queue_num(self, row: dict[str, Any], reply: bool) -> None:
        if reply:
            self.session.queue_num = row.get("queue_num")
            self.change(row, "device", f"queues: {row.get('queue_num')}")

    def on_get_max_mem_slots(self, row: dict[str, Any], reply: bool) -> None:
        if reply:
            self.session.max_mem_slots = row.get("max_mem_slots")
            self.change(row, "memory", f"memory slots: {row.get('max_mem_slots')}")

    def on_set_log_base(self, row: dict[str, Any], reply: bool) -> None:
        if not reply and "log_size" in row:
            self.session.log = f"{human_bytes(int(row['log_size']))} at offset {row['log_offset']:#x}"
            fd = fd_text(row) or ("fd" if row.get("nfds") else "no fd")
            self.change(row, "log", f"SET_LOG_BASE {self.session.log} ({fd})")

    def on_set_log_fd(self, row: dict[str, Any], reply: bool) -> None:
        if not reply:
            self.change(row, "log", "SET_LOG_FD")

    def on_set_inflight_fd(self, row: dict[str, Any], reply: bool) -> None:
        if not reply:
            self.change(
                row,
                "device",
                f"SET_INFLIGHT_FD {human_bytes(int(row.get('mmap_size') or 0))} "
                f"{row.get('num_queues')} queues of {row.get('queue_size')}",
            )

    def on_set_device_state_fd(self, row: dict[str, Any], reply: bool) -> None:
        if reply:
            error = row.get("state_error") or 0
            channel = "front-end's pipe" if row.get("nofd") else "back-end's FD"
            text = f"transfer refused (error {error})" if error else f"transfer accepted, using the {channel}"
        else:
            direction = spec.TRANSFER_DIRECTION.get(int(row.get("direction", -1)), f"direction {row.get('direction')}")
            phase = spec.MIGRATION_PHASE.get(int(row.get("phase", -1)), f"phase {row.get('phase')}")
            text = f"SET_DEVICE_STATE_FD {direction} {phase}"
        self.change(row, "state", text)

    def on_check_device_state(self, row: dict[str, Any], reply: bool) -> None:
        if reply:
            result = row.get("result")
            self.change(row, "state", "CHECK_DEVICE_STATE: " + ("success" if result == 0 else f"failed ({result})"))
        else:
            self.change(row, "state", "CHECK_DEVICE_STATE")


def _bits(value: int) -> set[int]:
    return {bit for bit in range(64) if value >> bit & 1}


def sessions(capture: Capture) -> list[Session]:
    """The sessions of a capture, one per connection, in order of first appearance."""
    builders: dict[int, _Builder] = {}
    for row in capture.records:
        conn = row.get("conn")
        if conn is None or conn == PROXY_CONN:
            continue
        builder = builders.get(conn)
        if builder is None:
            builder = builders[conn] = _Builder(capture.label, int(conn), int(row["ts_ns"]))
        builder.feed(row)
    return [b.session for b in builders.values()]
