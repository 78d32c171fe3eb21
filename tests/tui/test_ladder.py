"""The ladder's lines (``vutrace.tui.ladder``): lanes, arrows, and state chunks folded per transfer."""

from __future__ import annotations

from pathlib import Path

from vutrace.loader import load
from vutrace.tui.data import Part
from vutrace.tui.ladder import LadderView, arrow, ladder_line, lanes
from vutrace.tui.rows import cells


def test_the_chunks_of_a_transfer_fold_into_one_line_even_when_they_arrive_in_several_reads(source: Path) -> None:
    frame = load(source)
    chunks = frame[frame["channel"] == "state"]
    part = Part("source")
    split = int(chunks.index[0]) + 1
    part.append(frame.iloc[:split])
    view = LadderView([part], 0, "conn == 1")
    assert (view.transfers[1].chunks, len(view)) == (1, split)
    part.append(frame.iloc[split:])
    view.extend()
    transfer = view.transfers[1]
    assert (transfer.row, transfer.chunks, transfer.nbytes) == (chunks.index[0], len(chunks), chunks["nbytes"].sum())
    assert transfer.text() == "state SAVE 12 KiB in 3 chunks"
    assert len(view) == len(frame) - len(chunks) + 1 and view.records == len(frame)
    assert [view.locate(i)[1] for i in range(len(view)) if view.locate(i)[1] in chunks.index] == [chunks.index[0]]


def test_a_label_too_long_for_its_arrow_is_cut_with_an_ellipsis() -> None:
    assert arrow("SET_OWNER", 20, True) == "─ SET_OWNER ───────▶"
    assert arrow("GET_FEATURES reply features=0x174000000", 20, False) == "◀ GET_FEATURES re… ─"
    assert arrow("GET_FEATURES", 30, False, skip=10) == "◀" + "─" * 14 + " GET_FEATURES ─"
    assert arrow("GET_FEATURES", 30, True, skip=10) == "─" * 11 + " GET_FEATURES " + "─" * 4 + "▶"


def test_every_line_of_an_80_column_ladder_keeps_the_lanes_in_place(source: Path) -> None:
    part = Part("source")
    part.append(load(source))
    view = LadderView([part], 0, "conn == 1")
    where = lanes(78, view.side)
    assert where.side is not None
    for position in range(len(view)):
        _, row = view.locate(position)
        record = part.row(row)
        text = ladder_line(cells(record, row + 1, 0), where, view.folded.get(row))
        assert len(text) == 78
        if record["channel"] == "event":
            assert text[where.frontend] == "├" and text[where.backend] == "┤"
        else:
            assert (text[where.frontend], text[where.side], text[where.backend]) in {("│", "┼", "│"), ("│", "│", "│")}
