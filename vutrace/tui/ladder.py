"""The ladder (flow graph) of one connection: its records as arrows between lanes, a state transfer as one line.

Lanes, left to right: the front-end, its side channels when the connection uses them (the back-end
request channel and the device-state stream, the front-end's other two links with the back-end),
and the back-end. What the front-end sends points right, what the back-end sends points left:
main-channel messages run between the front-end and back-end lanes (requests →, replies ←, across
the side-channel lane), back-end channel messages and device state between the side-channel and
back-end lanes (back-end requests and saved state ←, their replies and loaded state →). With a
side-channel lane, labels sit between it and the back-end lane, so they line up whatever the
channel. Proxy events are marker lines across the lanes. The chunks of one transfer are folded
into the line of its first chunk: "state SAVE 12 KiB in 3 chunks".

``LadderView`` is a ``RecordView`` whose lines are those records; ``ladder_line`` draws one line as
text (the widget, ``widgets.ladder``, adds the colours and draws only the lines on screen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vutrace.analysis.sessions import human_bytes
from vutrace.tui.data import Part, RecordView
from vutrace.tui.rows import Cells, fit

TIME = 11
"""Cells of the time column, with the space after it."""
SIDE_SHARE = 0.25
"""Where the side-channel lane is, as a share of the way from the front-end lane to the back-end lane."""
DIRECTION_OF_WRITER = {"backend": "SAVE", "frontend": "LOAD"}
"""Who writes a device-state stream: the back-end when it saves its state, the front-end when it loads one
(the spec's SET_DEVICE_STATE_FD transfer direction)."""
LINES = {"main": "─", "backend": "┄", "state": "═"}
"""The line an arrow is drawn with, per channel."""
LANE_TITLES = ("front-end", "back-ch/state", "back-end")
"""The titles of the lanes, left to right (the middle one only when there is a side-channel lane)."""


@dataclass
class Transfer:
    """The chunks of one device-state stream shown, folded into one ladder line."""

    row: int
    """The row of its first chunk (the line's record)."""
    direction: str
    chunks: int = 0
    nbytes: int = 0

    def text(self) -> str:
        chunks = f"{self.chunks} chunk" + ("" if self.chunks == 1 else "s")
        return f"state {self.direction} {human_bytes(self.nbytes)} in {chunks}"


class LadderView(RecordView):
    """One connection's records (of one capture) as ladder lines: the state chunks of a stream after its
    first one are left out, and counted in that line's ``Transfer``."""

    def __init__(self, parts: list[Part], part: int, expression: str | None = None) -> None:
        self.transfers: dict[int, Transfer] = {}
        """By stream number."""
        self.folded: dict[int, Transfer] = {}
        """By the row of the first chunk."""
        self.side = False
        """The records shown use a side channel (back-end channel or state stream)."""
        self._records = 0
        super().__init__(parts, [part], expression)

    @property
    def records(self) -> int:
        return self._records

    def extend(self) -> int:
        before = len(self)
        added = super().extend()
        if not added:
            return 0
        self._records += added
        part = self.parts[self.which[0]]
        rows = self.row_of[before:]
        channels = part.values("channel", rows)
        state = (channels == "state").to_numpy(dtype=bool)
        self.side = self.side or bool(state.any() or (channels == "backend").any())
        keep = self._fold(part, rows, np.flatnonzero(state))
        self.part_of = np.concatenate([self.part_of[:before], self.part_of[before:][keep]])
        self.row_of = np.concatenate([self.row_of[:before], rows[keep]])
        return int(keep.sum())

    def _fold(self, part: Part, rows: np.ndarray, chunks: np.ndarray) -> np.ndarray:
        """Which of ``rows`` get a line: all but the state chunks (positions ``chunks``) after a stream's first."""
        keep = np.ones(len(rows), dtype=bool)
        if not len(chunks):
            return keep
        chunk_rows = rows[chunks]
        streams = part.values("stream", chunk_rows).to_numpy(dtype=np.int64, na_value=0)
        sizes = part.values("nbytes", chunk_rows).to_numpy(dtype=np.int64, na_value=0)
        senders = part.values("sender", chunk_rows).astype(str).to_numpy()
        numbers, firsts, which, counts = np.unique(streams, return_index=True, return_inverse=True, return_counts=True)
        totals = np.bincount(which, weights=sizes, minlength=len(numbers))
        keep[chunks] = False
        for index in np.argsort(firsts):
            stream, first = int(numbers[index]), int(firsts[index])
            transfer = self.transfers.get(stream)
            if transfer is None:
                direction = DIRECTION_OF_WRITER.get(str(senders[first]), "?")
                transfer = self.transfers[stream] = Transfer(int(chunk_rows[first]), direction)
                self.folded[transfer.row] = transfer
                keep[chunks[first]] = True
            transfer.chunks += int(counts[index])
            transfer.nbytes += int(totals[index])
        return keep


@dataclass(frozen=True)
class Lanes:
    """Where the lanes are on a line ``width`` cells wide (``side`` None when there is no side-channel lane)."""

    width: int
    frontend: int
    backend: int
    side: int | None

    @property
    def titled(self) -> list[tuple[str, int]]:
        """(title, position) of each lane, left to right."""
        found = [(LANE_TITLES[0], self.frontend), (LANE_TITLES[1], self.side), (LANE_TITLES[2], self.backend)]
        return [(title, x) for title, x in found if x is not None]


def lanes(width: int, side: bool) -> Lanes:
    """The lanes of a ladder ``width`` cells wide, with a side-channel lane if ``side``."""
    frontend = TIME + 1
    backend = max(width - 2, frontend + 12)
    middle = frontend + round((backend - frontend) * SIDE_SHARE) if side else None
    return Lanes(width, frontend, backend, middle)


def header(lanes: Lanes) -> str:
    """The titles of the time column and of the lanes, each centred on its lane where it fits."""
    cells = list(fit("time", TIME - 1, right=True).ljust(lanes.width))
    for title, x in lanes.titled:
        start = min(max(x - len(title) // 2, TIME), lanes.width - len(title))
        cells[start : start + len(title)] = title
    return "".join(cells[: lanes.width])


def arrow(label: str, width: int, rightward: bool, line: str = "─", skip: int = 0) -> str:
    """An arrow ``width`` cells long, its label near its tail but not in its first ``skip`` cells (cut with an
    ellipsis when it does not fit)."""
    room = width - skip - 4
    if room < 1:
        return (line * (width - 1) + "▶") if rightward else ("◀" + line * (width - 1))
    text = label if len(label) <= room else label[: room - 1] + "…"
    fill = line * (room - len(text))
    if rightward:
        return f"{line * skip}{line} {text} {fill}▶"
    return f"◀{line * skip}{fill} {text} {line}"


def marker(label: str, width: int) -> str:
    """A proxy event across the lanes, ``width`` cells from the first lane to the last."""
    inner = width - 2
    text = label if len(label) <= inner - 3 else label[: max(inner - 4, 0)] + "…"
    return ("├╌ " + text + " " + "╌" * max(inner - len(text) - 3, 0))[: width - 1] + "┤"


def ladder_line(line: Cells, lanes: Lanes, transfer: Transfer | None = None) -> str:
    """One record (or one folded state transfer) as a ladder line."""
    cells = list(fit(line.time, TIME - 1, right=True).ljust(lanes.width))
    for _, x in lanes.titled:
        cells[x] = "│"
    label = transfer.text() if transfer is not None else f"{line.request} {line.summary}".strip()
    if line.sender not in ("frontend", "backend") or line.channel not in LINES:
        cells[lanes.frontend : lanes.backend + 1] = marker(label, lanes.backend - lanes.frontend + 1)
        return "".join(cells)
    rule = LINES[line.channel]
    start = lanes.side if line.channel != "main" and lanes.side is not None else lanes.frontend
    skip = lanes.side - start if lanes.side is not None and start == lanes.frontend else 0
    cells[start + 1 : lanes.backend] = arrow(label, lanes.backend - start - 1, line.sender == "frontend", rule, skip)
    if skip:
        cells[lanes.side] = "┼"  # type: ignore[index]
    return "".join(cells)
