"""The record list: one line per record, drawn only for the lines on screen (Textual's Line API).

A ``RecordView`` of a million records costs the widget nothing until a line is visible: each
visible line is formatted from its row (``vutrace.tui.rows``) and cached by record.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from vutrace.tui.data import RecordView
from vutrace.tui.messages import RecordHighlighted
from vutrace.tui.rows import COLUMNS, Cells, cells, fit, join, layout

LINE_CACHE = 4096
MARK_KEYS = "abcdefghijklmnopqrstuvwxyz"


class MessageList(ScrollView, can_focus=True):
    """Records of a ``RecordView``; the cursor line's record is shown in the detail panes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup,ctrl+b", "page_up", "Page up", show=False),
        Binding("pagedown,ctrl+f,space", "page_down", "Page down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last/tail", show=False),
        Binding("enter", "open", "Fields", show=False, tooltip="go to the fields of this record"),
        Binding("m", "start_mark", "Mark", tooltip="m then a letter: mark this record"),
        Binding(
            "apostrophe", "start_jump", "Go to mark", show=False, tooltip="' then a letter: go back to a marked record"
        ),
        Binding("ctrl+t", "toggle_tail", "Tail", tooltip="follow the newest record of a live capture"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "message-list--header",
        "message-list--cursor",
        "message-list--frontend",
        "message-list--backend",
        "message-list--proxy",
        "message-list--state",
        "message-list--problem",
        "message-list--mark",
    }

    DEFAULT_CSS = """
    MessageList {
        overflow-x: hidden;
        overflow-y: scroll;
    }
    MessageList > .message-list--header { text-style: bold; background: $panel; color: $text; }
    MessageList > .message-list--cursor { background: $block-cursor-blurred-background; }
    MessageList:focus > .message-list--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
    }
    MessageList > .message-list--frontend { color: $text-primary; }
    MessageList > .message-list--backend { color: $text-success; }
    MessageList > .message-list--proxy { color: $text-muted; }
    MessageList > .message-list--state { color: $text-accent; }
    MessageList > .message-list--problem { color: $text-error; text-style: bold; }
    MessageList > .message-list--mark { color: $text-warning; text-style: bold; }
    """

    cursor: reactive[int] = reactive(0, always_update=True, init=False)
    tail: reactive[bool] = reactive(False)
    """Keep the cursor on the newest record when records are added."""

    def __init__(self, view: RecordView | None = None, *, t0_ns: int = 0, tags: list[str] | None = None, **kw) -> None:
        super().__init__(**kw)
        self.view = view
        self.t0_ns = t0_ns
        self.tags = tags or []
        """Per capture, the prefix of its record numbers in a merged list ("1:", "2:")."""
        self.marks: dict[str, tuple[int, int]] = {}
        self._pending: str | None = None
        self._lines: OrderedDict[tuple[int, int], Cells] = OrderedDict()

    # -- data -----------------------------------------------------------------------------------

    def set_view(self, view: RecordView, *, keep: tuple[int, int] | None = None) -> None:
        """Show another view (a new filter, the full load); the cursor stays on ``keep`` if it is still there."""
        self.view = view
        self._lines.clear()
        self._sync_size()
        position = view.position_of(*keep) if keep is not None else None
        if self.tail or (position is None and keep is None):
            position = len(view) - 1 if self.tail else 0
        elif position is None:
            position = self._nearest(view, keep)
        self.cursor = max(min(position, len(view) - 1), 0)
        self.refresh()

    def _nearest(self, view: RecordView, keep: tuple[int, int]) -> int:
        """The first position at or after the record ``keep`` (by time) when the filter hides it."""
        part, row = keep
        ts = int(view.parts[part].timestamps()[row]) if row < len(view.parts[part]) else 0
        return view.nearest_time(ts) or 0

    def records_added(self) -> None:
        """The view grew (live capture): redraw, and follow the newest record when tailing."""
        self._sync_size()
        if self.tail and self.view is not None and len(self.view):
            self.cursor = len(self.view) - 1
        self.refresh()

    @property
    def current(self) -> tuple[int, int] | None:
        """(part, row) of the record under the cursor."""
        if self.view is None or not len(self.view):
            return None
        return self.view.locate(min(self.cursor, len(self.view) - 1))

    def _sync_size(self) -> None:
        rows = len(self.view) if self.view is not None else 0
        self.virtual_size = Size(self.size.width, rows + 1)

    def on_resize(self, event: events.Resize) -> None:
        self._sync_size()
        self._scroll_to_cursor()

    # -- cursor ---------------------------------------------------------------------------------

    @property
    def page(self) -> int:
        return max(self.scrollable_content_region.height - 1, 1)

    def watch_cursor(self, cursor: int) -> None:
        self._scroll_to_cursor()
        self.refresh()
        location = self.current
        self.post_message(RecordHighlighted(*(location if location else (None, None))))

    def _scroll_to_cursor(self) -> None:
        top = round(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + self.page:
            self.scroll_to(y=self.cursor - self.page + 1, animate=False, immediate=True)

    def move_to(self, position: int) -> None:
        """Put the cursor on a position; leaving the last record stops tailing."""
        if self.view is None or not len(self.view):
            return
        self.cursor = max(0, min(position, len(self.view) - 1))
        self.tail = self.tail and self.cursor == len(self.view) - 1

    def show_record(self, part: int, row: int) -> bool:
        """Move the cursor to a record; False if the filter hides it."""
        if self.view is None:
            return False
        position = self.view.position_of(part, row)
        if position is None:
            return False
        self.tail = False
        self.move_to(position)
        return True

    def action_cursor_up(self) -> None:
        self.tail = False
        self.move_to(self.cursor - 1)

    def action_cursor_down(self) -> None:
        self.move_to(self.cursor + 1)

    def action_page_up(self) -> None:
        self.tail = False
        self.move_to(self.cursor - self.page)

    def action_page_down(self) -> None:
        self.move_to(self.cursor + self.page)

    def action_first(self) -> None:
        self.tail = False
        self.move_to(0)

    def action_last(self) -> None:
        if self.view is not None:
            self.move_to(len(self.view) - 1)
            self.tail = True

    def action_toggle_tail(self) -> None:
        self.tail = not self.tail
        if self.tail:
            self.action_last()
        self.notify("tailing the newest record" if self.tail else "tail off", timeout=2)

    def action_open(self) -> None:
        self.screen.focus_next()

    # -- marks ----------------------------------------------------------------------------------

    def action_start_mark(self) -> None:
        self._pending = "mark"

    def action_start_jump(self) -> None:
        self._pending = "jump"

    def on_key(self, event: events.Key) -> None:
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        event.stop()
        event.prevent_default()
        letter = event.character or ""
        if letter not in MARK_KEYS or not letter:
            return
        if pending == "mark" and self.current is not None:
            self.marks[letter] = self.current
            self._lines.clear()
            self.refresh()
            self.notify(f"mark {letter} set", timeout=2)
        elif pending == "jump":
            target = self.marks.get(letter)
            if target is None:
                self.notify(f"no mark {letter}", severity="warning", timeout=2)
            elif not self.show_record(*target):
                self.notify(f"mark {letter} is hidden by the filter", severity="warning", timeout=2)

    # -- mouse ----------------------------------------------------------------------------------

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        """Scrolling back through the records stops following the newest."""
        self.tail = False

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        self.tail = False
        self.move_to(round(self.scroll_y) + offset.y - 1)

    # -- drawing --------------------------------------------------------------------------------

    @property
    def number_width(self) -> int:
        """Cells of the No. column: the digits of the biggest record number, and the capture tag."""
        if self.view is None:
            return 3
        biggest = max((len(p) for p in self.view.parts), default=0)
        tag = max((len(t) for t in self.tags), default=0) if self.view.merged else 0
        return max(len(str(biggest)) + tag, 3)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        columns = layout(width, self.number_width)
        if y == 0:
            text = join(tuple(c.title for c in COLUMNS), columns)
            return Strip([Segment(fit(text, width), self.get_component_rich_style("message-list--header"))])
        position = round(self.scroll_y) + y - 1
        if self.view is None or position >= len(self.view):
            return Strip.blank(width, self.rich_style)
        part, row = self.view.locate(position)
        line = self._cells(part, row)
        text = join(line.texts, columns)
        style = self._style(line, (part, row) in self.marks.values())
        if position == self.cursor:
            style += self.get_component_rich_style("message-list--cursor")
        return Strip([Segment(fit(text, width), style)])

    def _cells(self, part: int, row: int) -> Cells:
        key = (part, row)
        line = self._lines.get(key)
        if line is None:
            assert self.view is not None
            tag = self.tags[part] if self.view.merged and part < len(self.tags) else ""
            line = cells(self.view.parts[part].row(row), row + 1, self.t0_ns, tag)
            self._lines[key] = line
            if len(self._lines) > LINE_CACHE:
                self._lines.popitem(last=False)
        return line

    def _style(self, line: Cells, marked: bool) -> Style:
        base = self.rich_style
        if marked:
            return base + self.get_component_rich_style("message-list--mark")
        if line.problem:
            return base + self.get_component_rich_style("message-list--problem")
        if line.channel == "state":
            return base + self.get_component_rich_style("message-list--state")
        name = {"frontend": "frontend", "backend": "backend"}.get(line.sender, "proxy")
        return base + self.get_component_rich_style(f"message-list--{name}")
