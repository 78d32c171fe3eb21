"""Load a capture for a command: a progress bar on a terminal, one-line errors and warnings, the -Y filter.

The commands that list records (show, stats, export, ...) share the FILE and ``-Y EXPR`` arguments
and this loading step, so a bad file or a bad filter reads the same everywhere.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import pandas as pd

from vutrace.capture.blocks import CaptureError
from vutrace.errors import CommandError
from vutrace.filtering import FilterError, apply_filter
from vutrace.loader import load

PROGRESS_MIN_BYTES = 16 << 20
"""Files smaller than this load too fast for a progress bar to be worth drawing."""


def add_capture_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="capture file (pcapng written by vutrace proxy)")
    parser.add_argument(
        "-Y",
        "--filter",
        metavar="EXPR",
        help="display filter: a pandas query over the columns, e.g. \"request == 'SET_DEVICE_STATE_FD'\"",
    )


def load_capture(path: Path, expression: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The whole capture and the rows the filter keeps; CommandError for a bad file or filter."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            frame = _load_with_progress(path)
        except CaptureError as error:
            raise CommandError(str(error)) from None
    for warning in caught:
        print(f"vutrace: warning: {warning.message}", file=sys.stderr)
    try:
        return frame, apply_filter(frame, expression)
    except FilterError as error:
        raise CommandError(str(error)) from None


def _load_with_progress(path: Path) -> pd.DataFrame:
    try:
        size = os.stat(path).st_size
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from None
    if size < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        return load(path)
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(f"loading {path.name}", total=1.0)
        return load(path, progress=lambda done: bar.update(task, completed=done))
