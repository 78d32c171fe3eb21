"""Follow a connection: its records as a two-column conversation, front-end left, back-end right.

Both message channels and the device-state stream are in it (back-end channel messages are marked
``[B]``, state chunks ``≋``); proxy events sit in the middle. ``c`` narrows it to one channel,
``[`` / ``]`` step to the previous or next connection, Enter shows the record in the Messages view.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.segment import Segment
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.strip import Strip
from textual.widgets import Static

from vutrace.tui.data import Part, RecordView
from vutrace.tui.messages import JumpToRecord
from vutrace.tui.rows import Cells, fit
from vutrace.tui.widgets.message_list import MessageList

TIME = 11
CHANNEL_CHOICES = ("all", "main", "backend", "state")


def speech(line: Cells) -> str:
    """What a record says in the conversation: request and summary, with its channel's mark."""
    request, summary = line.request, line.summary
    text = f"{request} {summary}".strip()
    if line.channel == "backend":
        return f"[B] {text}"
    if line.channel == "state":
        return f"≋ {summary}"
    return text


def conversation_line(line: Cells, width: int) -> str:
    """One record placed by its sender: front-end right-aligned against the divider, back-end after it."""
    inner = max(width - TIME - 2, 10)
    left = inner // 2
    right = inner - left
    time = fit(line.time, TIME - 1, right=True) + " "
    if line.sender == "frontend":
        return time + fit(speech(line) + " ─▶", left, right=True) + "│" + " " * right
    if line.sender == "backend":
        return time + " " * left + "│" + fit("◀─ " + speech(line), right)
    return time + fit(f"· {line.request} {line.summary} ·", inner + 1).center(inner + 1)


class ConversationList(MessageList):
    """A ``MessageList`` drawn as a conversation."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "open", "Show in Messages")]

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if y == 0:
            inner = max(width - TIME - 2, 10)
            left = inner // 2
            head = fit("time", TIME - 1, right=True) + " " + "front-end".center(left) + "│"
            head += "back-end".center(inner - left)
            return Strip([Segment(fit(head, width), self.get_component_rich_style("message-list--header"))])
        position = round(self.scroll_y) + y - 1
        if self.view is None or position >= len(self.view):
            return Strip.blank(width, self.rich_style)
        part, row = self.view.locate(position)
        line = self._cells(part, row)
        style = self._style(line, (part, row) in self.marks.values())
        if position == self.cursor:
            style += self.get_component_rich_style("message-list--cursor")
        return Strip([Segment(fit(conversation_line(line, width), width), style)])

    def action_open(self) -> None:
        if self.current is not None:
            self.post_message(JumpToRecord(*self.current))


def connections(part: Part) -> list[int]:
    """The connection numbers of a capture, in order."""
    if not len(part):
        return []
    return [int(c) for c in np.unique(part.frame()["conn"].to_numpy())]


class ConversationPanel(Vertical):
    """Heading and conversation of one connection of one capture."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cycle_channel", "Channel"),
        Binding("right_square_bracket", "step(1)", "Next conn"),
        Binding("left_square_bracket", "step(-1)", "Prev conn"),
    ]

    DEFAULT_CSS = """
    ConversationPanel > #conversation-heading { height: 1; padding: 0 1; background: $panel; }
    ConversationPanel > ConversationList { height: 1fr; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.parts: list[Part] = []
        self.t0_ns = 0
        self.tags: list[str] = []
        self.part = 0
        self.conn: int | None = None
        self.channel = "all"

    def compose(self) -> ComposeResult:
        yield Static("", id="conversation-heading", markup=False)
        yield ConversationList()

    def set_parts(self, parts: list[Part], t0_ns: int, tags: list[str]) -> None:
        self.parts, self.t0_ns, self.tags = parts, t0_ns, tags

    def follow(self, part: int, conn: int | None, keep: tuple[int, int] | None = None) -> None:
        """Show connection ``conn`` of capture ``part`` (the first connection when None)."""
        if not self.parts or part >= len(self.parts):
            return
        conns = connections(self.parts[part])
        if conn is None or conn not in conns:
            conn = conns[0] if conns else None
        self.part, self.conn = part, conn
        listing = self.query_one(ConversationList)
        listing.t0_ns, listing.tags = self.t0_ns, self.tags
        if conn is None:
            self.query_one("#conversation-heading", Static).update("no records")
            return
        expression = f"conn == {conn}"
        if self.channel != "all":
            expression += f" and channel == '{self.channel}'"
        view = RecordView(self.parts, [part], expression)
        listing.set_view(view, keep=keep)
        heading = (
            f"{self.parts[part].label} connection #{conn} ({conns.index(conn) + 1} of {len(conns)}): "
            f"{len(view):,} records, channel {self.channel}  ([ ] connection, c channel, Enter show)"
        )
        self.query_one("#conversation-heading", Static).update(heading)

    def records_added(self) -> None:
        listing = self.query_one(ConversationList)
        if listing.view is not None and listing.view.extend():
            listing.records_added()

    def action_cycle_channel(self) -> None:
        self.channel = CHANNEL_CHOICES[(CHANNEL_CHOICES.index(self.channel) + 1) % len(CHANNEL_CHOICES)]
        self.follow(self.part, self.conn, self.query_one(ConversationList).current)

    def action_step(self, delta: int) -> None:
        if not self.parts:
            return
        conns = connections(self.parts[self.part])
        if not conns:
            return
        index = conns.index(self.conn) if self.conn in conns else 0
        self.follow(self.part, conns[(index + delta) % len(conns)])
