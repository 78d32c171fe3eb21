"""``vutrace report``: write one self-contained HTML page (plotly embedded) about a capture or a migration."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vutrace.analysis.inputs import add_filter_argument, matching_rows, open_captures
from vutrace.errors import CommandError
from vutrace.report.page import render


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report (timeline, ladder, throughput, sessions, findings)",
        description="Write one HTML page that works offline (plotly is embedded): the checker's findings linked to "
        "their records, the phase timeline with every record as a tick, the ladder of the migration messages, the "
        "device-state throughput, the sessions and the record list. Give the source and destination captures of a "
        "migration to see both sides and the downtime.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="one capture, or the source and destination captures")
    parser.add_argument("-o", "--output", required=True, metavar="HTML", help="where to write the page")
    add_filter_argument(parser, "show records (ticks, ladder, record list)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if len(args.files) > 2:
        raise CommandError("give one capture, or two (source and destination)")
    captures = open_captures(args.files)
    selected = {c.label: matching_rows(c, args.filter) for c in captures}
    page = render(captures, selected)
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
