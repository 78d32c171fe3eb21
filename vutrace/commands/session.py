"""``vutrace session``: per connection, what was negotiated and set up, and how it changed over time."""

from __future__ import annotations

import argparse

from vutrace.analysis import sessions as analysis
from vutrace.analysis.frame import record_number
from vutrace.analysis.inputs import (
    add_filter_argument,
    add_format_argument,
    clock,
    dump_json,
    matching_rows,
    offset,
    open_capture,
)
from vutrace.analysis.negotiation import protocol_names, virtio_names
from vutrace.analysis.sessions import Session, human_bytes, human_duration


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "session",
        help="negotiated features, memory table, rings and back-end channel per connection, with their history",
        description="Show each connection of a capture as a session: every feature negotiation round, the memory "
        "table, the state of every ring, the back-end channel, and a timestamped history of every change. "
        "Reconnects show as successive sessions of the same socket.",
    )
    parser.add_argument("file", help="capture file (pcapng)")
    add_filter_argument(parser, "list history entries of records")
    add_format_argument(parser)
    parser.add_argument("--brief", action="store_true", help="leave out the history of changes")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    capture = open_capture(args.file)
    selected = matching_rows(capture, args.filter)
    found = analysis.sessions(capture)
    if selected is not None:
        for session in found:
            session.changes = [c for c in session.changes if c.row in selected]
        found = [s for s in found if s.changes]
    if args.format == "json":
        print(dump_json({"capture": capture.label, "sessions": [s.to_dict() for s in found]}))
        return 0
    origin = min((s.start_ns for s in found), default=0)
    print(f"{capture.label}: {len(found)} session(s), capture starts {clock(origin)}" if found else capture.label)
    sockets: dict[str, list[Session]] = {}
    for session in found:
        sockets.setdefault(session.socket, []).append(session)
    for socket, group in sockets.items():
        if socket and len(group) > 1:
            conns = ", ".join(str(s.conn) for s in group)
            print(f"\nsocket {socket}: {len(group)} sessions (connections {conns}), reconnected each time")
    for session in found:
        print()
        print("\n".join(session_lines(session, origin, brief=args.brief)))
    return 0


def session_lines(s: Session, origin: int, *, brief: bool = False) -> list[str]:
    """The text view of one session."""
    end = f"ended by {s.ended_by}" if s.ended_by else "open at the end of the capture"
    lines = [
        f"Session: connection {s.conn}  {offset(s.start_ns, origin)} .. {offset(s.end_ns, origin)} "
        f"({human_duration(s.duration_ns)}), {end}" + (f", socket {s.socket}" if s.socket else ""),
        f"  messages: {s.messages} main, {s.backend_messages} back-end channel; "
        f"device state: {human_bytes(s.state_bytes)}",
    ]
    n = s.negotiated
    lines.append("  negotiation rounds:")
    if not s.rounds:
        lines.append("    (none)")
    for r in s.rounds:
        added, removed = r.delta()
        if r.previous is None:
            names = " ".join(r.names()) or "(no bits)"
        elif added or removed:
            names = " ".join([*(f"+{x}" for x in added), *(f"-{x}" for x in removed)])
        else:
            names = "(unchanged)"
        lines.append(
            f"    {offset(r.ts_ns, origin)}  record {record_number(r.row):<6} {r.message:<22} {r.kind:<5} "
            f"{r.value:#x}  {names}"
        )
    acked = n.acked_features
    lines.append(
        "  negotiated virtio features: "
        + (f"{acked:#x} {' '.join(virtio_names(acked))}" if acked is not None else "none (no SET_FEATURES)")
    )
    lines.append(
        "  negotiated protocol features: "
        + (
            f"{n.protocol_features:#x} {' '.join(protocol_names(n.protocol_features))}"
            if n.acked_protocol is not None
            else "none (no SET_PROTOCOL_FEATURES)"
        )
    )
    lines.append(f"  memory table: {len(s.regions)} region(s)")
    lines.extend(f"    {r.describe()}" for r in s.regions)
    lines.append(f"  rings: {len(s.rings)}")
    if s.rings:
        lines.append(
            f"    {'ring':>4} {'size':>5} {'base':>6} {'stopped':>7}  {'desc':>14} {'avail':>14} {'used':>14}  "
            f"{'state':<24} kick   call   err"
        )
    for ring in sorted(s.rings.values(), key=lambda r: r.index):
        lines.append(
            f"    {ring.index:>4} {_v(ring.size):>5} {_v(ring.base):>6} {_v(ring.stopped_base):>7}  "
            f"{_hex(ring.desc_addr):>14} {_hex(ring.avail_addr):>14} {_hex(ring.used_addr):>14}  "
            f"{ring.state() + (' log' if ring.logging else ''):<24} {_v(ring.kick):<6} {_v(ring.call):<6} "
            f"{_v(ring.err)}"
        )
    lines.append(f"  back-end channel: {s.backend_channel}")
    extras = []
    if s.queue_num is not None:
        extras.append(f"queues {s.queue_num}")
    if s.max_mem_slots is not None:
        extras.append(f"memory slots {s.max_mem_slots}")
    if s.status is not None:
        extras.append(f"status {s.status:#x}")
    if s.log:
        extras.append(f"dirty log {s.log}")
    if n.log_all:
        extras.append("dirty logging on (LOG_ALL)")
    if extras:
        lines.append("  device: " + ", ".join(extras))
    if not brief:
        lines.append("  history:")
        for change in s.changes:
            number = record_number(change.row)
            lines.append(f"    {offset(change.ts_ns, origin)}  record {number:<6} {change.area:<16} {change.text}")
    return lines


def _v(value: object) -> str:
    return "-" if value is None else str(value)


def _hex(value: int | None) -> str:
    return "-" if value is None else f"{value:#x}"
