"""The Connections view (Wireshark's Conversations): one row per connection of each capture.

Rows come from ``vutrace.analysis.connections`` (which takes its facts from the sessions, the
device-state streams and the checker). Enter opens the connection in the Conversation view, ``l``
in the Ladder view; ``s`` sorts by the next column, ``r`` reverses the order, and a click on a
column title sorts by it. The line under the table tells everything about the highlighted row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from vutrace.analysis.connections import ConnectionSummary
from vutrace.analysis.sessions import human_bytes, human_duration
from vutrace.analysis.throughput import Stream
from vutrace.tui.messages import FollowConnection
from vutrace.tui.results import Results
from vutrace.tui.rows import seconds
from vutrace.tui.widgets.analysis_panel import AnalysisPanel
from vutrace.tui.widgets.tables import plain

Entry = tuple[int, ConnectionSummary]
"""A row: the capture (part) and its connection."""
Names = list[str]
"""Per capture, the name its rows show in the capture column."""


@dataclass(frozen=True)
class Column:
    title: str
    cell: Callable[[Entry, int, Names], object]
    """The cell of an entry, given the time origin and the names of the captures."""
    order: Callable[[Entry], object]
    """The sort key of an entry."""
    both: bool = False
    """Shown only when two captures are open."""


def end_cell(summary: ConnectionSummary) -> str:
    """How a connection ended, short: a disconnect by its reason alone (the line under the table says it all)."""
    if summary.ended_by == "disconnect" and summary.end_reason:
        return summary.end_reason
    return summary.end_text()


COLUMNS = (
    Column("conn", lambda e, *_: f"#{e[1].conn}", lambda e: (e[1].conn, e[0])),
    Column("capture", lambda e, _, names: names[e[0]], lambda e: (e[0], e[1].conn), both=True),
    Column("first", lambda e, t0, _: seconds(e[1].start_ns, t0), lambda e: e[1].start_ns),
    Column("last", lambda e, t0, _: seconds(e[1].end_ns, t0), lambda e: e[1].end_ns),
    Column("duration", lambda e, *_: human_duration(e[1].duration_ns), lambda e: e[1].duration_ns),
    Column("F→B", lambda e, *_: e[1].to_backend, lambda e: e[1].to_backend),
    Column("B→F", lambda e, *_: e[1].to_frontend, lambda e: e[1].to_frontend),
    Column("back", lambda e, *_: e[1].backend_channel, lambda e: e[1].backend_channel),
    Column("state", lambda e, *_: e[1].transfers_text(), lambda e: (e[1].state_bytes, len(e[1].transfers))),
    Column("E/W", lambda e, *_: f"{e[1].errors}/{e[1].warnings}", lambda e: (e[1].errors, e[1].warnings)),
    Column("end", lambda e, *_: end_cell(e[1]), lambda e: e[1].end_text()),
)
"""The table's columns: connection, capture (with two), first and last record time, duration, main-channel
messages each way, back-end channel messages, state transfers, errors/warnings, how it ended."""


def capture_names(results: Results) -> Names:
    """The captures' roles (source, destination) when two are open and the timeline tells them apart, else their
    labels."""
    labels = [c.label for c in results.captures]
    if len(labels) < 2:
        return labels
    roles = [t.role for t in results.timelines()]
    return [str(r) for r in roles] if all(roles) and len(set(roles)) == len(roles) else labels


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def transfer_text(stream: Stream) -> str:
    text = f"{stream.direction} {human_bytes(stream.total)} in {plural(len(stream.chunks), 'chunk')}"
    return text + (f" (error {stream.state_error})" if stream.state_error else "")


def describe(summary: ConnectionSummary, t0_ns: int) -> str:
    """Everything about one connection, in words (the line under the table)."""
    s = summary
    transfers = "; ".join(transfer_text(t) for t in s.transfers) or "none"
    end = f"ended by {s.end_text()}" if s.ended_by else "open when the capture ended"
    return (
        f"{s.capture} #{s.conn}: {seconds(s.start_ns, t0_ns)} to {seconds(s.end_ns, t0_ns)} s "
        f"({human_duration(s.duration_ns)}), {s.to_backend} messages F→B, {s.to_frontend} B→F, "
        f"{s.backend_channel} on the back-end channel, state: {transfers}, "
        f"{plural(s.errors, 'error')}, {plural(s.warnings, 'warning')}, {end}. Enter: conversation, l: ladder"
    )


class ConnectionsPanel(AnalysisPanel):
    """The connections table, sortable, and the highlighted connection in words."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "ladder", "Ladder", tooltip="the highlighted connection in the Ladder view"),
        Binding("s", "sort_next", "Sort", tooltip="sort by the next column"),
        Binding("r", "reverse", "Reverse", tooltip="reverse the order"),
    ]

    DEFAULT_CSS = """
    ConnectionsPanel > #connections-heading { height: 1; padding: 0 1; background: $panel; }
    ConnectionsPanel > DataTable { height: auto; max-height: 75%; }
    ConnectionsPanel > #connections-detail { height: auto; max-height: 4; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.entries: list[Entry] = []
        self.columns: list[Column] = []
        self.sort_by = "conn"
        self.reverse = False
        self.names: Names = []

    def prepare(self, results: Results) -> None:
        results.connections()
        capture_names(results)

    async def show(self, results: Results) -> None:
        previous = self.highlighted()
        self.entries = [(part, s) for part, found in enumerate(results.connections()) for s in found]
        if not self.entries:
            self.note("no connection in the captures")
            self.shown_version = results.version
            return
        two = len(results.captures) > 1
        self.names = capture_names(results)
        self.columns = [c for c in COLUMNS if two or not c.both]
        table: DataTable = DataTable(cursor_type="row", zebra_stripes=True, id="connections-table")
        table.add_columns(*(c.title for c in self.columns))
        await self.replace(
            Static("", id="connections-heading", markup=False),
            table,
            Static("", id="connections-detail", markup=False),
        )
        self.fill(self._key(previous))

    @property
    def table(self) -> DataTable:
        return self.query_one("#connections-table", DataTable)

    @staticmethod
    def _key(entry: Entry | None) -> tuple[int, int] | None:
        return (entry[0], entry[1].conn) if entry is not None else None

    def fill(self, keep: tuple[int, int] | None = None) -> None:
        """(Re)write the rows in the sort order, the cursor on connection ``keep`` (part, conn)."""
        table = self.table
        column = next((c for c in self.columns if c.title == self.sort_by), self.columns[0])
        self.sort_by = column.title
        self.entries = sorted(self.entries, key=column.order, reverse=self.reverse)
        t0 = self.vutrace.t0_ns
        table.clear()
        for entry in self.entries:
            table.add_row(*plain(*(c.cell(entry, t0, self.names) for c in self.columns)))
        keys = [self._key(entry) for entry in self.entries]
        if keep in keys:
            table.move_cursor(row=keys.index(keep))
        count = len(self.entries)
        captures = len({part for part, _ in self.entries})
        self.query_one("#connections-heading", Static).update(
            plural(count, "connection")
            + (f" in {captures} captures" if captures > 1 else "")
            + f", sorted by {self.sort_by} {'↓' if self.reverse else '↑'}"
        )
        self.show_detail()

    def highlighted(self) -> Entry | None:
        if not self.entries or not self.query("#connections-table"):
            return None
        row = self.table.cursor_row
        return self.entries[row] if 0 <= row < len(self.entries) else None

    def show_detail(self) -> None:
        entry = self.highlighted()
        text = describe(entry[1], self.vutrace.t0_ns) if entry is not None else ""
        self.query_one("#connections-detail", Static).update(text)

    def sort(self, title: str, reverse: bool) -> None:
        self.sort_by, self.reverse = title, reverse
        if self.entries and self.query("#connections-table"):
            self.fill(self._key(self.highlighted()))

    @on(DataTable.RowHighlighted)
    def highlight(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.show_detail()

    @on(DataTable.HeaderSelected)
    def header_clicked(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        title = self.columns[event.column_index].title
        self.sort(title, not self.reverse if title == self.sort_by else False)

    @on(DataTable.RowSelected)
    def open_conversation(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.open("conversation")

    def open(self, tab: str) -> None:
        entry = self.highlighted()
        if entry is not None:
            self.post_message(FollowConnection(entry[0], entry[1].conn, tab))

    def action_ladder(self) -> None:
        self.open("ladder")

    def action_sort_next(self) -> None:
        titles = [c.title for c in self.columns]
        if titles:
            self.sort(
                titles[(titles.index(self.sort_by) + 1) % len(titles)] if self.sort_by in titles else titles[0], False
            )

    def action_reverse(self) -> None:
        self.sort(self.sort_by, not self.reverse)
