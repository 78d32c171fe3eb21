"""The bytes pane: a hex dump of the selected record, with the bytes of the selected field highlighted."""

from __future__ import annotations

from typing import ClassVar

from rich.segment import Segment
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

WIDTH = 16
"""Bytes per line."""
LINE_CELLS = 6 + WIDTH * 3 + 1 + 1 + WIDTH


def hex_cells(data: bytes, line: int) -> list[tuple[str, int | None]]:
    """The pieces of one dump line, each with the byte offset it shows (None for offsets and spacing)."""
    start = line * WIDTH
    chunk = data[start : start + WIDTH]
    pieces: list[tuple[str, int | None]] = [(f"{start:04x}  ", None)]
    for i in range(WIDTH):
        if i == WIDTH // 2:
            pieces.append((" ", None))
        if i < len(chunk):
            pieces.append((f"{chunk[i]:02x}", start + i))
            pieces.append((" ", None))
        else:
            pieces.append(("   ", None))
    pieces.append((" ", None))
    pieces.extend(((chr(b) if 32 <= b < 127 else "."), start + i) for i, b in enumerate(chunk))
    return pieces


class HexView(ScrollView, can_focus=True):
    """Offset, 16 bytes in hex and their ASCII; the field span ``highlight`` (start, end) stands out."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"hex-view--highlight", "hex-view--offset"}

    DEFAULT_CSS = """
    HexView { background: $surface; overflow-x: auto; overflow-y: auto; }
    HexView > .hex-view--highlight { background: $accent; color: $text; text-style: bold; }
    HexView > .hex-view--offset { color: $text-muted; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.data = b""
        self.highlight: tuple[int, int] | None = None

    def show_bytes(self, data: bytes) -> None:
        self.data = data
        self.highlight = None
        self.virtual_size = Size(LINE_CELLS, -(-len(data) // WIDTH))
        self.scroll_to(y=0, animate=False, immediate=True)
        self.refresh()

    def set_highlight(self, span: tuple[int, int] | None) -> None:
        self.highlight = span
        if span is not None:
            line = span[0] // WIDTH
            top = round(self.scroll_y)
            if not top <= line < top + self.scrollable_content_region.height:
                self.scroll_to(y=line, animate=False, immediate=True)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        line = round(self.scroll_y) + y
        if line * WIDTH >= len(self.data):
            return Strip.blank(width, self.rich_style)
        base = self.rich_style
        marked = base + self.get_component_rich_style("hex-view--highlight")
        offset_style = base + self.get_component_rich_style("hex-view--offset")
        low, high = self.highlight or (0, 0)
        segments = []
        for index, (text, byte) in enumerate(hex_cells(self.data, line)):
            if index == 0:
                segments.append(Segment(text, offset_style))
            elif byte is not None and low <= byte < high:
                segments.append(Segment(text, marked))
            else:
                segments.append(Segment(text, base))
        strip = Strip(segments).crop(round(self.scroll_x), round(self.scroll_x) + width)
        return strip.extend_cell_length(width, base)
