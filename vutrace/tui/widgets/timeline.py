"""The Timeline view: migration phases as bands over time per capture, messages and state chunks as ticks.

Phases, roles and the downtime spans come from ``vutrace.analysis.timeline``; the chart only
places them on a time axis as wide as the terminal. The table under it lists every phase;
Enter on one shows its first record.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from rich.style import Style
from rich.text import Text
from textual import on
from textual.widget import Widget
from textual.widgets import DataTable, Static

from vutrace.analysis.inputs import offset
from vutrace.analysis.sessions import human_duration
from vutrace.analysis.timeline import PHASE_ORDER, Migration, Phase, SideTimeline
from vutrace.tui.data import Part
from vutrace.tui.messages import JumpToRecord
from vutrace.tui.results import Results
from vutrace.tui.widgets.analysis_panel import AnalysisPanel
from vutrace.tui.widgets.tables import plain

LABEL = 11
"""Cells of the row labels left of the chart."""
DENSITY = " ▁▂▃▄▅▆▇█"
OVERLAPPING = ("dirty logging", "state transfer", "check")
"""Phases drawn on their own row: they overlap the connection's main phases."""


def ticks(part: Part) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps of the messages and of the device-state chunks of a capture."""
    frame = part.frame()
    channel = frame["channel"].astype(str).to_numpy()
    ts = frame["ts_ns"].to_numpy(dtype=np.int64)
    return ts[np.isin(channel, ("main", "backend"))], ts[channel == "state"]


def density(times: np.ndarray, start: int, end: int, cells: int) -> str:
    """One character per cell: how many of ``times`` fall in it, from blank to a full block."""
    if cells <= 0:
        return ""
    counts, _ = np.histogram(times, bins=cells, range=(start, max(end, start + 1)))
    top = counts.max() if len(counts) else 0
    if not top:
        return " " * cells
    levels = np.where(counts > 0, 1 + (counts * (len(DENSITY) - 2) // top), 0)
    return "".join(DENSITY[level] for level in levels.tolist())


def cell_range(low: int, high: int, start: int, end: int, cells: int) -> range:
    """The cells a time span covers on an axis from ``start`` to ``end`` (at least one cell)."""
    width = max(end - start, 1) / max(cells, 1)
    first = min(max(int((low - start) / width), 0), cells - 1)
    last = min(max(int((high - start) / width), first), cells - 1)
    return range(first, last + 1)


def bands(phases: list[Phase], start: int, end: int, cells: int) -> list[tuple[str, str | None]]:
    """One row of phases: per cell, its character (the phase's name written along its band) and phase."""
    row: list[tuple[str, str | None]] = [(" ", None)] * cells
    for phase in phases:
        span = cell_range(phase.start_ns, phase.end_ns, start, end, cells)
        text = phase.name if len(span) >= len(phase.name) else phase.name[: len(span)]
        for index, cell in enumerate(span):
            row[cell] = (text[index] if index < len(text) else " ", phase.name)
    return row


class TimelineChart(Widget):
    """For each capture: its main phases, the overlapping ones, message and state-chunk density, on one time axis."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {f"timeline--phase-{i}" for i in range(len(PHASE_ORDER))} | {
        "timeline--label",
        "timeline--ticks",
        "timeline--axis",
    }

    DEFAULT_CSS = """
    TimelineChart { height: auto; padding: 0 1; }
    TimelineChart > .timeline--phase-0 { background: $primary-muted; color: $text; }
    TimelineChart > .timeline--phase-1 { background: $secondary-muted; color: $text; }
    TimelineChart > .timeline--phase-2 { background: $success-muted; color: $text; }
    TimelineChart > .timeline--phase-3 { background: $warning-muted; color: $text; }
    TimelineChart > .timeline--phase-4 { background: $accent-muted; color: $text; }
    TimelineChart > .timeline--phase-5 { background: $error-muted; color: $text; }
    TimelineChart > .timeline--phase-6 { background: $accent; color: $text; }
    TimelineChart > .timeline--phase-7 { background: $success; color: $text; }
    TimelineChart > .timeline--phase-8 { background: $secondary; color: $text; }
    TimelineChart > .timeline--phase-9 { background: $panel-lighten-2; color: $text; }
    TimelineChart > .timeline--label { color: $text; }
    TimelineChart > .timeline--ticks { color: $text-muted; }
    TimelineChart > .timeline--axis { color: $text-muted; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.sides: list[SideTimeline] = []
        self.marks: list[tuple[np.ndarray, np.ndarray]] = []

    def set_data(self, sides: list[SideTimeline], marks: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.sides, self.marks = sides, marks
        self.refresh(layout=True)

    def get_content_height(self, container, viewport, width: int) -> int:
        return 1 + 5 * len(self.sides)

    def render(self) -> Text:
        if not self.sides:
            return Text("no records")
        cells = max(self.size.width - LABEL - 2, 10)
        start = min(s.first_ns for s in self.sides)
        end = max(s.last_ns for s in self.sides)
        label = self.get_component_rich_style("timeline--label")
        dots = self.get_component_rich_style("timeline--ticks")
        out = Text(no_wrap=True, overflow="crop")
        right = f"+{(end - start) / 1e9:.6g} s"
        out.append(
            " " * LABEL + "0 s".ljust(cells - len(right)) + right, self.get_component_rich_style("timeline--axis")
        )
        for side, (messages, chunks) in zip(self.sides, self.marks, strict=True):
            out.append(f"\n{side.label} ({side.role or 'no device-state transfer'})", label + Style(bold=True))
            main = [p for p in side.phases if p.name not in OVERLAPPING]
            extra = [p for p in side.phases if p.name in OVERLAPPING]
            for title, phases in (("phases", main), ("migration", extra)):
                out.append(f"\n {title:<{LABEL - 1}}", label)
                for char, name in bands(phases, start, end, cells):
                    style = (
                        self.get_component_rich_style(f"timeline--phase-{PHASE_ORDER.index(name)}") if name else dots
                    )
                    out.append(char, style)
            out.append(f"\n {'messages':<{LABEL - 1}}", label)
            out.append(density(messages, start, end, cells), dots)
            out.append(f"\n {'state':<{LABEL - 1}}", label)
            out.append(density(chunks, start, end, cells), dots)
        return out


def migration_lines(result: Migration | None) -> list[str]:
    """Downtime, its device-state share and the ring bases, when a source and a destination are open."""
    if result is None or result.source is None or result.destination is None:
        return []
    lines = []
    if result.downtime_ns is not None:
        share = f" ({result.transfer_share:.0%} of it)" if result.transfer_share is not None else ""
        transfer = human_duration(result.transfer_ns) if result.transfer_ns is not None else "?"
        lines.append(f"downtime {human_duration(result.downtime_ns)}; state save and load {transfer}{share}")
    for ring in result.ring_bases:
        verdict = "same" if ring.match else "DIFFERENT"
        lines.append(
            f"ring {ring.vring}: base {ring.source} on the source, {ring.destination} on the destination ({verdict})"
        )
    return lines


class TimelinePanel(AnalysisPanel):
    """Summary, chart and phase table."""

    DEFAULT_CSS = """
    TimelinePanel > #timeline-summary { padding: 0 1; height: auto; }
    TimelinePanel > DataTable { height: 1fr; min-height: 3; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._marks: list[tuple[np.ndarray, np.ndarray]] = []
        self._targets: list[tuple[int, int]] = []

    def prepare(self, results: Results) -> None:
        results.timelines()
        results.migration()
        self._marks = [ticks(part) for part in self.vutrace.parts]

    async def show(self, results: Results) -> None:
        sides = results.timelines()
        origin = min(s.first_ns for s in sides)
        summary = migration_lines(results.migration()) or ["phases of each connection (Enter on a phase shows it)"]
        chart = TimelineChart()
        table: DataTable = DataTable(cursor_type="row", zebra_stripes=True)
        table.add_columns("capture", "phase", "conn", "start", "duration", "detail")
        self._targets = []
        for part, side in enumerate(sides):
            for phase in side.phases:
                table.add_row(
                    *plain(
                        side.label,
                        phase.name,
                        f"#{phase.conn}",
                        offset(phase.start_ns, origin),
                        human_duration(phase.duration_ns),
                        phase.detail,
                    )
                )
                self._targets.append((part, phase.first_row))
        await self.replace(Static("\n".join(summary), id="timeline-summary", markup=False), chart, table)
        chart.set_data(sides, self._marks)

    @on(DataTable.RowSelected)
    def jump(self, event: DataTable.RowSelected) -> None:
        event.stop()
        part, row = self._targets[event.cursor_row]
        self.post_message(JumpToRecord(part, row))
