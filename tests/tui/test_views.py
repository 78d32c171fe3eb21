"""The Conversation, Timeline, Throughput, Session and Checks views, and two captures at once."""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable, TabbedContent
from textual_plotext import PlotextPlot
from tui_pilot import drive, settle

from vutrace.loader import load
from vutrace.tui.app import VutraceApp
from vutrace.tui.widgets.checks import ChecksPanel
from vutrace.tui.widgets.conversation import ConversationList, ConversationPanel, conversation_line
from vutrace.tui.widgets.session import SessionPanel
from vutrace.tui.widgets.throughput import ThroughputPanel
from vutrace.tui.widgets.timeline import TimelineChart, TimelinePanel


def active(app: VutraceApp) -> str:
    return str(app.main.query_one(TabbedContent).active)


def listed(listing) -> list[tuple[int, int]]:
    return [listing.view.locate(i) for i in range(len(listing.view))]


def test_follow_shows_the_connection_as_a_conversation_with_every_channel(source: Path) -> None:
    app = VutraceApp([source])
    frame = load(source)

    async def script(pilot: Pilot) -> None:
        await pilot.press("down", "down", "f")
        await settle(pilot)
        assert active(app) == "conversation"
        listing = app.main.query_one(ConversationList)
        assert app.focused is listing
        assert [row for _, row in listed(listing)] == frame.index[frame["conn"] == 1].tolist()
        assert {str(listing.view.row(i)["channel"]) for i in range(len(listing.view))} == {
            "main",
            "backend",
            "state",
            "event",
        }
        await pilot.press("c", "c")
        await settle(pilot)
        assert [row for _, row in listed(listing)] == frame.index[frame["channel"] == "backend"].tolist()
        await pilot.press("enter")
        assert active(app) == "messages"
        assert app.main.panes[0].list.current == listed(listing)[listing.cursor]

    drive(app, script)


def test_front_end_speaks_on_the_left_and_the_back_end_on_the_right(source: Path) -> None:
    app = VutraceApp([source])

    async def script(pilot: Pilot) -> None:
        await pilot.press("f")
        await settle(pilot)
        listing = app.main.query_one(ConversationList)
        request = next(i for i in range(len(listing.view)) if listing.view.row(i)["request"] == "GET_FEATURES")
        lines = [conversation_line(listing._cells(*listing.view.locate(i)), 120) for i in (request, request + 1)]
        divider = lines[0].index("│")
        assert lines[0][:divider].rstrip().endswith("GET_FEATURES ─▶")
        assert lines[1][divider:].startswith("│◀─ GET_FEATURES reply features=0x174000000")

    drive(app, script)


def test_the_timeline_draws_the_phases_of_both_sides_and_enter_shows_a_phase(captures: tuple[Path, Path]) -> None:
    app = VutraceApp(list(captures))

    async def script(pilot: Pilot) -> None:
        await pilot.press("3")
        await settle(pilot)
        panel = app.main.query_one(TimelinePanel)
        chart = panel.query_one(TimelineChart)
        assert [s.role for s in chart.sides] == ["source", "destination"]
        text = chart.render().plain
        assert "source.pcapng (source)" in text and "destination.pcapng (destination)" in text
        migration_rows = [line for line in text.splitlines() if line.startswith(" migration")]
        assert len(migration_rows) == 2 and all("state" in row and "dirty" not in row for row in migration_rows[1:])
        assert "dirty" in migration_rows[0] and "state" in migration_rows[0]
        summary = str(panel.query_one("#timeline-summary").render())
        assert "downtime 2 ms" in summary and "ring 1: base 42 on the source, 42 on the destination (same)" in summary
        table = panel.query_one(DataTable)
        assert app.focused is table
        phases = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        index = phases.index("state transfer")
        table.move_cursor(row=index)
        await pilot.press("enter")
        await settle(pilot)
        assert active(app) == "messages"
        current = app.main.panes[0].list.current
        assert current == (0, 49)
        assert app.parts[0].row(49)["request"] == "SET_DEVICE_STATE_FD"

    drive(app, script, size=(100, 40))


def test_the_throughput_view_lists_the_state_streams_and_plots_their_rate(captures: tuple[Path, Path]) -> None:
    app = VutraceApp(list(captures))

    async def script(pilot: Pilot) -> None:
        await pilot.press("4")
        await settle(pilot)
        panel = app.main.query_one(ThroughputPanel)
        assert [(s.direction, s.total, len(s.chunks)) for _, s in panel.streams] == [
            ("SAVE", 12288, 3),
            ("LOAD", 12288, 3),
        ]
        table = panel.query_one(DataTable)
        assert [str(c) for c in table.get_row_at(0)][:6] == ["source.pcapng", "#1", "1", "SAVE", "12 KiB", "3"]
        table.move_cursor(row=1)
        await pilot.pause()
        assert panel.plotted == 1
        assert "destination.pcapng stream 1 LOAD" in panel.query_one(PlotextPlot).render().plain

    drive(app, script, size=(100, 40))


