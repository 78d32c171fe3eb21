"""``vutrace timeline``: migration phases per side and, with both captures, the downtime spans."""

from __future__ import annotations

import argparse

from vutrace.analysis import timeline as analysis
from vutrace.analysis.frame import record_number
from vutrace.analysis.inputs import add_format_argument, clock, dump_json, offset, open_captures
from vutrace.analysis.sessions import human_duration
from vutrace.analysis.timeline import Migration, SideTimeline
from vutrace.errors import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "timeline",
        help="migration phases (negotiation, set-up, dirty logging, suspension, state transfer, check...) and downtime",
        description="Cut each capture into phases with start, end and duration; the role (source or destination) "
        "comes from the SET_DEVICE_STATE_FD direction. Given the source and the destination capture (in either "
        "order), show the spans that make up the downtime and compare the ring bases.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="one capture, or the source and destination captures")
    add_format_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if len(args.files) > 2:
        raise CommandError("give one capture, or two (source and destination)")
    sides = [analysis.side_timeline(c) for c in open_captures(args.files)]
    result = analysis.migration(*sides) if len(sides) == 2 else None
    if args.format == "json":
        payload: dict = {"sides": [s.to_dict() for s in sides]}
        if result is not None:
            payload["migration"] = result.to_dict()
        print(dump_json(payload))
        return 0
    origin = min(s.first_ns for s in sides)
    print(f"times are seconds since {clock(origin)}")
    for side in sides:
        print()
        print("\n".join(side_lines(side, origin)))
    if result is not None:
        print()
        print("\n".join(migration_lines(result, origin)))
    return 0


def side_lines(side: SideTimeline, origin: int) -> list[str]:
    role = side.role or "no device-state transfer"
    lines = [
        f"{side.label}: {role}",
        f"  {'phase':<16} {'conn':>4}  {'start':>11} {'end':>11} {'duration':>11}  detail",
    ]
    for p in side.phases:
        lines.append(
            f"  {p.name:<16} {p.conn:>4}  {offset(p.start_ns, origin):>11} {offset(p.end_ns, origin):>11} "
            f"{human_duration(p.duration_ns):>11}  {p.detail}"
        )
    for t in side.transfers:
        reply = "no reply"
        if t.reply_row is not None:
            if t.state_error:
                reply = f"refused (error {t.state_error})"
            else:
                reply = "accepted, " + ("front-end's pipe" if t.nofd else "back-end's FD")
        check = "no check"
        if t.check_reply_row is not None:
            check = "check " + ("success" if t.check_result == 0 else f"failed ({t.check_result})")
        elif t.check_row is not None:
            check = "check unanswered"
        end = f"stream closed {offset(t.close_ns, origin)}" if t.close_ns is not None else "stream not closed"
        lines.append(
            f"  transfer {t.direction_name} conn {t.conn}: SET_DEVICE_STATE_FD {offset(t.request_ns, origin)} "
            f"(record {record_number(t.request_row)}), {reply}, {end}, {check}"
        )
    if side.stopped_bases:
        bases = ", ".join(
            f"ring {v}: {b} (record {record_number(r)})" for v, (b, r) in sorted(side.stopped_bases.items())
        )
        lines.append(f"  ring bases at the stop (GET_VRING_BASE replies): {bases}")
    if side.set_bases:
        bases = ", ".join(f"ring {v}: {b} (record {record_number(r)})" for v, (b, r) in sorted(side.set_bases.items()))
        lines.append(f"  ring bases at the restart (SET_VRING_BASE): {bases}")
    return lines


def migration_lines(m: Migration, origin: int) -> list[str]:
    source = m.source.label if m.source else "?"
    destination = m.destination.label if m.destination else "?"
    lines = [f"migration {source} -> {destination} (both captures' clocks are taken to agree: same host)"]
    if m.source is None or m.destination is None:
        lines.append("  needs one capture with a SAVE transfer and one with a LOAD transfer")
        return lines
    lines.append(f"  source suspension starts:      {offset(m.suspend_ns, origin)}")
    lines.append(f"  destination rings running:     {offset(m.running_ns, origin)}")
    if m.downtime_ns is not None:
        lines.append(f"  downtime (suspension -> running): {human_duration(m.downtime_ns)}")
    for name, span in (("save (source)", m.save_span), ("load (destination)", m.load_span)):
        if span is not None:
            lines.append(
                f"  device-state {name}: {offset(span[0], origin)} .. {offset(span[1], origin)} "
                f"({human_duration(span[1] - span[0])}, SET_DEVICE_STATE_FD to CHECK_DEVICE_STATE reply)"
            )
    if m.transfer_share is not None:
        lines.append(f"  state transfer share of the downtime: {m.transfer_share:.1%}")
    for r in m.ring_bases:
        verdict = "same" if r.match else "DIFFERENT"
        lines.append(
            f"  ring {r.vring}: source stopped at {_v(r.source)}, destination restarts at {_v(r.destination)} "
            f"-> {verdict}"
        )
    return lines


def _v(value: object) -> str:
    return "-" if value is None else str(value)
