"""``vutrace export FILE --format jsonl|csv|parquet [-o OUT]``: the loaded records for other tools.

JSON lines and CSV go to standard output unless ``-o`` is given; bytes are written as hex,
tuples (memory regions, shmem sizes) as JSON arrays. Parquet needs ``-o`` and keeps bytes as
binary values.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pandas as pd

from vutrace.errors import CommandError
from vutrace.views.loading import add_capture_arguments, load_capture

FORMATS = ("jsonl", "csv", "parquet")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="write the records as JSON lines, CSV or Parquet")
    add_capture_arguments(parser)
    parser.add_argument("--format", choices=FORMATS, default="jsonl", help="output format (default jsonl)")
    parser.add_argument("-o", "--output", metavar="OUT", help="output file (default: standard output)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.format == "parquet" and not args.output:
        raise CommandError("parquet output needs -o FILE")
    _, rows = load_capture(args.file, args.filter)
    table = prepare(rows, binary=args.format == "parquet", objects=args.format == "jsonl")
    try:
        if args.format == "parquet":
            table.to_parquet(args.output, index=False)
        elif args.format == "csv":
            table.to_csv(args.output or sys.stdout, index=False)
        else:
            text = table.to_json(orient="records", lines=True) if len(table) else ""
            if args.output:
                with open(args.output, "w") as out:
                    out.write(text)
            else:
                sys.stdout.write(text)
    except BrokenPipeError:
        raise
    except OSError as error:
        raise CommandError(f"cannot write {args.output}: {error.strerror}") from None
    return 0


def prepare(rows: pd.DataFrame, *, binary: bool = False, objects: bool = False) -> pd.DataFrame:
    """The frame ready to write: a ``frame`` column (1-based, as in show), bytes as hex (kept when
    ``binary``), tuples as JSON text, categories as plain text; event ``attrs`` as objects when
    ``objects`` (JSON lines), else as JSON text."""
    table = rows.copy()
    table.insert(0, "frame", rows.index + 1)
    if objects:
        table["attrs"] = np.array([json.loads(a) if isinstance(a, str) else None for a in table["attrs"]], dtype=object)
    for name in table.columns:
        column = table[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            table[name] = column.astype(str)
        elif column.dtype == object:
            table[name] = _plain(column.to_numpy(), binary)
    return table


def _plain(values: np.ndarray, binary: bool) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        if isinstance(value, bytes | bytearray):
            out[i] = bytes(value) if binary else value.hex()
        elif isinstance(value, tuple):
            out[i] = json.dumps(value)
        else:
            out[i] = value
    return out
