"""Base of the views of one followed connection (Conversation, Ladder): a heading and a record list.

The display filter applies: with a filter applied, the view shows the records of the connection
that pass it and says so in its heading ("filtered: <expr>, 12 of 148 records"); ``a`` switches
between those and every record of the connection. ``[`` and ``]`` step to the previous or next
connection of the capture, Enter shows the record under the cursor in the Messages view.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Static

from vutrace.tui.data import Part, RecordView
from vutrace.tui.messages import FollowConnection, JumpToRecord
from vutrace.tui.widgets.message_list import MessageList


class FollowList(MessageList):
    """A ``MessageList`` in a followed-connection view: Enter shows the record in the Messages view."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Show in Messages"),
        Binding("m", "start_mark", "Mark", show=False, tooltip="m then a letter: mark this record"),
    ]

    def action_open(self) -> None:
        if self.current is not None:
            self.post_message(JumpToRecord(*self.current))


def connections(part: Part) -> list[int]:
    """The connection numbers of a capture, in order."""
    if not len(part):
        return []
    return [int(c) for c in np.unique(part.frame()["conn"].to_numpy())]


class FollowPanel(Vertical):
    """Heading and list of one connection of one capture; subclasses say how the list draws and what it holds."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "a", "toggle_filter", "All/filtered", tooltip="every record of the connection, or those the filter shows"
        ),
        Binding("right_square_bracket", "step(1)", "Next conn"),
        Binding("left_square_bracket", "step(-1)", "Prev conn", show=False),
    ]

    DEFAULT_CSS = """
    FollowPanel > .follow-heading { height: auto; max-height: 2; padding: 0 1; background: $panel; }
    FollowPanel > FollowList { height: 1fr; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.parts: list[Part] = []
        self.t0_ns = 0
        self.tags: list[str] = []
        self.part = 0
        self.conn: int | None = None
        self.conns: list[int] = []
        """The connections of capture ``part`` when the list was built."""
        self.expression = ""
        """The display filter applied in the app ("" for none)."""
        self.use_filter = True
        """False when ``a`` asked for every record of the connection despite the filter."""
        self.every: RecordView | None = None
        """Every record of the connection (the view shown when no filter applies)."""
        self.built: tuple[object, ...] | None = None
        """What the list was last built for (None: build it again when next shown)."""

    def compose(self) -> ComposeResult:
        yield Static("", classes="follow-heading", markup=False)
        yield self.make_list()

    def make_list(self) -> FollowList:
        raise NotImplementedError

    def make_view(self, expression: str) -> RecordView:
        """The view of the rows of capture ``self.part`` that ``expression`` selects."""
        return RecordView(self.parts, [self.part], expression)

    def selection(self, conn: int) -> str:
        """The expression for the records of connection ``conn`` this view shows (before the display filter)."""
        return f"conn == {conn}"

    def variant(self) -> str:
        """What else decides the records shown, named for the heading ("" for nothing)."""
        return ""

    @property
    def listing(self) -> FollowList:
        return self.query_one(FollowList)

    @property
    def filtering(self) -> bool:
        return bool(self.expression) and self.use_filter

    def set_parts(self, parts: list[Part], t0_ns: int, tags: list[str]) -> None:
        self.parts, self.t0_ns, self.tags = parts, t0_ns, tags

    def set_filter(self, expression: str) -> None:
        """The display filter changed: the view shows what passes it again (the next time it is shown)."""
        if expression != self.expression:
            self.expression = expression
            self.use_filter = True
            self.built = None

    def invalidate(self) -> None:
        """The captures changed (a full load replaced the first records): build again when next shown."""
        self.built = None

    def show(self, part: int, conn: int | None, keep: tuple[int, int] | None = None) -> None:
        """Show connection ``conn`` of capture ``part`` (the first connection when None), unless already shown."""
        state = (part, conn, self.expression, self.use_filter, self.variant())
        if state != self.built or keep is not None:
            self.follow(part, conn, keep)

    def follow(self, part: int, conn: int | None, keep: tuple[int, int] | None = None) -> None:
        """Build the list for connection ``conn`` of capture ``part``, the cursor on ``keep`` if it is shown."""
        if not self.parts or part >= len(self.parts):
            return
        self.conns = connections(self.parts[part])
        if conn is None or conn not in self.conns:
            conn = self.conns[0] if self.conns else None
        listing = self.listing
        if keep is None and (part, conn) == (self.part, self.conn):
            keep = listing.current
        self.part, self.conn = part, conn
        listing.t0_ns, listing.tags = self.t0_ns, self.tags
        heading = self.query_one(".follow-heading", Static)
        if conn is None:
            self.every = None
            heading.update("no records")
            return
        selection = self.selection(conn)
        self.every = self.make_view(selection)
        view = self.every
        if self.filtering:
            try:
                view = self.make_view(f"{selection} and ({self.expression})")
            except ValueError as error:
                self.use_filter = False
                self.notify(str(error), severity="error")
        listing.set_view(view, keep=keep)
        self.built = (part, conn, self.expression, self.use_filter, self.variant())
        self.update_heading()

    def update_heading(self) -> None:
        listing = self.listing
        if self.every is None or listing.view is None or self.conn is None:
            return
        number = f"{self.conns.index(self.conn) + 1} of {len(self.conns)}"
        where = f"{self.parts[self.part].label} connection #{self.conn} ({number})"
        variant = self.variant()
        where += f", {variant}" if variant else ""
        total = self.every.records
        if self.filtering:
            text = f"{where}\nfiltered: {self.expression}, {listing.view.records:,} of {total:,} records (a: all)"
        elif self.expression:
            text = f"{where}: all {total:,} records\nfilter {self.expression} not applied here (a applies it)"
        else:
            text = f"{where}: {total:,} records"
        self.query_one(".follow-heading", Static).update(text)

    def records_added(self) -> None:
        """A live capture grew: take the new records in."""
        listing = self.listing
        added = self.every.extend() if self.every is not None else 0
        if listing.view is not None and listing.view is not self.every:
            added = listing.view.extend()
        if added:
            listing.records_added()
        self.update_heading()

    def action_toggle_filter(self) -> None:
        if not self.expression:
            self.notify("no display filter is applied (/ applies one)", timeout=3)
            return
        self.use_filter = not self.use_filter
        self.follow(self.part, self.conn, self.listing.current)

    def action_step(self, delta: int) -> None:
        if not self.parts:
            return
        conns = connections(self.parts[self.part])
        if not conns:
            return
        index = conns.index(self.conn) if self.conn in conns else 0
        self.post_message(FollowConnection(self.part, conns[(index + delta) % len(conns)]))
