"""The Session view: what one connection negotiated and set up (features, memory table, rings) and its changes.

Sessions come from ``vutrace.analysis.sessions``; ``[`` and ``]`` step through the connections of
the captures, Enter on a change shows its record.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from vutrace.analysis.inputs import offset
from vutrace.analysis.negotiation import protocol_names, virtio_names
from vutrace.analysis.sessions import Session, human_duration
from vutrace.tui.messages import JumpToRecord
from vutrace.tui.results import Results
from vutrace.tui.widgets.analysis_panel import AnalysisPanel
from vutrace.tui.widgets.tables import plain


def summary_lines(session: Session, total: int, index: int) -> list[str]:
    n = session.negotiated
    acked = n.acked_features or 0
    lines = [
        f"{session.capture} connection #{session.conn} ({index + 1} of {total}, [ and ] for others)"
        + (f", socket {session.socket}" if session.socket else ""),
        f"{human_duration(session.duration_ns)}, {session.messages} messages, {session.backend_messages} on the "
        f"back-end channel, {session.state_bytes} device-state bytes"
        + (f", ended by {session.ended_by}" if session.ended_by else ""),
        f"features {acked:#x}: {' '.join(virtio_names(acked)) or '-'}",
        f"protocol features {n.protocol_features:#x}: {' '.join(protocol_names(n.protocol_features)) or '-'}",
        f"back-end channel {session.backend_channel}"
        + (f", status {session.status:#x}" if session.status is not None else "")
        + (f", queues {session.queue_num}" if session.queue_num is not None else "")
        + (f", memory slots {session.max_mem_slots}" if session.max_mem_slots is not None else "")
        + (f", log {session.log}" if session.log else ""),
    ]
    return lines


def _hex(value: int | None) -> str:
    return "-" if value is None else f"{value:#x}"


class SessionPanel(AnalysisPanel):
    """One session at a time: summary, memory regions, rings, changes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("right_square_bracket", "step(1)", "Next conn"),
        Binding("left_square_bracket", "step(-1)", "Prev conn"),
    ]

    DEFAULT_CSS = """
    SessionPanel > VerticalScroll { height: 1fr; }
    SessionPanel > Static.session-summary { padding: 0 1; height: auto; background: $panel; }
    SessionPanel Static.session-heading { padding: 0 1; height: 1; text-style: bold; color: $text-primary; }
    SessionPanel DataTable { height: auto; max-height: 12; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.sessions: list[tuple[int, Session]] = []
        self.index = 0
        self.origin = 0
        self.wanted: tuple[int, int] | None = None
        """(part, conn) to show once the sessions are there."""
        self._changes: list[tuple[int, int]] = []

    def prepare(self, results: Results) -> None:
        results.sessions()

    async def show(self, results: Results) -> None:
        self.sessions = [(part, s) for part, found in enumerate(results.sessions()) for s in found]
        self.origin = min((s.start_ns for _, s in self.sessions), default=0)
        self.index = min(self.index, max(len(self.sessions) - 1, 0))
        if self.wanted is not None:
            self.index = self._index_of(*self.wanted, self.index)
            self.wanted = None
        await self.draw()

    def select_conn(self, part: int, conn: int) -> None:
        """Show the session of a connection (now, or when the results are there)."""
        if not self.sessions:
            self.wanted = (part, conn)
            return
        index = self._index_of(part, conn, self.index)
        if index != self.index:
            self.index = index
            self.call_later(self.draw)

    def _index_of(self, part: int, conn: int, default: int) -> int:
        for index, (p, session) in enumerate(self.sessions):
            if p == part and session.conn == conn:
                return index
        return default

    async def action_step(self, delta: int) -> None:
        if self.sessions:
            self.index = (self.index + delta) % len(self.sessions)
            await self.draw()

    async def draw(self) -> None:
        if not self.sessions:
            await self.replace(Static("no connection in the capture", classes="analysis-note"))
            return
        part, session = self.sessions[self.index]
        regions: DataTable = DataTable(zebra_stripes=True, cursor_type="row")
        regions.add_columns("guest_addr", "size", "user_addr", "mmap_offset", "fd")
        for r in session.regions:
            regions.add_row(*plain(_hex(r.guest_addr), _hex(r.size), _hex(r.user_addr), _hex(r.mmap_offset), r.fd))
        rings: DataTable = DataTable(zebra_stripes=True, cursor_type="row")
        rings.add_columns("ring", "size", "base", "stopped at", "state", "kick", "call", "err", "desc_addr")
        for ring in sorted(session.rings.values(), key=lambda r: r.index):
            rings.add_row(
                *plain(
                    ring.index,
                    ring.size if ring.size is not None else "-",
                    ring.base if ring.base is not None else "-",
                    ring.stopped_base if ring.stopped_base is not None else "-",
                    ring.state(),
                    ring.kick or "-",
                    ring.call or "-",
                    ring.err or "-",
                    _hex(ring.desc_addr),
                )
            )
        changes: DataTable = DataTable(zebra_stripes=True, cursor_type="row", id="session-changes")
        changes.add_columns("time", "area", "change")
        self._changes = []
        for change in session.changes:
            changes.add_row(*plain(offset(change.ts_ns, self.origin), change.area, change.text))
            self._changes.append((part, change.row))
        await self.replace(
            Static(
                "\n".join(summary_lines(session, len(self.sessions), self.index)),
                classes="session-summary",
                markup=False,
            ),
            VerticalScroll(
                Static(f"Memory table ({len(session.regions)} regions)", classes="session-heading"),
                regions,
                Static(f"Rings ({len(session.rings)})", classes="session-heading"),
                rings,
                Static(f"Changes ({len(session.changes)})", classes="session-heading"),
                changes,
            ),
        )

    @on(DataTable.RowSelected, "#session-changes")
    def jump(self, event: DataTable.RowSelected) -> None:
        event.stop()
        part, row = self._changes[event.cursor_row]
        self.post_message(JumpToRecord(part, row))
