"""The Ladder view (Wireshark's Flow Graph): the followed connection as arrows between the front-end, the back-end
and its side channels, one line per record, a device-state transfer as one line (``vutrace.tui.ladder``).

Only the lines on screen are drawn (the Line API of ``MessageList``), so a connection of 100,000
records scrolls like a short one. The display filter, ``a``, ``[`` / ``]`` and Enter work as in every
followed-connection view (``widgets.followed``).
"""

from __future__ import annotations

from rich.segment import Segment
from textual.strip import Strip

from vutrace.tui.data import RecordView
from vutrace.tui.ladder import LadderView, header, ladder_line, lanes
from vutrace.tui.widgets.followed import FollowList, FollowPanel


class LadderList(FollowList):
    """A ``MessageList`` over a ``LadderView``, drawn as a ladder."""

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        view = self.view
        ladder = view if isinstance(view, LadderView) else None
        where = lanes(width, ladder.side if ladder is not None else False)
        if y == 0:
            return Strip([Segment(header(where), self.get_component_rich_style("message-list--header"))])
        position = round(self.scroll_y) + y - 1
        if view is None or position >= len(view):
            return Strip.blank(width, self.rich_style)
        part, row = view.locate(position)
        line = self._cells(part, row)
        transfer = ladder.folded.get(row) if ladder is not None else None
        style = self._style(line, (part, row) in self.marks.values())
        if position == self.cursor:
            style += self.get_component_rich_style("message-list--cursor")
        return Strip([Segment(ladder_line(line, where, transfer), style)])


class LadderPanel(FollowPanel):
    """Heading and ladder of one connection of one capture."""

    def make_list(self) -> LadderList:
        return LadderList()

    def make_view(self, expression: str) -> RecordView:
        return LadderView(self.parts, self.part, expression)
