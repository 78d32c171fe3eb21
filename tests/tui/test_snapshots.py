"""Screenshots of the main screens at 80×24 (and two captures at 120×30), compared with the accepted SVGs.

Update them after a deliberate change with ``pytest tests/tui/test_snapshots.py --snapshot-update``;
docs/tui.md shows these files.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.pilot import Pilot
from tui_pilot import settle, still

from vutrace.tui.app import VutraceApp
from vutrace.tui.widgets.detail_tree import DetailTree
from vutrace.tui.widgets.filter_bar import FilterBar

Script = Callable[[Pilot], Awaitable[None]]


def after(*keys: str, then: Script | None = None) -> Script:
    """A ``run_before``: wait for the captures to load, press ``keys``, run ``then``, wait again."""

    async def run_before(pilot: Pilot) -> None:
        await settle(pilot)
        await pilot.press(*keys)
        await settle(pilot)
        if then is not None:
            await then(pilot)
            await settle(pilot)
        still(pilot.app)  # type: ignore[arg-type]
        await pilot.pause()

    return run_before


async def open_regions(pilot: Pilot) -> None:
    """The cursor on SET_MEM_TABLE and, in the detail tree, on its second memory region."""
    app: VutraceApp = pilot.app  # type: ignore[assignment]
    listing = app.main.panes[0].list
    row = next(i for i in range(len(listing.view)) if listing.view.row(i)["request"] == "SET_MEM_TABLE")
    listing.move_to(row)
    await settle(pilot)
    await pilot.press("tab")
    tree = app.main.query_one(DetailTree)
    payload = next(n for n in tree.root.children if str(n.label) == "Payload")
    regions = next(n for n in payload.children if str(n.label).startswith("regions"))
    tree.move_cursor(regions.children[2])


def test_messages(snap_compare, source: Path) -> None:
    assert snap_compare(VutraceApp([source]), run_before=after(then=open_regions))


def test_messages_light_theme(snap_compare, source: Path) -> None:
    app = VutraceApp([source])
    app.theme = "textual-light"
    assert snap_compare(app, run_before=after(then=open_regions))


def test_filter_being_typed(snap_compare, source: Path) -> None:
    assert snap_compare(VutraceApp([source]), run_before=after("slash", *"nfds > 0 and chan"))


async def enter_filter(pilot: Pilot) -> None:
    app: VutraceApp = pilot.app  # type: ignore[assignment]
    await pilot.press("slash")
    app.main.query_one(FilterBar).input.value = "request == 'SET_VRING_ENABLE'"
    await pilot.press("enter")


def test_filter_applied(snap_compare, source: Path) -> None:
    assert snap_compare(VutraceApp([source]), run_before=after(then=enter_filter))


def test_conversation(snap_compare, source: Path) -> None:
    assert snap_compare(VutraceApp([source]), run_before=after("f"))


def test_timeline(snap_compare, captures: tuple[Path, Path]) -> None:
    assert snap_compare(VutraceApp(list(captures)), run_before=after("3"))


def test_throughput(snap_compare, captures: tuple[Path, Path]) -> None:
    assert snap_compare(VutraceApp(list(captures)), run_before=after("4"))


def test_session(snap_compare, source: Path) -> None:
    assert snap_compare(VutraceApp([source]), run_before=after("5"))


def test_checks(snap_compare, captures: tuple[Path, Path]) -> None:
    assert snap_compare(VutraceApp(list(captures)), run_before=after("6"))


def test_two_captures_side_by_side(snap_compare, captures: tuple[Path, Path]) -> None:
    assert snap_compare(VutraceApp(list(captures)), run_before=after(), terminal_size=(120, 30))


def test_two_captures_merged(snap_compare, captures: tuple[Path, Path]) -> None:
    assert snap_compare(VutraceApp(list(captures), merge=True), run_before=after("end"))


def test_help(snap_compare, source: Path) -> None:
    assert snap_compare(VutraceApp([source]), run_before=after("question_mark"))


def test_conversation_filtered(snap_compare, source: Path) -> None:
    assert snap_compare(VutraceApp([source]), run_before=after(then=enter_filter_and_follow))


async def enter_filter_and_follow(pilot: Pilot) -> None:
    await enter_filter(pilot)
    await settle(pilot)
    await pilot.press("f")


def test_connections(snap_compare, captures: tuple[Path, Path]) -> None:
    assert snap_compare(VutraceApp(list(captures)), run_before=after("7"))


def test_ladder(snap_compare, source: Path) -> None:
    """The end of the source's connection, the cursor on its device-state transfer."""
    assert snap_compare(VutraceApp([source]), run_before=after("8", "end", "up", "up", "up", "up"))
