"""``vutrace diff``: two captures aligned message by message: first divergence, changed fields, missing, extra."""

from __future__ import annotations

import argparse

from vutrace.analysis import diff as analysis
from vutrace.analysis.diff import Diff, Step
from vutrace.analysis.frame import record_number
from vutrace.analysis.inputs import add_filter_argument, add_format_argument, dump_json, filtered, open_captures
from vutrace.analysis.negotiation import protocol_names, virtio_names


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "diff",
        help="compare two captures message by message (a working run against a failing one)",
        description="Align the messages of two captures per connection (first with first...) and channel on their "
        "(request, reply) sequence, then report the first divergence, every message whose fields changed, and the "
        "messages only in A (missing) or only in B (extra). Exit status 1 if the captures differ.",
    )
    parser.add_argument("a", metavar="A", help="the reference capture")
    parser.add_argument("b", metavar="B", help="the capture to compare with it")
    add_filter_argument(parser, "compare records")
    add_format_argument(parser)
    parser.add_argument(
        "--ignore", metavar="FIELD[,FIELD...]", default="", help="leave these record fields out of the comparison"
    )
    parser.add_argument(
        "--ignore-addresses",
        action="store_true",
        help="leave out process addresses and FD offsets (user_addr, ring addresses...), which change every run",
    )
    parser.add_argument("--all", action="store_true", help="also list the aligned messages that are equal")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    a, b = (filtered(c, args.filter) for c in open_captures([args.a, args.b]))
    ignore = frozenset(f.strip() for f in args.ignore.split(",") if f.strip())
    result = analysis.diff(a, b, ignore=ignore, ignore_addresses=args.ignore_addresses)
    if args.format == "json":
        print(dump_json(result.to_dict()))
    else:
        print("\n".join(diff_lines(result, show_equal=args.all)))
    return 0 if result.identical else 1


def _fmt(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:#x}" if value > 9 else str(value)
    return str(value)


def step_line(step: Step) -> str:
    conn = (
        f"conn {step.conn[0] if step.conn[0] is not None else '-'}/{step.conn[1] if step.conn[1] is not None else '-'}"
    )
    where = f"{conn} {step.channel:<7}"
    if step.kind == "missing":
        return f"- {where} A record {_n(step.a_row):<6} {step.message}  (only in A)"
    if step.kind == "extra":
        return f"+ {where} B record {_n(step.b_row):<6} {step.message}  (only in B)"
    rows = f"A record {_n(step.a_row)} / B record {_n(step.b_row)}"
    if step.kind == "equal":
        return f"  {where} {rows:<24} {step.message}"
    changes = "; ".join(f"{name} {_fmt(x)} -> {_fmt(y)}{_bits(name, x, y)}" for name, x, y in step.changes)
    return f"~ {where} {rows:<24} {step.message}: {changes}"


def _n(row: int | None) -> str:
    return "-" if row is None else str(record_number(row))


def _bits(name: str, a: object, b: object) -> str:
    """For feature words, the names of the bits that differ, e.g. " (-DEVICE_STATE)"."""
    names = {"features": virtio_names, "protocol_features": protocol_names}.get(name)
    if names is None or not isinstance(a, int) or not isinstance(b, int):
        return ""
    delta = [f"+{n}" for n in names(b & ~a)] + [f"-{n}" for n in names(a & ~b)]
    return f" ({' '.join(delta)})" if delta else ""


def diff_lines(result: Diff, *, show_equal: bool = False) -> list[str]:
    lines = [
        f"A = {result.a}, B = {result.b}: {result.count('equal')} equal, {result.count('changed')} changed, "
        f"{result.count('missing')} only in A, {result.count('extra')} only in B"
    ]
    first = result.first_divergence
    if first is None:
        lines.append("no difference")
        return lines
    lines.append("first divergence:")
    lines.append("  " + step_line(first))
    lines.append("differences:" if not show_equal else "all aligned messages:")
    for step in result.steps:
        if show_equal or step.kind != "equal":
            lines.append("  " + step_line(step))
    return lines
