"""Wireshark's three panes for one record list: the list, the selected record's fields, its bytes."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical

from dissectors.fieldmap import field_spans
from vutrace.tui.data import RecordView
from vutrace.tui.detail import describe
from vutrace.tui.messages import FieldHighlighted, RecordHighlighted
from vutrace.tui.widgets.detail_tree import DetailTree
from vutrace.tui.widgets.hex_view import HexView
from vutrace.tui.widgets.message_list import MessageList


class RecordPane(Vertical):
    """A ``MessageList`` over a view, with the detail tree and hex dump of its cursor record."""

    DEFAULT_CSS = """
    RecordPane { height: 1fr; }
    RecordPane > MessageList { height: 2fr; min-height: 4; }
    RecordPane > DetailTree { height: 1fr; min-height: 3; border-top: solid $panel-lighten-2; }
    RecordPane > HexView { height: 1fr; max-height: 8; min-height: 2; border-top: solid $panel-lighten-2; }
    """

    def __init__(self, view: RecordView, *, t0_ns: int, tags: list[str], tail: bool = False, **kw) -> None:
        super().__init__(**kw)
        self.view = view
        self.t0_ns = t0_ns
        self.list = MessageList(view, t0_ns=t0_ns, tags=tags)
        self.list.tail = tail
        self._spans: dict[str, tuple[int, int]] = {}

    def compose(self) -> ComposeResult:
        yield self.list
        yield DetailTree()
        yield HexView()

    def on_mount(self) -> None:
        self.list.set_view(self.view)

    @on(RecordHighlighted)
    def show_record(self, event: RecordHighlighted) -> None:
        tree, hex_view = self.query_one(DetailTree), self.query_one(HexView)
        if event.part is None or event.row is None:
            tree.show_items([])
            hex_view.show_bytes(b"")
            self._spans = {}
            return
        part = self.view.parts[event.part]
        row = part.row(event.row)
        channel = str(row.get("channel"))
        reply = None
        if channel in ("main", "backend") and not row.get("is_reply"):
            reply = part.reply_of(event.row)
        tag = self.list.tags[event.part] if self.view.merged and event.part < len(self.list.tags) else ""
        tree.show_items(describe(row, event.row + 1, self.t0_ns, reply, tag))
        raw = row.get("raw") or b""
        spans = field_spans(raw, channel) if channel in ("main", "backend") else []  # type: ignore[arg-type]
        self._spans = {s.name: (s.start, s.end) for s in spans}
        hex_view.show_bytes(raw)  # type: ignore[arg-type]

    @on(FieldHighlighted)
    def highlight_bytes(self, event: FieldHighlighted) -> None:
        event.stop()
        self.query_one(HexView).set_highlight(self._spans.get(event.span) if event.span else None)