def test_the_session_view_shows_features_memory_and_rings_of_each_connection(captures: tuple[Path, Path]) -> None:
    app = VutraceApp(list(captures))

    async def script(pilot: Pilot) -> None:
        await pilot.press("5")
        await settle(pilot)
        panel = app.main.query_one(SessionPanel)
        summary = str(panel.query_one(".session-summary").render())
        assert summary.startswith("source.pcapng connection #1 (1 of 2")
        assert "RING_INDIRECT_DESC" in summary and "REPLY_ACK" in summary
        regions, rings, _ = panel.query(DataTable)
        assert [str(c) for c in regions.get_row_at(1)][:3] == ["0x100000000", "0x40000000", "0x7f8000000000"]
        assert [str(c) for c in rings.get_row_at(1)][:4] == ["1", "256", "0", "42"]
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert str(panel.query_one(".session-summary").render()).startswith("destination.pcapng connection #1")
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert str(panel.query_one(".session-summary").render()).startswith("source.pcapng connection #1")

    drive(app, script, size=(100, 40))


def test_enter_on_a_finding_shows_its_message(captures: tuple[Path, Path]) -> None:
    app = VutraceApp(list(captures), merge=True)

    async def script(pilot: Pilot) -> None:
        await pilot.press("6")
        await settle(pilot)
        panel = app.main.query_one(ChecksPanel)
        table = panel.query_one(DataTable)
        assert table.row_count == 2
        assert [str(c) for c in table.get_row_at(1)][:3] == ["error", "gate.not-negotiated", "destination.pcapng"]
        table.move_cursor(row=1)
        await pilot.press("enter")
        await settle(pilot)
        assert active(app) == "messages"
        part, row = app.main.panes[0].list.current
        assert part == 1 and app.parts[1].row(row)["request"] == "GET_STATUS"

    drive(app, script)


def test_two_captures_side_by_side_or_merged_by_time(captures: tuple[Path, Path]) -> None:
    app = VutraceApp(list(captures))
    frames = [load(p) for p in captures]

    async def script(pilot: Pilot) -> None:
        panes = app.main.panes
        assert [len(p.view) for p in panes] == [len(f) for f in frames]
        await pilot.press("vertical_line")
        await settle(pilot)
        (merged,) = app.main.panes
        order = listed(merged.list)
        assert len(order) == sum(len(f) for f in frames)
        times = [int(frames[part].loc[row, "ts_ns"]) for part, row in order]
        assert times == sorted(times)
        assert {part for part, _ in order} == {0, 1}
        assert merged.list._cells(*order[-1]).texts[0].startswith("2:")

    drive(app, script, size=(120, 30))


def test_analysis_of_a_very_big_capture_waits_to_be_asked(source: Path, monkeypatch) -> None:
    monkeypatch.setattr("vutrace.tui.results.ANALYSIS_LIMIT", 10)
    app = VutraceApp([source])

    async def script(pilot: Pilot) -> None:
        await pilot.press("3")
        await settle(pilot)
        panel = app.main.query_one(TimelinePanel)
        assert "Press a to analyse anyway" in str(panel.query_one(".analysis-note").render())
        assert not panel.query(TimelineChart)
        panel.action_analyse_anyway()
        await settle(pilot)
        assert panel.query_one(TimelineChart).sides

    drive(app, script)


def test_the_conversation_steps_through_connections(tmp_path: Path) -> None:
    from tui_captures import Recording, handshake, write

    first, second = Recording(conn=1), Recording(conn=2, start_ns=1_800_000_001_000_000_000)
    handshake(first)
    handshake(second)
    path = write(tmp_path / "two.pcapng", first.records + second.records)
    app = VutraceApp([path])

    async def script(pilot: Pilot) -> None:
        await pilot.press("f")
        await settle(pilot)
        panel = app.main.query_one(ConversationPanel)
        assert panel.conn == 1
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert panel.conn == 2
        listing = panel.query_one(ConversationList)
        assert {int(listing.view.row(i)["conn"]) for i in range(len(listing.view))} == {2}

    drive(app, script)


def test_the_session_view_opens_on_the_connection_of_the_selected_record(captures: tuple[Path, Path]) -> None:
    app = VutraceApp(list(captures), merge=True)

    async def script(pilot: Pilot) -> None:
        listing = app.main.panes[0].list
        listing.move_to(len(listing.view) - 1)
        assert listing.current[0] == 1
        await pilot.press("5")
        await settle(pilot)
        summary = str(app.main.query_one(SessionPanel).query_one(".session-summary").render())
        assert summary.startswith("destination.pcapng connection #1 (2 of 2")

    drive(app, script)


def test_a_pane_can_be_maximized_and_restored(source: Path) -> None:
    app = VutraceApp([source])

    async def script(pilot: Pilot) -> None:
        await pilot.press("tab", "backslash")
        assert app.main.maximized is app.main.query_one("DetailTree")
        await pilot.press("escape")
        assert app.main.maximized is None

    drive(app, script)
