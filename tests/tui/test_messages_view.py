"""The Messages view driven with keys and the mouse: list, detail tree, hex highlight, filter, marks, go to."""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot
from tui_pilot import drive, settle

from dissectors.fieldmap import field_spans
from vutrace.loader import load
from vutrace.tui.app import VutraceApp
from vutrace.tui.widgets.detail_tree import DetailTree
from vutrace.tui.widgets.filter_bar import FilterBar
from vutrace.tui.widgets.hex_view import HexView
from vutrace.tui.widgets.message_list import MessageList


def the_list(app: VutraceApp) -> MessageList:
    return app.main.panes[0].list


def requests(app: VutraceApp) -> list[str]:
    listing = the_list(app)
    assert listing.view is not None
    return [str(listing.view.row(i)["request"]) for i in range(len(listing.view))]


def test_the_list_shows_every_record_and_the_keys_move_the_cursor(source: Path) -> None:
    app = VutraceApp([source])
    frame = load(source)

    async def script(pilot: Pilot) -> None:
        listing = the_list(app)
        assert len(listing.view) == len(frame)
        assert app.focused is listing
        await pilot.press("down", "down", "j")
        assert listing.current == (0, 3)
        await pilot.press("k")
        assert listing.current == (0, 2)
        await pilot.press("end")
        assert listing.current == (0, len(frame) - 1)
        await pilot.press("home")
        assert listing.current == (0, 0)
        await pilot.press("pagedown")
        assert listing.current[1] == listing.page

    drive(app, script)


def test_a_click_selects_the_line_under_the_mouse(source: Path) -> None:
    app = VutraceApp([source])

    async def script(pilot: Pilot) -> None:
        listing = the_list(app)
        await pilot.click(listing, offset=(20, 4))
        await pilot.pause()
        assert listing.current == (0, 3)

    drive(app, script)


def test_the_detail_tree_names_the_feature_bits_of_the_selected_message(source: Path) -> None:
    app = VutraceApp([source])
    frame = load(source)
    row = int(frame.index[(frame["request"] == "GET_FEATURES") & frame["is_reply"]][0])

    async def script(pilot: Pilot) -> None:
        the_list(app).move_to(row)
        await pilot.pause()
        labels = [str(node.label) for node in app.main.query_one(DetailTree).root.children]
        assert labels[0].startswith(f"Record {row + 1}: conn #1, main, back-end → front-end")
        payload = next(n for n in app.main.query_one(DetailTree).root.children if str(n.label) == "Payload")
        features = payload.children[0]
        assert str(features.label) == "features: 0x174000000 (5 bits)"
        assert [str(c.label) for c in features.children][:2] == ["bit 26: LOG_ALL", "bit 28: RING_INDIRECT_DESC"]

    drive(app, script)


def test_moving_onto_a_field_highlights_its_bytes(source: Path) -> None:
    app = VutraceApp([source])
    frame = load(source)
    row = int(frame.index[frame["request"] == "SET_MEM_TABLE"][0])
    raw = frame.loc[row, "raw"]
    spans = {s.name: (s.start, s.end) for s in field_spans(raw)}

    async def script(pilot: Pilot) -> None:
        the_list(app).move_to(row)
        await pilot.pause()
        tree, hex_view = app.main.query_one(DetailTree), app.main.query_one(HexView)
        assert hex_view.data == raw
        await pilot.press("tab")
        assert app.focused is tree
        payload = next(n for n in tree.root.children if str(n.label) == "Payload")
        regions = next(n for n in payload.children if str(n.label).startswith("regions"))
        tree.move_cursor(regions.children[2])
        await pilot.pause()
        assert hex_view.highlight == spans["regions[1]"] == (52, 84)
        tree.move_cursor(payload.children[0])
        await pilot.pause()
        assert hex_view.highlight == spans["num_regions"]

    drive(app, script)


