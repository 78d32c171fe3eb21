"""The TUI's record model: parts, filtered and merged views, the first records of a big file, row cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tui_captures import source_records, write

from vutrace.filtering import FilterError, apply_filter
from vutrace.loader import load
from vutrace.tui.data import Part, RecordView, check_filter, narrow
from vutrace.tui.rows import COLUMNS, cells, layout
from vutrace.tui.sources import read_prefix


def part_of(label: str, frame) -> Part:
    part = Part(label)
    part.append(frame)
    return part


EXPRESSIONS = (
    "request == 'SET_VRING_ENABLE'",
    "channel == 'backend' and is_reply",
    "nfds > 0 or latency_ns > 60_000",
    "error.isna() and request.str.startswith('GET_')",
    "conn == 1 and not is_reply",
)


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_a_view_keeps_the_rows_the_cli_filter_keeps(source: Path, expression: str) -> None:
    frame = load(source)
    view = RecordView([part_of("s", frame)], [0], expression)
    assert view.row_of.tolist() == apply_filter(frame, expression).index.tolist()


def test_a_filter_reads_only_the_columns_it_names(source: Path) -> None:
    frame = load(source)
    assert list(narrow(frame, "nfds > 0 and request == 'SET_OWNER'").columns) == ["request", "nfds"]
    assert list(narrow(frame, "nfds >").columns) == list(frame.columns)


def test_a_bad_filter_gives_the_cli_error(source: Path) -> None:
    part = part_of("s", load(source))
    assert "no_such_column" in (check_filter([part], "no_such_column > 1") or "")
    assert check_filter([part], "nfds > 0") is None
    with pytest.raises(FilterError):
        part.select("nfds +")
    assert part.select("nfds > 0")[1] == len(part)


def test_rows_added_later_are_filtered_and_appended(source: Path) -> None:
    frame = load(source)
    part = part_of("s", frame.iloc[:20])
    view = RecordView([part], [0], "is_reply")
    before = len(view)
    part.append(frame.iloc[20:])
    added = view.extend()
    assert len(view) == before + added
    assert view.row_of.tolist() == frame.index[frame["is_reply"]].tolist()
    assert part.row(25)["request"] == frame.loc[25, "request"]


def test_two_captures_merged_are_in_time_order(captures: tuple[Path, Path]) -> None:
    frames = [load(p) for p in captures]
    parts = [part_of("a", frames[0]), part_of("b", frames[1])]
    view = RecordView(parts, [0, 1])
    times = view.times()
    assert len(view) == sum(len(f) for f in frames)
    assert np.all(np.diff(times) >= 0)
    assert view.position_of(1, 0) is not None
    assert view.locate(view.position_of(1, 0)) == (1, 0)
    start = int(frames[1]["ts_ns"].iloc[0])
    position = view.nearest_time(start)
    assert times[position] == start and times[position - 1] < start


def test_the_reply_of_a_request_is_found(source: Path) -> None:
    frame = load(source)
    part = part_of("s", frame)
    reply = int(frame.index[frame["request"] == "GET_FEATURES"][1])
    request = int(frame.loc[reply, "reply_to"])
    assert part.reply_of(request) == reply
    assert part.reply_of(reply) is None


def test_the_first_records_of_a_big_file_come_without_reading_all_of_it(tmp_path: Path) -> None:
    path = write(tmp_path / "big.pcapng", source_records() * 40)
    frame, whole, _ = read_prefix(path, max_bytes=8192)
    full = load(path)
    assert not whole
    assert 0 < len(frame) < len(full)
    assert frame["request"].astype(str).tolist() == full["request"].astype(str).tolist()[: len(frame)]
    small, whole, warnings = read_prefix(path, max_bytes=path.stat().st_size + 1)
    assert whole and len(small) == len(full) and warnings == []


def test_a_record_line_has_every_column(source: Path) -> None:
    frame = load(source)
    reply = int(frame.index[frame["request"] == "GET_FEATURES"][1])
    line = cells(frame.iloc[reply].to_dict(), reply + 1, int(frame["ts_ns"].iloc[0]), "1:")
    assert line.texts == (
        f"1:{reply + 1}",
        "0.000150",
        "#1",
        "main",
        "B→F",
        "GET_FEATURES",
        "reply features=0x174000000",
        "50µs",
    )


def test_narrow_lists_drop_columns_before_the_summary_gets_unreadable() -> None:
    wide = [c.name for _, c, _ in layout(120, 5)]
    narrow_list = [c.name for _, c, _ in layout(60, 5)]
    assert wide == [c.name for c in COLUMNS]
    assert narrow_list == ["no", "time", "dir", "request", "summary"]
    assert sum(w for _, _, w in layout(60, 5)) + len(narrow_list) - 1 == 60
