"""``vutrace show FILE``: one line per record, like tshark; -V adds the field tree, -x the bytes."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from dissectors.spec import flag_names
from vutrace.views.lines import FRAME_COLUMNS, format_duration, format_line, format_value, hex_dump, missing
from vutrace.views.loading import add_capture_arguments, load_capture

CHUNK = 4096
"""Rows turned into Python dicts at a time (bounded memory on big captures)."""
HEADER_FLAGS = {0x4: "reply", 0x8: "need_reply"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("show", help="list the records of a capture, one per line (like tshark)")
    add_capture_arguments(parser)
    parser.add_argument("-V", "--verbose", action="store_true", help="print every field of each record")
    parser.add_argument("-x", "--hex", action="store_true", help="print the bytes of each record in hex")
    parser.add_argument("-c", "--count", type=int, metavar="N", help="stop after N records")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    frame, rows = load_capture(args.file, args.filter)
    if args.count is not None:
        rows = rows.iloc[: max(args.count, 0)]
    t0 = int(frame["ts_ns"].iloc[0]) if len(frame) else 0
    out = sys.stdout
    for start in range(0, len(rows), CHUNK):
        chunk = rows.iloc[start : start + CHUNK]
        text = []
        for number, row in zip(chunk.index.tolist(), chunk.to_dict("records"), strict=True):
            text.append(format_line(row, t0_ns=t0, number=number + 1))
            if args.verbose:
                text.append(field_tree(row, number + 1))
            if args.hex:
                text.append(hex_dump(row["raw"], indent="    ") + "\n")
        out.write("\n".join(text) + "\n")
    return 0


def field_tree(row: dict[str, object], number: int) -> str:
    """The -V detail of a row: the record, the header, the payload (scapy's dissection when available), FDs."""
    sender = row["sender"]
    when = datetime.fromtimestamp(int(row["ts_ns"]) / 1e9, tz=UTC).isoformat(timespec="microseconds")
    raw = row["raw"] or b""
    lines = [
        f"    Frame {number}: conn {row['conn']}, {row['channel']} channel, sent by {sender}, {len(raw)} bytes, {when}"
    ]
    if row["channel"] in ("main", "backend"):
        lines.extend(_message_tree(row))
    else:
        extra = {k: row.get(k) for k in ("stream", "offset", "nbytes", "sha256", "attrs")}
        lines.extend(f"    {k}: {v}" for k, v in extra.items() if not missing(v))
    if row["nfds"]:
        lines.append(f"    FDs ({row['nfds']}):")
        lines.extend(f"      {fd}" for fd in str(row["fds"]).split("; "))
    if not missing(row.get("reply_to")):
        lines.append(f"    Reply to frame {int(row['reply_to']) + 1}, after {format_duration(int(row['latency_ns']))}")
    for label in ("error", "warning"):
        if not missing(row.get(label)):
            lines.append(f"    {label.capitalize()}: {row[label]}")
    return "\n".join(lines) + "\n"


def _message_tree(row: dict[str, object]) -> list[str]:
    if missing(row.get("flags")):
        return ["    (no complete header)"]
    flags = int(row["flags"])
    names = [f"version {flags & 0x3}", *flag_names(flags & ~0x3, HEADER_FLAGS)]
    lines = [
        f"    Header: request {row['request']} ({row['request_id']}), flags {flags:#x} ({', '.join(names)}), "
        f"size {row['size']}"
    ]
    dissected = _scapy_tree(row["raw"], str(row["channel"]))
    if dissected is not None:
        lines.extend("    " + line for line in dissected.splitlines() if line.strip())
        return lines
    for name, value in row.items():
        if name in FRAME_COLUMNS or missing(value):
            continue
        lines.append(f"      {name} = {format_value(name, value) if not isinstance(value, tuple) else value}")
    return lines


def _scapy_tree(raw: bytes, channel: str) -> str | None:
    """The scapy layers' field tree, or None if dissectors.layers is not available."""
    try:
        from dissectors.layers import dissect
    except ImportError:
        return None
    return dissect(raw, channel).show(dump=True)
