"""The views of connections: the conversation under a display filter, the Connections table, the Ladder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from textual.pilot import Pilot
from textual.widgets import DataTable, Static, TabbedContent
from tui_captures import Recording, handshake, write
from tui_pilot import drive, settle

from vutrace.loader import load
from vutrace.tui.app import VutraceApp
from vutrace.tui.ladder import LadderView, lanes
from vutrace.tui.messages import CaptureLoaded
from vutrace.tui.widgets.connections import ConnectionsPanel
from vutrace.tui.widgets.conversation import ConversationList, ConversationPanel
from vutrace.tui.widgets.filter_bar import FilterBar
from vutrace.tui.widgets.ladder import LadderList, LadderPanel

ENABLES = "request == 'SET_VRING_ENABLE'"


def active(app: VutraceApp) -> str:
    return str(app.main.query_one(TabbedContent).active)


def heading(panel) -> str:
    return str(panel.query_one(".follow-heading", Static).render())


def shown_rows(listing) -> list[int]:
    return [listing.view.locate(i)[1] for i in range(len(listing.view))]


async def apply_filter(pilot: Pilot, expression: str) -> None:
    app: VutraceApp = pilot.app  # type: ignore[assignment]
    await pilot.press("slash")
    app.main.query_one(FilterBar).input.value = expression
    await pilot.press("enter")
    await settle(pilot)


def test_the_conversation_shows_only_what_the_filter_shows_and_a_shows_everything(source: Path) -> None:
    app = VutraceApp([source])
    frame = load(source)
    enables = frame.index[(frame["request"] == "SET_VRING_ENABLE") & (frame["conn"] == 1)].tolist()
    everything = frame.index[frame["conn"] == 1].tolist()

    async def script(pilot: Pilot) -> None:
        await apply_filter(pilot, ENABLES)
        await pilot.press("f")
        await settle(pilot)
        panel = app.main.query_one(ConversationPanel)
        listing = panel.query_one(ConversationList)
        assert active(app) == "conversation"
        assert shown_rows(listing) == enables
        assert f"filtered: {ENABLES}, {len(enables)} of {len(everything)} records" in heading(panel)
        await pilot.press("a")
        assert shown_rows(listing) == everything
        assert f"all {len(everything)} records" in heading(panel)
        await pilot.press("a")
        assert shown_rows(listing) == enables

    drive(app, script)


def test_a_filter_applied_or_cleared_on_the_conversation_changes_it_in_place(source: Path) -> None:
    app = VutraceApp([source])
    frame = load(source)
    backend = frame.index[frame["channel"] == "backend"].tolist()

    async def script(pilot: Pilot) -> None:
        await pilot.press("f")
        await settle(pilot)
        panel = app.main.query_one(ConversationPanel)
        listing = panel.query_one(ConversationList)
        await apply_filter(pilot, "channel == 'backend'")
        assert active(app) == "conversation"
        assert app.focused is listing
        assert shown_rows(listing) == backend
        await apply_filter(pilot, "")
        assert active(app) == "conversation"
        assert shown_rows(listing) == frame.index.tolist()
        assert "filtered" not in heading(panel)

    drive(app, script)


def test_the_filter_and_the_channel_choice_narrow_the_conversation_together(source: Path) -> None:
    app = VutraceApp([source])
    frame = load(source)
    main = frame[frame["channel"] == "main"]
    replies = main.index[main["is_reply"]].tolist()

    async def script(pilot: Pilot) -> None:
        await apply_filter(pilot, "is_reply")
        await pilot.press("f")
        await settle(pilot)
        await pilot.press("c")
        panel = app.main.query_one(ConversationPanel)
        assert shown_rows(panel.query_one(ConversationList)) == replies
        assert f"channel main\nfiltered: is_reply, {len(replies)} of {len(main)} records" in heading(panel)

    drive(app, script)


def connections_table(app: VutraceApp) -> DataTable:
    return app.main.query_one(ConnectionsPanel).query_one(DataTable)


def cells(table: DataTable, row: int) -> dict[str, str]:
    titles = [str(c.label) for c in table.ordered_columns]
    return dict(zip(titles, (str(c) for c in table.get_row_at(row)), strict=True))


def test_the_connections_table_has_a_row_per_connection_of_each_capture(captures: tuple[Path, Path]) -> None:
    app = VutraceApp(list(captures))
    frames = [load(p) for p in captures]

    async def script(pilot: Pilot) -> None:
        await pilot.press("7")
        await settle(pilot)
        table = connections_table(app)
        assert app.focused is table
        assert table.row_count == 2
        sides = zip(frames, ("source", "destination"), ("SAVE", "LOAD"), strict=True)
        for row, (frame, role, state) in enumerate(sides):
            main = frame[frame["channel"] == "main"]
            found = cells(table, row)
            assert found["capture"] == role
            assert found["F→B"] == str(int((main["sender"] == "frontend").sum()))
            assert found["B→F"] == str(int((main["sender"] == "backend").sum()))
            assert found["back"] == str(int((frame["channel"] == "backend").sum()))
            assert found["state"] == f"{state} 12 KiB"
            assert found["E/W"] == "1/0"
        assert cells(table, 0)["end"] == "eof"
        assert cells(table, 1)["end"] == "-"
        detail = str(app.main.query_one("#connections-detail", Static).render())
        assert "SAVE 12 KiB in 3 chunks" in detail and "ended by disconnect: eof" in detail

    drive(app, script)


def test_enter_on_a_connection_opens_its_conversation_and_l_its_ladder(captures: tuple[Path, Path]) -> None:
    app = VutraceApp(list(captures))
    destination = load(captures[1])

    async def script(pilot: Pilot) -> None:
        await pilot.press("7")
        await settle(pilot)
        await pilot.press("down", "enter")
        await settle(pilot)
        assert active(app) == "conversation"
        conversation = app.main.query_one(ConversationPanel)
        assert (conversation.part, conversation.conn) == (1, 1)
        assert len(conversation.query_one(ConversationList).view) == len(destination)
        await pilot.press("7")
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        assert active(app) == "ladder"
        ladder = app.main.query_one(LadderPanel)
        assert (ladder.part, ladder.conn) == (1, 1)
        assert heading(ladder).startswith("destination.pcapng connection #1")

    drive(app, script)


def test_the_connections_sort_by_key_by_click_and_in_reverse(captures: tuple[Path, Path]) -> None:
    app = VutraceApp(list(captures))
    frames = [load(p) for p in captures]
    to_backend = [int(((f["channel"] == "main") & (f["sender"] == "frontend")).sum()) for f in frames]

    async def script(pilot: Pilot) -> None:
        await pilot.press("7")
        await settle(pilot)
        table = connections_table(app)
        column = [c.label.plain for c in table.ordered_columns].index("F→B")
        x = sum(c.get_render_width(table) for c in table.ordered_columns[:column]) + 1
        await pilot.click(table, offset=(x, 0))
        await settle(pilot)
        ordered = [int(cells(table, row)["F→B"]) for row in range(2)]
        assert ordered == sorted(to_backend)
        await pilot.press("r")
        assert [int(cells(table, row)["F→B"]) for row in range(2)] == sorted(to_backend, reverse=True)
        await pilot.press("s")
        assert app.main.query_one(ConnectionsPanel).sort_by == "B→F"
        assert "sorted by B→F ↑" in str(app.main.query_one("#connections-heading", Static).render())

    drive(app, script)


def test_the_ladder_draws_requests_replies_side_channels_and_one_line_per_state_transfer(source: Path) -> None:
    app = VutraceApp([source])
    frame = load(source)
    chunks = frame.index[frame["channel"] == "state"].tolist()

    async def script(pilot: Pilot) -> None:
        await pilot.press("8")
        await settle(pilot)
        listing = app.main.query_one(LadderList)
        assert active(app) == "ladder" and app.focused is listing
        view = listing.view
        assert isinstance(view, LadderView)
        assert len(view) == len(frame) - len(chunks) + 1 and view.records == len(frame)
        where = lanes(listing.scrollable_content_region.width, True)

        async def line(request: str, reply: bool = False) -> str:
            """The line on screen of the first record of ``request``."""
            position = next(
                i
                for i in range(len(view))
                if view.row(i)["request"] == request and bool(view.row(i)["is_reply"]) == reply
            )
            listing.move_to(position)
            await pilot.pause()
            return listing.render_line(position - round(listing.scroll_y) + 1).text

        request = await line("GET_FEATURES")
        assert request[where.side] == "┼" and "─ GET_FEATURES " in request and request[where.backend - 1] == "▶"
        reply = await line("GET_FEATURES", reply=True)
        assert reply[where.frontend + 1] == "◀" and "GET_FEATURES reply features=0x174000000" in reply
        backend_request = await line("CONFIG_CHANGE_MSG")
        assert backend_request[where.side + 1] == "◀" and backend_request[where.frontend + 1] == " "
        backend_reply = await line("CONFIG_CHANGE_MSG", reply=True)
        assert backend_reply[where.backend - 1] == "▶" and "┄" in backend_reply
        state = await line("STATE_CHUNK")
        assert "state SAVE 12 KiB in 3 chunks" in state and state[where.side + 1] == "◀" and "═" in state
        assert (await line("disconnect"))[where.frontend :].startswith("├╌ disconnect")
        listing.move_to(next(i for i in range(len(view)) if view.locate(i)[1] == chunks[0]))
        await pilot.press("enter")
        await settle(pilot)
        assert active(app) == "messages"
        assert app.main.panes[0].list.current == (0, chunks[0])

    drive(app, script)


def test_a_connection_without_side_channels_has_two_lanes(tmp_path: Path) -> None:
    recording = Recording()
    handshake(recording)
    app = VutraceApp([write(tmp_path / "plain.pcapng", recording.records)])

    async def script(pilot: Pilot) -> None:
        await pilot.press("8")
        await settle(pilot)
        listing = app.main.query_one(LadderList)
        assert not listing.view.side
        head = listing.render_line(0).text
        assert "front-end" in head and "back-end" in head and "back-ch/state" not in head

    drive(app, script)


def test_the_ladder_follows_the_filter_and_steps_through_connections(tmp_path: Path) -> None:
    first, second = Recording(conn=1), Recording(conn=2, start_ns=1_800_000_001_000_000_000)
    handshake(first)
    handshake(second)
    path = write(tmp_path / "two.pcapng", first.records + second.records)
    frame = load(path)
    app = VutraceApp([path])

    async def script(pilot: Pilot) -> None:
        await apply_filter(pilot, "is_reply")
        await pilot.press("8")
        await settle(pilot)
        panel = app.main.query_one(LadderPanel)
        listing = panel.query_one(LadderList)
        assert shown_rows(listing) == frame.index[frame["is_reply"] & (frame["conn"] == 1)].tolist()
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert panel.conn == 2
        assert shown_rows(listing) == frame.index[frame["is_reply"] & (frame["conn"] == 2)].tolist()
        await pilot.press("2")
        await settle(pilot)
        assert app.main.query_one(ConversationPanel).conn == 2

    drive(app, script)


def test_a_ladder_of_100k_records_formats_only_the_lines_on_screen(source: Path) -> None:
    app = VutraceApp([source])
    frame = load(source)
    copies = 1700
    span = int(frame["ts_ns"].iloc[-1] - frame["ts_ns"].iloc[0]) + 1
    state = frame["channel"] == "state"
    copy = np.repeat(np.arange(copies), len(frame))
    big = frame.iloc[np.tile(np.arange(len(frame)), copies)].reset_index(drop=True)
    big["ts_ns"] += copy * span
    big["reply_to"] += copy * len(frame)
    big["stream"] = np.where(big["stream"] > 0, big["stream"] + copy, 0)
    assert len(big) > 100_000

    async def script(pilot: Pilot) -> None:
        app.post_message(CaptureLoaded(0, big, True, []))
        await settle(pilot)
        await pilot.press("8")
        await settle(pilot)
        listing = app.main.query_one(LadderList)
        view = listing.view
        assert view.records == len(big)
        assert len(view) == len(big) - copies * (int(state.sum()) - 1)
        assert len(view.transfers) == copies
        await pilot.press("end")
        await settle(pilot)
        assert listing.current == (0, len(big) - 1)
        assert len(listing._lines) <= 3 * listing.page
        assert len(app.parts[0]._blocks) <= 4

    drive(app, script)


def test_a_big_capture_replaces_the_first_records_without_losing_the_followed_connection(source: Path) -> None:
    app = VutraceApp([source])
    frame = load(source)

    async def script(pilot: Pilot) -> None:
        await pilot.press("f")
        await settle(pilot)
        listing = app.main.query_one(ConversationList)
        listing.move_to(10)
        kept = listing.current
        app.post_message(CaptureLoaded(0, pd.concat([frame, frame.iloc[:0]]), True, []))
        await settle(pilot)
        assert listing.current == kept

    drive(app, script)
