"""``vutrace check``: the conformance checker; exit status 1 when an error-level finding exists."""

from __future__ import annotations

import argparse

from vutrace.analysis import checks
from vutrace.analysis.checks import Finding, Severity, rules
from vutrace.analysis.checks.model import SEVERITY_ORDER
from vutrace.analysis.frame import Capture, record_number
from vutrace.analysis.inputs import (
    add_filter_argument,
    add_format_argument,
    dump_json,
    matching_rows,
    offset,
    open_captures,
)
from vutrace.errors import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="check a capture (or a migration's source and destination) against the vhost-user spec",
        description="Run the conformance rules (docs/checks.md) over one capture, or over a migration's source and "
        "destination captures (adding the cross-capture rules). Each finding names its rule, severity, the "
        "offending records (row and time) and the spec section. Exit status: 1 if an error-level finding exists, "
        "0 otherwise.",
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="one capture, or the source and destination captures")
    add_filter_argument(parser, "report findings about records")
    add_format_argument(parser)
    parser.add_argument(
        "--severity",
        choices=[s.value for s in Severity],
        default="info",
        help="report findings of this severity and above (default: all)",
    )
    parser.add_argument("--rules", action="store_true", help="list the rules and exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.rules:
        print_rules(args.format)
        return 0
    if not 1 <= len(args.files) <= 2:
        raise CommandError("give one capture, or two (source and destination)")
    captures = open_captures(args.files)
    findings = checks.check(*captures)
    findings = [f for f in findings if SEVERITY_ORDER[f.severity] <= SEVERITY_ORDER[Severity(args.severity)]]
    if args.filter:
        findings = _matching(findings, captures, args.filter)
    if args.format == "json":
        print(
            dump_json(
                {
                    "captures": [c.label for c in captures],
                    "errors": sum(f.severity is Severity.ERROR for f in findings),
                    "warnings": sum(f.severity is Severity.WARNING for f in findings),
                    "findings": [f.to_dict() for f in findings],
                }
            )
        )
    else:
        origins = {c.label: int(c.df["ts_ns"].min()) if len(c.df) else 0 for c in captures}
        print("\n".join(finding_lines(findings, origins, len(captures) > 1)))
    return 1 if checks.has_errors(findings) else 0


def _matching(findings: list[Finding], captures: list[Capture], expression: str) -> list[Finding]:
    selected = {c.label: matching_rows(c, expression) or set() for c in captures}
    return [f for f in findings if any(r.row in selected.get(r.side, set()) for r in f.records)]


def finding_lines(findings: list[Finding], origins: dict[str, int], show_capture: bool) -> list[str]:
    counts = {s: sum(f.severity is s for f in findings) for s in Severity}
    summary = ", ".join(f"{n} {s.value}{'s' if n != 1 else ''}" for s, n in counts.items())
    lines = [f"{' + '.join(origins)}: {summary}"]
    for f in findings:
        where = " ".join(
            (f"{r.side}:" if show_capture else "")
            + f"record {record_number(r.row)} {offset(r.ts_ns, origins.get(r.side, 0))}"
            for r in f.records
        )
        lines.append(f"{f.severity.value:<7} {f.rule:<34} {f.message}")
        lines.append(f"        {'':<34} at {where or '-'}  [spec: {f.section}]")
    return lines


def print_rules(output: str) -> None:
    if output == "json":
        print(
            dump_json(
                [
                    {
                        "id": r.id,
                        "severity": r.severity.value,
                        "title": r.title,
                        "section": r.section,
                        "ref": r.ref,
                        "cross": r.cross,
                    }
                    for r in rules()
                ]
            )
        )
        return
    for r in rules():
        scope = " (source + destination)" if r.cross else ""
        print(f"{r.id:<34} {r.severity.value:<7} {r.title}{scope}  [spec: {r.section}]")
