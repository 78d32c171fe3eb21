"""The Throughput view: device-state streams, and the rate of the selected one drawn over time (plotext).

Streams, their totals, rates and time bins come from ``vutrace.analysis.throughput``.
"""

from __future__ import annotations

from textual import on
from textual.widgets import DataTable
from textual_plotext import PlotextPlot

from vutrace.analysis.sessions import human_bytes, human_duration
from vutrace.analysis.throughput import Stream
from vutrace.tui.messages import JumpToRecord
from vutrace.tui.results import Results
from vutrace.tui.widgets.analysis_panel import AnalysisPanel
from vutrace.tui.widgets.tables import plain


def rate_text(rate: float | None) -> str:
    return "-" if rate is None else f"{human_bytes(rate)}/s"


TIME_UNITS = (("s", 1e9), ("ms", 1e6), ("µs", 1e3))


def rate_series(stream: Stream) -> tuple[str, list[float], list[float]]:
    """(time unit, time since the stream started, MiB/s) for each time bin of the stream."""
    width, bins = stream.bins()
    if not bins or stream.start_ns is None:
        return "s", [], []
    span = max(bins[-1][0] + width - stream.start_ns, 1)
    unit, scale = next(((u, f) for u, f in TIME_UNITS if span >= f), TIME_UNITS[-1])
    times = [(start - stream.start_ns) / scale for start, _ in bins]
    rates = [count / (width / 1e9) / 2**20 for _, count in bins]
    return unit, times, rates


class ThroughputPanel(AnalysisPanel):
    """Stream table and rate plot."""

    DEFAULT_CSS = """
    ThroughputPanel > DataTable { height: auto; max-height: 8; }
    ThroughputPanel > PlotextPlot { height: 1fr; min-height: 8; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.streams: list[tuple[int, Stream]] = []
        self.plotted: int | None = None

    def prepare(self, results: Results) -> None:
        results.streams()

    async def show(self, results: Results) -> None:
        self.streams = [(part, s) for part, found in enumerate(results.streams()) for s in found]
        if not self.streams:
            self.note("no device-state transfer in the capture")
            self.shown_version = results.version
            return
        table: DataTable = DataTable(cursor_type="row", zebra_stripes=True)
        table.add_columns("capture", "conn", "stream", "dir", "bytes", "chunks", "duration", "avg", "peak", "sha256")
        for _, s in self.streams:
            table.add_row(
                *plain(
                    s.side,
                    f"#{s.conn}",
                    s.stream,
                    s.direction,
                    human_bytes(s.total),
                    len(s.chunks),
                    human_duration(s.duration_ns) if s.duration_ns is not None else "-",
                    rate_text(s.average_rate),
                    rate_text(s.peak_rate),
                    (s.sha256 or "-")[:12],
                )
            )
        await self.replace(table, PlotextPlot())
        self.plot(0)

    def plot(self, index: int) -> None:
        self.plotted = index
        side_stream = self.streams[index][1]
        unit, times, rates = rate_series(side_stream)
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(f"{side_stream.side} stream {side_stream.stream} {side_stream.direction}: MiB/s over time")
        plt.xlabel(f"{unit} since SET_DEVICE_STATE_FD")
        if times:
            plt.bar(times, rates, width=0.8 * (times[1] - times[0]) if len(times) > 1 else 1)
        plot.refresh()

    @on(DataTable.RowHighlighted)
    def choose(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if 0 <= event.cursor_row < len(self.streams):
            self.plot(event.cursor_row)

    @on(DataTable.RowSelected)
    def jump(self, event: DataTable.RowSelected) -> None:
        event.stop()
        part, stream = self.streams[event.cursor_row]
        row = (
            stream.request_row if stream.request_row is not None else (stream.chunks[0].row if stream.chunks else None)
        )
        if row is not None:
            self.post_message(JumpToRecord(part, row))