def test_the_filter_turns_red_then_green_as_it_is_typed_and_enter_applies_it(source: Path) -> None:
    app = VutraceApp([source])
    frame = load(source)
    expected = frame[(frame["channel"] == "main") & (frame["nfds"] > 0)]["request"].astype(str).tolist()

    async def script(pilot: Pilot) -> None:
        await pilot.press("slash")
        bar = app.main.query_one(FilterBar)
        assert app.focused is bar.input
        await pilot.press(*"nfds >")
        assert bar.valid is False
        await pilot.press("space", "0")
        assert bar.valid is True
        bar.input.insert_text_at_cursor(" and channel == 'main")
        await pilot.pause()
        assert bar.valid is False
        await pilot.press("'")
        assert bar.valid is True
        await pilot.press("enter")
        await settle(pilot)
        assert requests(app) == expected
        assert app.focused is the_list(app)
        assert f"{len(expected)}/{len(frame)} records" in app.status.text()

    drive(app, script)


def test_a_bad_filter_is_not_applied_and_says_why(source: Path) -> None:
    app = VutraceApp([source])

    async def script(pilot: Pilot) -> None:
        await pilot.press("slash")
        app.main.query_one(FilterBar).input.value = "no_such_column == 1"
        await pilot.press("enter")
        await settle(pilot)
        bar = app.main.query_one(FilterBar)
        assert bar.valid is False
        assert "no_such_column" in str(bar.query_one("#filter-error").render())
        assert app.expression == ""

    drive(app, script)


def test_escape_leaves_the_filter_box_and_keeps_the_applied_filter(source: Path) -> None:
    app = VutraceApp([source])

    async def script(pilot: Pilot) -> None:
        await pilot.press("slash", *"is_reply", "enter")
        await settle(pilot)
        shown = requests(app)
        await pilot.press("slash", *" and", "escape")
        await settle(pilot)
        assert app.focused is the_list(app)
        assert app.main.query_one(FilterBar).input.value == "is_reply"
        assert requests(app) == shown

    drive(app, script)


def test_a_mark_brings_the_cursor_back(source: Path) -> None:
    app = VutraceApp([source])

    async def script(pilot: Pilot) -> None:
        await pilot.press("down", "down", "down", "m", "a")
        await pilot.press("end")
        assert the_list(app).current != (0, 3)
        await pilot.press("apostrophe", "a")
        assert the_list(app).current == (0, 3)

    drive(app, script)


def test_go_to_a_time_or_a_record_number(source: Path) -> None:
    app = VutraceApp([source])
    frame = load(source)
    t0 = int(frame["ts_ns"].iloc[0])
    after = int(frame.index[frame["ts_ns"] >= t0 + 1_000_000][0])

    async def script(pilot: Pilot) -> None:
        await pilot.press("ctrl+g", *"0.001", "enter")
        await pilot.pause()
        assert the_list(app).current == (0, after)
        await pilot.press("ctrl+g", *"#7", "enter")
        await pilot.pause()
        assert the_list(app).current == (0, 6)

    drive(app, script)


def test_the_help_screen_lists_the_keys_and_closes(source: Path) -> None:
    app = VutraceApp([source])

    async def script(pilot: Pilot) -> None:
        await pilot.press("question_mark")
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        assert app.screen is app.main

    drive(app, script)


def test_the_command_palette_runs_vutrace_commands(source: Path) -> None:
    app = VutraceApp([source])

    async def script(pilot: Pilot) -> None:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"show timeline")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert app.main.query_one("TabbedContent").active == "timeline"

    drive(app, script)


def test_a_file_that_is_not_a_capture_is_reported(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello, this is not pcapng\n" * 10)
    app = VutraceApp([bogus])

    async def script(pilot: Pilot) -> None:
        notes = [n.message for n in app._notifications]
        assert any("notes.txt" in text or "pcapng" in text for text in notes)
        assert len(the_list(app).view) == 0

    drive(app, script)


def test_a_cut_off_capture_opens_with_a_warning(tmp_path: Path, source: Path) -> None:
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(source.read_bytes()[:-10])
    app = VutraceApp([cut])

    async def script(pilot: Pilot) -> None:
        notes = [n.message for n in app._notifications]
        assert any("incomplete block" in text for text in notes)
        assert len(the_list(app).view) == len(load(source)) - 1

    drive(app, script)
