"""``vutrace tui FILE [FILE2]``: explore one capture, or a migration's source and destination captures."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vutrace.errors import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tui",
        help="explore captures in a terminal UI (messages, conversation, timeline, throughput, session, checks)",
        description="Open a capture in a terminal UI. Give the source and the destination capture of a migration "
        "to see them side by side (or merged by time with --merge). With --follow, watch captures that are "
        "still being written. Press ? in the UI for the keys.",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="one capture, or two (source, destination)")
    parser.add_argument("--merge", action="store_true", help="two captures: one list merged by time")
    parser.add_argument("--follow", action="store_true", help="follow captures while they are written")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if len(args.files) > 2:
        raise CommandError("give one capture, or two (source and destination)")
    for path in args.files:
        if args.follow and not path.exists():
            continue
        if not path.is_file():
            raise CommandError(
                f"cannot open {path}: not a file" if path.exists() else f"cannot open {path}: no such file"
            )
        if not os.access(path, os.R_OK):
            raise CommandError(f"cannot open {path}: permission denied")
    from vutrace.tui.app import VutraceApp

    VutraceApp(args.files, merge=args.merge, live=args.follow).run()
    return 0
