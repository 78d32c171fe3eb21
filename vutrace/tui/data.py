"""The records the TUI shows: loaded captures (``Part``) and ordered, filtered views over them (``RecordView``).

A ``Part`` is one capture's DataFrame (``vutrace.load``), kept as a list of chunks so a live capture
can grow without copying what is already there. A ``RecordView`` is the ordered list of
(part, row) pairs a list widget shows: one capture, or two merged by time, after the display
filter. Rows are read as dicts only for the lines on screen, a block at a time.
"""

from __future__ import annotations

import ast
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vutrace.filtering import FilterError, apply_filter

BLOCK = 64
"""Rows turned into dicts at a time for display."""
CACHE_BLOCKS = 64
"""Blocks of row dicts kept per part (the rows on screen and around them)."""
SAMPLE_ROWS = 2000
"""Rows a filter is tried on while it is being typed."""
MAX_CHUNKS = 32
"""Chunks a live capture's part holds before they are joined into one."""

Row = dict[str, Any]


Piece = tuple[int, pd.DataFrame]
"""A chunk of a part's rows and the row number it starts at."""


@dataclass
class Part:
    """One capture: its rows, in chunks (one for a file, one more per batch for a live capture).

    ``pieces`` is replaced, never changed in place, so a worker thread that took it sees a
    consistent set of rows while the UI thread appends.
    """

    label: str
    path: Path | None = None
    pieces: tuple[Piece, ...] = ()
    complete: bool = True
    """False while only the first records of the file are loaded."""
    _blocks: OrderedDict[int, list[Row]] = field(default_factory=OrderedDict, repr=False)
    _frame: pd.DataFrame | None = field(default=None, repr=False)
    _ts: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return _length(self.pieces)

    def append(self, frame: pd.DataFrame) -> None:
        """Add rows at the end (their index is renumbered to continue this part's rows)."""
        if not len(frame):
            return
        start = len(self)
        frame = frame.reset_index(drop=True)
        frame.index = pd.RangeIndex(start, start + len(frame))
        if start % BLOCK:
            self._blocks.pop(start // BLOCK, None)
        pieces = (*self.pieces, (start, frame))
        self._frame = None
        self._ts = None
        if len(pieces) > MAX_CHUNKS:
            pieces = ((0, concat([chunk for _, chunk in pieces])),)
        self.pieces = pieces

    def replace(self, frame: pd.DataFrame, complete: bool = True) -> None:
        """Swap in a new whole frame (the full load replacing the first records)."""
        self.pieces = ()
        self._blocks.clear()
        self._frame = None
        self._ts = None
        self.complete = complete
        self.append(frame)

    def frame(self) -> pd.DataFrame:
        """All rows as one DataFrame (concatenated once per change)."""
        if self._frame is None:
            chunks = [chunk for _, chunk in self.pieces]
            if len(chunks) == 1:
                self._frame = chunks[0]
            elif chunks:
                self._frame = concat(chunks)
            else:
                self._frame = pd.DataFrame({"ts_ns": pd.Series([], dtype="int64")})
        return self._frame

    def timestamps(self) -> np.ndarray:
        """``ts_ns`` of every row."""
        if self._ts is None:
            parts = [chunk["ts_ns"].to_numpy(dtype=np.int64) for _, chunk in self.pieces]
            self._ts = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return self._ts

    @property
    def first_ns(self) -> int | None:
        return int(self.pieces[0][1]["ts_ns"].iloc[0]) if self.pieces else None

    def row(self, index: int) -> Row:
        """Row ``index`` as a dict of plain Python values (pandas ``to_dict`` conversion)."""
        block = self._block(index // BLOCK)
        return block[index % BLOCK]

    def _block(self, number: int) -> list[Row]:
        cached = self._blocks.get(number)
        if cached is not None:
            self._blocks.move_to_end(number)
            return cached
        pieces = self.pieces
        start = number * BLOCK
        stop = min(start + BLOCK, _length(pieces))
        rows: list[Row] = []
        for first, chunk in pieces:
            lo, hi = max(start, first), min(stop, first + len(chunk))
            if lo < hi:
                rows.extend(chunk.iloc[lo - first : hi - first].to_dict("records"))
        self._blocks[number] = rows
        while len(self._blocks) > CACHE_BLOCKS:
            self._blocks.popitem(last=False)
        return rows

    def values(self, name: str, rows: np.ndarray) -> pd.Series:
        """Column ``name`` at ``rows`` (ascending row numbers), taken from the chunks without joining them."""
        found = []
        for first, chunk in self.pieces:
            lo, hi = np.searchsorted(rows, (first, first + len(chunk)))
            if lo < hi:
                found.append(chunk[name].iloc[rows[lo:hi] - first])
        if not found:
            return pd.Series([], dtype=object)
        return found[0] if len(found) == 1 else concat([f.to_frame() for f in found])[name]

    def reply_of(self, row: int) -> int | None:
        """The row of the reply that answers the request in row ``row``, if any."""
        for first, chunk in self.pieces:
            if first + len(chunk) <= row:
                continue
            hits = np.flatnonzero(chunk["reply_to"].to_numpy(dtype=np.int64, na_value=-1) == row)
            if len(hits):
                return first + int(hits[0])
        return None

    def select(self, expression: str | None, start: int = 0) -> tuple[np.ndarray, int]:
        """Row numbers from ``start`` on that the display filter keeps, and the number of rows looked at.

        Raises FilterError for a bad expression.
        """
        pieces = self.pieces
        end = _length(pieces)
        if not expression or not expression.strip():
            return np.arange(start, end, dtype=np.int64), end
        found = []
        for first, chunk in pieces:
            if first + len(chunk) <= start:
                continue
            piece = chunk.iloc[max(start - first, 0) :]
            kept = apply_filter(narrow(piece, expression), expression)
            found.append(kept.index.to_numpy(dtype=np.int64))
        return (np.concatenate(found) if found else np.zeros(0, dtype=np.int64)), end

    def check(self, expression: str) -> None:
        """Raise FilterError if ``expression`` is not a valid filter (tried on the first rows only)."""
        if self.pieces:
            apply_filter(narrow(self.pieces[0][1].iloc[:SAMPLE_ROWS], expression), expression)


def _length(pieces: tuple[Piece, ...]) -> int:
    return pieces[-1][0] + len(pieces[-1][1]) if pieces else 0


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Frames one after the other; categorical columns stay categorical (with the union of the categories)."""
    categories: dict[str, dict[object, None]] = {}
    for frame in frames:
        for name, column in frame.items():
            if isinstance(column.dtype, pd.CategoricalDtype):
                categories.setdefault(str(name), {}).update(dict.fromkeys(column.cat.categories))
    unified = [
        frame.assign(
            **{
                name: frame[name].cat.set_categories(list(cats))
                for name, cats in categories.items()
                if name in frame and isinstance(frame[name].dtype, pd.CategoricalDtype)
            }
        )
        for frame in frames
    ]
    return pd.concat(unified)


def narrow(frame: pd.DataFrame, expression: str) -> pd.DataFrame:
    """Only the columns ``expression`` names (so filtering does not copy every column of a big frame).

    An expression that does not parse as Python keeps every column: ``apply_filter`` then reports
    the error exactly as it would for the whole frame.
    """
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        return frame
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    if "index" in names:
        return frame
    return frame[[name for name in frame.columns if name in names]]


class RecordView:
    """The rows a list shows: (part, row) pairs in display order, kept by the filter."""

    def __init__(self, parts: list[Part], which: Iterable[int], expression: str | None = None) -> None:
        self.parts = parts
        self.which = list(which)
        self.expression = expression or None
        self.seen = {p: 0 for p in self.which}
        """Rows of each part already looked at (new live rows come after)."""
        self.part_of = np.zeros(0, dtype=np.int8)
        self.row_of = np.zeros(0, dtype=np.int64)
        self.extend()

    def __len__(self) -> int:
        return len(self.row_of)

    @property
    def merged(self) -> bool:
        return len(self.which) > 1

    def extend(self) -> int:
        """Take in the rows added to the parts since the last call; returns how many the filter kept."""
        new_parts, new_rows, new_ts = [], [], []
        for p in self.which:
            part = self.parts[p]
            start = self.seen[p]
            if len(part) <= start:
                continue
            rows, self.seen[p] = part.select(self.expression, start)
            new_parts.append(np.full(len(rows), p, dtype=np.int8))
            new_rows.append(rows)
            if self.merged:
                new_ts.append(part.timestamps()[rows])
        if not new_rows:
            return 0
        parts = np.concatenate(new_parts)
        rows = np.concatenate(new_rows)
        if self.merged and len(rows):
            order = np.argsort(np.concatenate(new_ts), kind="stable")
            parts, rows = parts[order], rows[order]
        self.part_of = np.concatenate([self.part_of, parts])
        self.row_of = np.concatenate([self.row_of, rows])
        return len(rows)

    @property
    def records(self) -> int:
        """Records the view holds: its lines, unless a subclass draws several records as one line."""
        return len(self)

    def locate(self, position: int) -> tuple[int, int]:
        """(part, row) at a list position."""
        return int(self.part_of[position]), int(self.row_of[position])

    def row(self, position: int) -> Row:
        part, row = self.locate(position)
        return self.parts[part].row(row)

    def position_of(self, part: int, row: int) -> int | None:
        """The list position of a record, or None when the filter hides it."""
        hits = np.flatnonzero((self.row_of == row) & (self.part_of == part))
        return int(hits[0]) if len(hits) else None

    def times(self) -> np.ndarray:
        """``ts_ns`` of every position."""
        times = np.zeros(len(self), dtype=np.int64)
        for p in self.which:
            here = self.part_of == p
            times[here] = self.parts[p].timestamps()[self.row_of[here]]
        return times

    def nearest_time(self, ts_ns: int) -> int | None:
        """The first position at or after ``ts_ns`` (the last one if none)."""
        if not len(self):
            return None
        later = self.times() >= ts_ns
        return int(np.argmax(later)) if later.any() else len(self) - 1


def check_filter(parts: list[Part], expression: str) -> str | None:
    """None if ``expression`` is a valid filter for these parts, else the one-line error."""
    try:
        for part in parts:
            part.check(expression)
    except FilterError as error:
        return str(error)
    return None
