"""``vutrace report``: write one self-contained HTML page (plotly embedded) about a capture or a migration."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vutrace.analysis.inputs import add_filter_argument, matching_rows, open_captures
from vutrace.errors import CommandError
from vutrace.report.page import render
from vutrace.report.selection import Limits


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report (timeline, ladder, throughput, sessions, findings)",
        description="Write one HTML page that works offline (plotly is embedded): the checker's findings linked to "
        "their records, the phase timeline with every record as a tick, the ladder of the migration messages, the "
        "device-state throughput, the sessions and the record list. Give the source and destination captures of a "
        "migration to see both sides and the downtime. A capture of more than --max-records records gets a list of "
        "the records that tell its story (start, end, migration landmarks, findings, with neighbours), the rest "
        "counted in gap rows and drawn as rates, so the page stays a few MB.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="one capture, or the source and destination captures")
    parser.add_argument("-o", "--output", required=True, metavar="HTML", help="where to write the page")
    add_filter_argument(parser, "show records (ticks, ladder, record list)")
    parser.add_argument(
        "--max-records",
        type=int,
        default=Limits.records,
        metavar="N",
        help=f"list (and tick on the timeline) at most N records per capture (default {Limits.records}; "
        "a capture with no more is listed whole)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if len(args.files) > 2:
        raise CommandError("give one capture, or two (source and destination)")
    if args.max_records < 1:
        raise CommandError("--max-records must be at least 1")
    captures = open_captures(args.files)
    selected = {c.label: matching_rows(c, args.filter) for c in captures}
    page = render(captures, selected, Limits(records=args.max_records))
    output = Path(args.output)
    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(page, encoding="utf-8")
        temporary.replace(output)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise CommandError(f"cannot write {output}: {error.strerror or error}") from None
    print(f"wrote {output} ({len(page.encode()) // 1024} KiB)")
    return 0
