"""Open captures and apply ``-Y`` filters for the analysis commands, with one-line errors for users.

Loading and filtering are the ones every command shares (``vutrace.views.loading``,
``vutrace.filtering``): ``-Y EXPR`` is a pandas expression over the loaded columns, e.g.
``request == 'SET_DEVICE_STATE_FD'``, ``conn == 2 and channel == 'backend'``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from vutrace.analysis.frame import Capture
from vutrace.errors import CommandError
from vutrace.filtering import FilterError, apply_filter
from vutrace.views.loading import load_capture


def open_capture(path: str | os.PathLike[str], label: str | None = None) -> Capture:
    """Load a capture file the way every command does (progress bar, warnings, one-line errors)."""
    frame, _ = load_capture(Path(path))
    return Capture(frame, label or Path(path).name, str(path))


def open_captures(paths: list[str]) -> list[Capture]:
    """Load one or two captures, labelled by file name (by path if the names are the same)."""
    names = [Path(p).name for p in paths]
    labels = names if len(set(names)) == len(names) else [str(p) for p in paths]
    return [open_capture(p, label) for p, label in zip(paths, labels, strict=True)]


def matching_rows(capture: Capture, expression: str | None) -> set[int] | None:
    """The row indices a ``-Y`` expression selects (None: no filter)."""
    if not expression or not expression.strip():
        return None
    try:
        selected = apply_filter(capture.df, expression)
    except FilterError as error:
        raise CommandError(str(error)) from None
    return {int(i) for i in selected.index}


def filtered(capture: Capture, expression: str | None) -> Capture:
    """The capture restricted to the rows a ``-Y`` expression selects (row indices unchanged)."""
    rows = matching_rows(capture, expression)
    if rows is None:
        return capture
    return Capture(capture.df.loc[sorted(rows)], capture.label, capture.path)


def add_filter_argument(parser: Any, what: str) -> None:
    parser.add_argument(
        "-Y",
        "--filter",
        metavar="EXPR",
        help=f"only {what} matching this expression over the record columns, "
        'e.g. "request == \'SET_DEVICE_STATE_FD\'" or "conn == 2"',
    )


def add_format_argument(parser: Any) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")


def dump_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def clock(ts_ns: int) -> str:
    """An absolute timestamp as local wall-clock time with microseconds."""
    return dt.datetime.fromtimestamp(ts_ns / 1e9).isoformat(sep=" ", timespec="microseconds")


def offset(ts_ns: int | None, origin: int) -> str:
    """A timestamp relative to the capture start, in seconds with microseconds."""
    if ts_ns is None:
        return "-"
    return f"+{(ts_ns - origin) / 1e9:.6f}"
