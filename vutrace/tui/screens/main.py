"""The main screen: status line, filter box, the eight views as tabs, the key footer.

Messages · Conversation · Timeline · Throughput · Session · Checks · Connections · Ladder. The
Messages tab holds one ``RecordPane`` per list: one capture, two captures merged by time, or two
side by side.
"""

from __future__ import annotations

from collections.abc import Callable

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane, Tabs

from vutrace.tui.data import RecordView
from vutrace.tui.widgets.checks import ChecksPanel
from vutrace.tui.widgets.connections import ConnectionsPanel
from vutrace.tui.widgets.conversation import ConversationPanel
from vutrace.tui.widgets.filter_bar import FilterBar
from vutrace.tui.widgets.ladder import LadderPanel
from vutrace.tui.widgets.message_list import MessageList
from vutrace.tui.widgets.record_pane import RecordPane
from vutrace.tui.widgets.session import SessionPanel
from vutrace.tui.widgets.status_bar import Status, StatusBar
from vutrace.tui.widgets.throughput import ThroughputPanel
from vutrace.tui.widgets.timeline import TimelinePanel

TABS = ("messages", "conversation", "timeline", "throughput", "session", "checks", "connections", "ladder")


class MainScreen(Screen[None]):
    """Everything but the modal screens."""

    AUTO_FOCUS = ""

    def __init__(self, status: Status, checker: Callable[[str], str | None]) -> None:
        super().__init__()
        self.status = status
        self.checker = checker

    def compose(self) -> ComposeResult:
        yield StatusBar(self.status)
        yield FilterBar(self.checker)
        with TabbedContent(initial="messages"):
            with TabPane("1 Messages", id="messages"):
                yield Horizontal(id="record-panes")
            with TabPane("2 Conversation", id="conversation"):
                yield ConversationPanel()
            with TabPane("3 Timeline", id="timeline"):
                yield TimelinePanel()
            with TabPane("4 Throughput", id="throughput"):
                yield ThroughputPanel()
            with TabPane("5 Session", id="session"):
                yield SessionPanel()
            with TabPane("6 Checks", id="checks"):
                yield ChecksPanel()
            with TabPane("7 Connections", id="connections"):
                yield ConnectionsPanel()
            with TabPane("8 Ladder", id="ladder"):
                yield LadderPanel()
        yield Footer()

    @property
    def panes(self) -> list[RecordPane]:
        return list(self.query(RecordPane))

    def place_views(self, views: list[RecordView], t0_ns: int, tags: list[str], *, tail: bool = False) -> None:
        """Show ``views``: reuse the panes when their number is the same, else build new ones (tailing if ``tail``)."""
        panes = self.panes
        if len(panes) == len(views):
            for pane, view in zip(panes, views, strict=True):
                pane.view, pane.t0_ns = view, t0_ns
                pane.list.t0_ns, pane.list.tags = t0_ns, tags
                current = pane.list.current
                pane.list.set_view(view, keep=current)
            return
        focused = isinstance(self.focused, MessageList)
        container = self.query_one("#record-panes", Horizontal)
        container.remove_children()
        container.mount_all(
            RecordPane(view, t0_ns=t0_ns, tags=tags, tail=tail, classes="-second" if i else "")
            for i, view in enumerate(views)
        )
        if focused or self.focused is None:
            self.call_after_refresh(self.focus_list)

    def focus_list(self) -> None:
        lists = list(self.query(RecordPane))
        if lists:
            lists[0].list.focus()

    def show_tab(self, tab: str) -> None:
        """Switch to a view and put the focus in it (the focus decides which tab stays shown)."""
        tabs = self.query_one(TabbedContent)
        tabs.active = tab
        self.focus_tab()

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self.align_tabs)

    def align_tabs(self) -> None:
        """Scroll the tab strip no further than it takes to show the active tab.

        On a screen narrower than the strip (80 columns hold the first six tabs), Textual centres
        the active tab, which hides the first tabs although the active one would fit without that.
        """
        tabs = self.query_one(TabbedContent).query_one(Tabs)
        active = tabs.active_tab
        strips = tabs.query("#tabs-scroll")
        if active is None or not strips:
            return
        strip = strips.first()
        strip.scroll_to(x=max(0, active.virtual_region.right - strip.size.width), animate=False, force=True)

    def focus_tab(self) -> None:
        """Focus the first focusable widget of the shown view, or the tab strip if it has none yet."""
        tabs = self.query_one(TabbedContent)
        pane = tabs.active_pane
        if pane is None:
            return
        if self.focused is not None and pane in self.focused.ancestors:
            return
        for widget in pane.query("*"):
            if widget.focusable and widget.display:
                self.set_focus(widget)
                return
        self.set_focus(tabs.query_one(Tabs))
