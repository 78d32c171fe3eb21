"""The vutrace TUI: open one or two captures (or follow one being written) and explore them.

``VutraceApp(paths)`` loads each capture in a worker thread (the first records at once, then the
whole file with progress), or follows captures being written (``live=True``): new records show
within half a second. Views, filters and jumps between views are handled here; the widgets
only draw.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import TabbedContent
from textual.worker import get_current_worker

from vutrace.capture.blocks import CaptureError
from vutrace.tui.data import Part, RecordView, check_filter
from vutrace.tui.messages import (
    CaptureLoaded,
    FilterSubmitted,
    FollowConnection,
    JumpToRecord,
    LoadFailed,
    LoadProgress,
    RecordHighlighted,
    RecordsAppended,
)
from vutrace.tui.results import Results, results_for, version
from vutrace.tui.rows import seconds
from vutrace.tui.screens.goto import GotoScreen, Target
from vutrace.tui.screens.help import HelpScreen
from vutrace.tui.screens.main import TABS, MainScreen
from vutrace.tui.sources import PREFIX_BYTES, LiveCapture, load_file, read_prefix
from vutrace.tui.widgets.analysis_panel import AnalysisPanel
from vutrace.tui.widgets.filter_bar import FilterBar
from vutrace.tui.widgets.followed import FollowPanel
from vutrace.tui.widgets.message_list import MessageList
from vutrace.tui.widgets.session import SessionPanel
from vutrace.tui.widgets.status_bar import Status, StatusBar

POLL_SECONDS = 0.1
"""How often a live capture is read (new records show within half a second)."""
ANALYSIS_INTERVAL = 2.0
"""Seconds between two analyses of a growing capture while an analysis view is shown."""
FREEZE_ROWS = 100_000
"""A capture this big leaves the garbage collector many objects to walk: once it is loaded they are moved out
of its sight (gc.freeze), else a collection pauses the UI for tens of milliseconds now and then."""
FIRST_SCREEN_WAIT = 2.0
"""Seconds the full load of a big capture waits for its first records to be drawn."""


def capture_labels(paths: Sequence[Path]) -> list[str]:
    """File names, or whole paths when two files have the same name."""
    names = [p.name for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


class VutraceApp(App[None]):
    """Messages, conversation, timeline, throughput, session, checks, connections and ladder views of one or two
    captures."""

    CSS_PATH = "vutrace.tcss"
    TITLE = "vutrace"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark,f1", "help", "Help", tooltip="all the keys"),
        Binding("slash", "filter", "Filter", tooltip="display filter, as vutrace -Y"),
        Binding("f", "follow", "Follow", tooltip="the connection of the record under the cursor"),
        Binding("ctrl+g", "goto", "Go to", tooltip="a time or a record number"),
        Binding("vertical_line", "toggle_layout", "Merge/split", show=False),
        Binding("backslash", "maximize_pane", "Maximize", show=False),
        Binding("q", "quit", "Quit"),
        *(Binding(str(i + 1), f"tab('{tab}')", tab.capitalize(), show=False) for i, tab in enumerate(TABS)),
    ]

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        merge: bool = False,
        live: bool = False,
        prefix_bytes: int = PREFIX_BYTES,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        super().__init__()
        if not 1 <= len(paths) <= 2:
            raise ValueError("give one capture, or two (source and destination)")
        self.paths = [Path(p) for p in paths]
        labels = capture_labels(self.paths)
        self.parts = [Part(label, path, complete=live) for label, path in zip(labels, self.paths, strict=True)]
        self.tags = [f"{i + 1}:" for i in range(len(self.parts))] if len(self.parts) > 1 else []
        self.merge = merge
        self.live = live
        self.prefix_bytes = prefix_bytes
        self.poll_seconds = poll_seconds
        self.expression = ""
        self.followed: tuple[int, int] | None = None
        """(part, conn) of the connection the Conversation and Ladder views show, once one was chosen."""
        self.sources: list[LiveCapture] = []
        self.status = Status(labels, live=live)
        self._results: Results | None = None
        self._results_lock = threading.Lock()
        self._analysed_at = 0.0
        self._analysis_timer: Timer | None = None
        self._first_screen = threading.Event()
        """Set once records are on screen: the full load waits for it, so it does not slow the first screen."""
        self.main = MainScreen(self.status, self.check_filter)

    def get_default_screen(self) -> Screen:
        return self.main

    # -- data -----------------------------------------------------------------------------------

    def on_ready(self) -> None:
        self.rebuild_views()
        for panel in self._followers():
            panel.set_parts(self.parts, self.t0_ns, self.tags)
        if self.live:
            self.sources = [LiveCapture(path) for path in self.paths]
            self.set_interval(self.poll_seconds, self.poll_live)
        else:
            for index in range(len(self.parts)):
                self.load(index)
        self.update_status()

    def on_unmount(self) -> None:
        for source in self.sources:
            source.close()

    @work(thread=True, group="load")
    def load(self, index: int) -> None:
        path = self.paths[index]
        try:
            frame, whole, warnings = read_prefix(path, self.prefix_bytes)
            self.post_message(CaptureLoaded(index, frame, whole, warnings))
            if not whole:
                self._first_screen.wait(FIRST_SCREEN_WAIT)
                frame, warnings = load_file(path, lambda fraction: self.post_message(LoadProgress(index, fraction)))
                self.post_message(CaptureLoaded(index, frame, True, warnings))
        except CaptureError as error:
            self.post_message(LoadFailed(index, str(error)))

    @on(LoadProgress)
    def progress(self, message: LoadProgress) -> None:
        self.status.loading[self.parts[message.part].label] = message.fraction
        self.update_status()

    @on(CaptureLoaded)
    def loaded(self, message: CaptureLoaded) -> None:
        part = self.parts[message.part]
        part.replace(message.frame, message.complete)
        if message.complete:
            self.status.loading.pop(part.label, None)
            if len(part) >= FREEZE_ROWS:
                gc.freeze()
        else:
            self.status.loading[part.label] = 0.0
        for warning in message.warnings:
            self.notify(warning, severity="warning", timeout=8)
        for panel in self._followers():
            panel.set_parts(self.parts, self.t0_ns, self.tags)
            panel.invalidate()
        if self.followed is not None:
            self.show_followed()
        self.rebuild_views()
        self.data_changed()

    @on(LoadFailed)
    def load_failed(self, message: LoadFailed) -> None:
        self.status.loading.pop(self.parts[message.part].label, None)
        self.notify(message.error, title="cannot open the capture", severity="error", timeout=30)
        self.update_status()

    def poll_live(self) -> None:
        if not any(w.group == "poll" and w.is_running for w in self.workers):
            self.poll_sources()

    @work(thread=True, group="poll", exclusive=True)
    def poll_sources(self) -> None:
        for index, source in enumerate(self.sources):
            try:
                frame = source.poll()
            except CaptureError as error:
                source.close()
                self.post_message(LoadFailed(index, str(error)))
                continue
            if frame is not None:
                self.post_message(RecordsAppended(index, frame))

    @on(RecordsAppended)
    def appended(self, message: RecordsAppended) -> None:
        first = not len(self.parts[message.part])
        self.parts[message.part].append(message.frame)
        if first:
            for panel in self._followers():
                panel.set_parts(self.parts, self.t0_ns, self.tags)
            self.rebuild_views()
        else:
            for pane in self.main.panes:
                if pane.view.extend():
                    pane.list.records_added()
            for panel in self._followers():
                panel.records_added()
        self.data_changed()

    @property
    def t0_ns(self) -> int:
        firsts = [p.first_ns for p in self.parts if p.first_ns is not None]
        return min(firsts) if firsts else 0

    def data_version(self) -> tuple[int, ...]:
        return version(self.parts)

    def analysis(self) -> Results:
        """The analysis results for the captures as they are now (computed on demand, kept until they change)."""
        with self._results_lock:
            self._results = results_for(self.parts, self._results)
            return self._results

    def data_changed(self) -> None:
        self.update_status()
        self.refresh_analysis()

    def refresh_analysis(self) -> None:
        """Bring the analysis view on screen up to date, at most once per ANALYSIS_INTERVAL (a live capture
        grows several times a second)."""
        panel = self._active_analysis()
        if panel is None or self._analysis_timer is not None:
            return
        wait = self._analysed_at + ANALYSIS_INTERVAL - time.monotonic()
        if wait > 0:
            self._analysis_timer = self.set_timer(wait, self._analysis_due)
            return
        self._analysed_at = time.monotonic()
        panel.update_view()

    def _analysis_due(self) -> None:
        self._analysis_timer = None
        self.refresh_analysis()

    # -- views ----------------------------------------------------------------------------------

    def layouts(self) -> list[list[int]]:
        """The parts each list shows."""
        if len(self.parts) == 1:
            return [[0]]
        return [[0, 1]] if self.merge else [[0], [1]]

    @work(thread=True, group="views", exclusive=True)
    def rebuild_views(self) -> None:
        """Build the views for the layout and filter (off the UI thread: a filter over a big capture takes time)."""
        try:
            views = [RecordView(self.parts, which, self.expression) for which in self.layouts()]
        except ValueError as error:
            self.call_from_thread(self.notify, str(error), severity="error")
            return
        if not get_current_worker().is_cancelled:
            self.call_from_thread(self.show_views, views)

    def show_views(self, views: list[RecordView]) -> None:
        tags = self.tags if self.merge else []
        self.main.place_views(views, self.t0_ns, tags, tail=self.live)
        if any(len(view) for view in views):
            self.call_after_refresh(self._first_screen.set)
        self.status.layout = ("merged by time" if self.merge else "side by side") if len(self.parts) > 1 else ""
        self.update_status()

    def update_status(self) -> None:
        panes = self.main.panes if self.main.is_mounted else []
        self.status.shown = sum(len(p.view) for p in panes)
        self.status.total = sum(len(p) for p in self.parts)
        self.status.expression = self.expression
        self.status.tail = any(p.list.tail for p in panes)
        if self.main.is_mounted:
            self.main.query_one(StatusBar).show()

    @on(RecordHighlighted)
    def highlighted(self, message: RecordHighlighted) -> None:
        """The status line shows where the cursor of the list in use is (with two lists, the one in focus)."""
        current = self._current()
        if current is None:
            self.status.where = ""
        else:
            row = self.parts[current[0]].row(current[1])
            self.status.where = f"#{row.get('conn')} +{seconds(row.get('ts_ns'), self.t0_ns)} s"
        self.update_status()

    def check_filter(self, expression: str) -> str | None:
        return check_filter([p for p in self.parts if len(p)], expression)

    @on(FilterSubmitted)
    def filter_submitted(self, message: FilterSubmitted) -> None:
        if message.expression != self.expression:
            self.expression = message.expression
            self.rebuild_views()
        for panel in self._followers():
            panel.set_filter(self.expression)
        follower = self._active_follower()
        if follower is None:
            self.main.focus_list()
            return
        self.show_followed()
        follower.listing.focus()

    @on(FollowConnection)
    def follow_connection(self, message: FollowConnection) -> None:
        self.follow(message.part, message.conn, message.tab)

    def follow(self, part: int, conn: int, tab: str | None = None, keep: tuple[int, int] | None = None) -> None:
        """Show connection ``conn`` of capture ``part`` in the Conversation and Ladder views (each when it is next
        shown), switching to ``tab`` if given, the cursor on record ``keep`` if given."""
        self.followed = (part, conn)
        if tab is not None:
            panel = self.main.query_one(f"#{tab}").query_one(FollowPanel)
            self._prepare(panel)
            panel.show(part, conn, keep)
            self.action_tab(tab)
        else:
            self.show_followed(keep)

    def show_followed(self, keep: tuple[int, int] | None = None) -> None:
        """Bring the Conversation or Ladder view on screen to the followed connection (at first, the connection
        of the record under the cursor in the Messages view)."""
        panel = self._active_follower()
        if panel is None:
            return
        if self.followed is None:
            current = self._current()
            if current is None:
                return
            self.followed = (current[0], int(self.parts[current[0]].row(current[1])["conn"]))
            keep = keep or current
        self._prepare(panel)
        panel.show(*self.followed, keep)

    def _prepare(self, panel: FollowPanel) -> None:
        panel.set_parts(self.parts, self.t0_ns, self.tags)
        panel.set_filter(self.expression)

    def _followers(self) -> list[FollowPanel]:
        return list(self.main.query(FollowPanel)) if self.main.is_mounted else []

    def _active_follower(self) -> FollowPanel | None:
        """The Conversation or Ladder view, when it is the view on screen."""
        if not self.main.is_mounted:
            return None
        active = self.main.query_one(TabbedContent).active_pane
        panels = list(active.query(FollowPanel)) if active is not None else []
        return panels[0] if panels else None

    @on(JumpToRecord)
    def jump(self, message: JumpToRecord) -> None:
        self.main.show_tab("messages")
        for pane in self.main.panes:
            if message.part in pane.view.which:
                if not pane.list.show_record(message.part, message.row):
                    self.notify("the filter hides that record (/ then Enter on an empty filter clears it)")
                pane.list.focus()
                return

    @on(TabbedContent.TabActivated)
    def tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.main.call_after_refresh(self.main.align_tabs)
        self.show_followed()
        panel = self._active_analysis()
        if panel is not None:
            panel.update_view()
            if isinstance(panel, SessionPanel) and self._current() is not None:
                part, row = self._current()  # type: ignore[misc]
                panel.select_conn(part, int(self.parts[part].row(row)["conn"]))

    def _active_analysis(self) -> AnalysisPanel | None:
        if not self.main.is_mounted:
            return None
        active = self.main.query_one(TabbedContent).active_pane
        if active is None:
            return None
        panels = list(active.query(AnalysisPanel))
        return panels[0] if panels else None

    def _focused_list(self) -> MessageList | None:
        """The list of the record pane that has the focus, else the first one."""
        focused = self.main.focused
        panes = self.main.panes
        for pane in panes:
            if focused is not None and (focused is pane or pane in focused.ancestors):
                return pane.list
        return panes[0].list if panes else None

    def _current(self) -> tuple[int, int] | None:
        listing = self._focused_list()
        return listing.current if listing is not None else None

    def _set_tail(self, tail: bool) -> None:
        for pane in self.main.panes:
            pane.list.tail = tail
        self.update_status()

    # -- actions --------------------------------------------------------------------------------

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_filter(self) -> None:
        self.main.query_one(FilterBar).input.focus()

    def action_tab(self, tab: str) -> None:
        self.main.show_tab(tab)

    def action_follow(self) -> None:
        current = self._current()
        if current is None:
            return
        part, row = current
        self.follow(part, int(self.parts[part].row(row)["conn"]), "conversation", keep=current)

    def action_goto(self) -> None:
        self.push_screen(GotoScreen(), self.go)

    def go(self, target: Target | None) -> None:
        listing = self._focused_list()
        if target is None or listing is None or listing.view is None:
            return
        view = listing.view
        if target.record is not None:
            part = view.which[0]
            if not listing.show_record(part, target.record - 1):
                self.notify(f"no record #{target.record} in the list", severity="warning")
        elif target.seconds is not None:
            position = view.nearest_time(self.t0_ns + int(target.seconds * 1e9))
            if position is not None:
                listing.tail = False
                listing.move_to(position)
        self.main.show_tab("messages")
        listing.focus()

    def action_toggle_layout(self) -> None:
        if len(self.parts) < 2:
            self.notify("merge and side by side need two captures")
            return
        self.merge = not self.merge
        self.rebuild_views()

    def action_maximize_pane(self) -> None:
        if self.main.focused is not None:
            self.main.maximize(self.main.focused, container=False)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for index, tab in enumerate(TABS):
            yield SystemCommand(f"Show {tab.capitalize()}", f"the {tab} view (key {index + 1})", self._tab_command(tab))
        yield SystemCommand("Filter", "edit the display filter (/)", self.action_filter)
        yield SystemCommand("Clear the filter", "show every record", lambda: self.post_message(FilterSubmitted("")))
        yield SystemCommand("Go to", "a time or a record number (Ctrl+G)", self.action_goto)
        yield SystemCommand("Follow connection", "the connection of the selected record (f)", self.action_follow)
        yield SystemCommand("Tail", "follow the newest record (Ctrl+T)", lambda: self._set_tail(True))
        if len(self.parts) == 2:
            yield SystemCommand(
                "Merge or split", "two captures merged by time or side by side (|)", self.action_toggle_layout
            )
        yield SystemCommand("Help", "every key binding and the filter syntax (?)", self.action_help)

    def _tab_command(self, tab: str):
        return lambda: self.action_tab(tab)
