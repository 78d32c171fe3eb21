"""The Checks view: the conformance checker's findings (``vutrace.analysis.checks``); Enter shows the record."""

from __future__ import annotations

from collections import Counter

from textual import on
from textual.widgets import DataTable, Static

from vutrace.analysis.inputs import offset
from vutrace.tui.messages import JumpToRecord
from vutrace.tui.results import Results
from vutrace.tui.widgets.analysis_panel import AnalysisPanel
from vutrace.tui.widgets.tables import plain


class ChecksPanel(AnalysisPanel):
    """Findings, errors first."""

    DEFAULT_CSS = """
    ChecksPanel > #checks-summary { padding: 0 1; height: auto; }
    ChecksPanel > DataTable { height: 1fr; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.targets: list[tuple[int, int] | None] = []

    def prepare(self, results: Results) -> None:
        results.findings()

    async def show(self, results: Results) -> None:
        findings = results.findings()
        counts = Counter(f.severity.value for f in findings)
        summary = ", ".join(f"{counts[s]} {s}" for s in ("error", "warning", "info") if counts[s]) or "no findings"
        origin = min((c.df["ts_ns"].iloc[0] for c in results.captures if len(c.df)), default=0)
        table: DataTable = DataTable(cursor_type="row", zebra_stripes=True)
        table.add_columns("severity", "rule", "capture", "time", "finding")
        self.targets = []
        for finding in findings:
            first = finding.records[0] if finding.records else None
            when = offset(first.ts_ns, int(origin)) if first else "-"
            table.add_row(*plain(finding.severity.value, finding.rule, finding.side or "-", when, finding.message))
            self.targets.append((results.part_of(first.side), first.row) if first else None)
        await self.replace(Static(f"{summary} (Enter shows the record)", id="checks-summary", markup=False), table)

    @on(DataTable.RowSelected)
    def jump(self, event: DataTable.RowSelected) -> None:
        event.stop()
        target = self.targets[event.cursor_row]
        if target is not None:
            self.post_message(JumpToRecord(*target))
