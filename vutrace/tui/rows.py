"""The cells of one line of the message list, from a loaded row (text only, no styling)."""

from __future__ import annotations

from dataclasses import dataclass

from vutrace.views.lines import describe, format_duration, missing, problems

DIRECTIONS = {"frontend": "F→B", "backend": "B→F", "proxy": "prx"}
CHANNELS = {"main": "main", "backend": "back", "state": "state", "event": "event"}
SENDER_NAMES = {"frontend": "front-end", "backend": "back-end", "proxy": "proxy"}


@dataclass(frozen=True)
class Column:
    name: str
    title: str
    width: int
    """0: sized at run time (No.: by the record count; Summary: the room left)."""
    right: bool = False


COLUMNS = (
    Column("no", "No.", 0, right=True),
    Column("time", "Time", 10, right=True),
    Column("conn", "Conn", 4, right=True),
    Column("chan", "Chan", 5),
    Column("dir", "Dir", 3),
    Column("request", "Request", 21),
    Column("summary", "Summary", 0),
    Column("latency", "Latency", 7, right=True),
)
DROP_ORDER = ("chan", "conn", "latency")
"""Columns left out, in this order, when the list is too narrow for a readable summary."""
MIN_SUMMARY = 16


@dataclass(frozen=True)
class Cells:
    """One record as list cells, plus what decides its style."""

    texts: tuple[str, ...]
    sender: str
    is_reply: bool
    problem: bool
    """The record has a decode error or warning."""
    channel: str

    @property
    def time(self) -> str:
        return self.texts[1]

    @property
    def request(self) -> str:
        return self.texts[5]

    @property
    def summary(self) -> str:
        return self.texts[6]


def seconds(ts_ns: object, t0_ns: int) -> str:
    return "" if missing(ts_ns) else f"{(int(ts_ns) - t0_ns) / 1e9:.6f}"  # type: ignore[call-overload]


def summary(row: dict[str, object]) -> str:
    """What follows the request name: reply / need_reply, key fields, FDs, problems."""
    parts = [*describe(row), *problems(row)]
    return " ".join(parts)


def cells(row: dict[str, object], number: int, t0_ns: int, label: str = "") -> Cells:
    """The list cells of ``row``; ``number`` is its 1-based record number, ``label`` its capture when merged."""
    sender = str(row.get("sender"))
    channel = str(row.get("channel"))
    latency = row.get("latency_ns")
    problem = any(not missing(row.get(k)) and row.get(k) for k in ("error", "warning"))
    texts = (
        f"{label}{number}",
        seconds(row.get("ts_ns"), t0_ns),
        f"#{row.get('conn')}",
        CHANNELS.get(channel, channel),
        DIRECTIONS.get(sender, sender[:3]),
        str(row.get("request")),
        summary(row),
        "" if missing(latency) else format_duration(int(latency)),  # type: ignore[call-overload]
    )
    return Cells(texts, sender, bool(row.get("is_reply")), bool(problem), channel)


def fit(text: str, width: int, right: bool = False) -> str:
    """``text`` cut (with an ellipsis) or padded to ``width`` cells."""
    if len(text) > width:
        return text[: max(width - 1, 0)] + "…" if width else ""
    return text.rjust(width) if right else text.ljust(width)


def layout(width: int, number_width: int) -> list[tuple[int, Column, int]]:
    """(index in ``Cells.texts``, column, cells) of the columns shown in a list ``width`` cells wide.

    Columns are one space apart; Summary takes the room left. When that is too little, Chan, Conn
    and Latency are left out, in that order.
    """
    widths = [number_width if c.name == "no" else c.width for c in COLUMNS]
    shown = list(range(len(COLUMNS)))
    for name in (None, *DROP_ORDER):
        if name is not None:
            shown.remove(next(i for i in shown if COLUMNS[i].name == name))
        fixed = sum(widths[i] for i in shown) + len(shown) - 1
        if width - fixed >= MIN_SUMMARY:
            break
    summary = next(i for i, c in enumerate(COLUMNS) if c.name == "summary")
    widths[summary] = max(width - fixed, 1)
    return [(i, COLUMNS[i], widths[i]) for i in shown]


def join(texts: tuple[str, ...], columns: list[tuple[int, Column, int]]) -> str:
    """The cells of one line fitted to their columns."""
    return " ".join(fit(texts[i], w, c.right) for i, c, w in columns)
