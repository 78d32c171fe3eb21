"""Follow a connection: its records as a two-column conversation, front-end left, back-end right.

Both message channels and the device-state stream are in it (back-end channel messages are marked
``[B]``, state chunks ``≋``); proxy events sit in the middle. ``c`` narrows it to one channel; the
display filter, ``a``, ``[`` / ``]`` and Enter work as in every followed-connection view
(``widgets.followed``).
"""

from __future__ import annotations

from typing import ClassVar

from rich.segment import Segment
from textual.binding import Binding, BindingType
from textual.strip import Strip

from vutrace.tui.rows import Cells, fit
from vutrace.tui.widgets.followed import FollowList, FollowPanel

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


class ConversationList(FollowList):
    """A ``MessageList`` drawn as a conversation."""

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


class ConversationPanel(FollowPanel):
    """Heading and conversation of one connection of one capture."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("c", "cycle_channel", "Channel")]

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.channel = "all"

    def make_list(self) -> ConversationList:
        return ConversationList()

    def selection(self, conn: int) -> str:
        return super().selection(conn) + (f" and channel == '{self.channel}'" if self.channel != "all" else "")

    def variant(self) -> str:
        return f"channel {self.channel}"

    def action_cycle_channel(self) -> None:
        self.channel = CHANNEL_CHOICES[(CHANNEL_CHOICES.index(self.channel) + 1) % len(CHANNEL_CHOICES)]
        self.follow(self.part, self.conn, self.listing.current)
