"""The self-contained HTML report: one page with plotly embedded (no CDN), for one capture or a migration's two.

Sections: the checker's findings (each linked to its records), the phase timeline with every
record as a tick, the migration summary (downtime spans, ring bases), the ladder of the migration
messages per side, the device-state throughput, the sessions, and the record list (every row has
an anchor the findings point to).
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from vutrace import __version__
from vutrace.analysis import checks, sessions, throughput, timeline
from vutrace.analysis.checks.model import SEVERITY_ORDER, Severity
from vutrace.analysis.frame import Capture, record_number
from vutrace.analysis.negotiation import protocol_names, virtio_names
from vutrace.analysis.sessions import Session, human_bytes, human_duration
from vutrace.analysis.timeline import Migration
from vutrace.report import figures

RECORD_TABLE_MAX = 20_000
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.error td { background: #fde0dd; } tr.warning td { background: #fff7bc; } tr.info td { background: #e5f5f9; }
tr:target td { outline: 2px solid #08519c; background: #deebf7; }
.sev-error { color: #a50f15; font-weight: bold; } .sev-warning { color: #b35806; } .sev-info { color: #2171b5; }
code, .mono { font-family: ui-monospace, monospace; font-size: 0.95em; }
.ok { color: #238b45; } .bad { color: #a50f15; font-weight: bold; }
.records { max-height: 40em; overflow: auto; }
"""


def _figure(fig: go.Figure, div_id: str) -> str:
    height = f"{fig.layout.height}px" if fig.layout.height else "450px"
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        default_height=height,
        config={"displaylogo": False},
    )


def record_anchor(side_index: int, row: int) -> str:
    return f"r{side_index}-{row}"


class Report:
    """Everything the page shows, computed once from the captures."""

    def __init__(self, captures: list[Capture], selected: dict[str, set[int] | None] | None = None) -> None:
        self.captures = captures
        self.selected = selected or {}
        self.index = {c.label: i for i, c in enumerate(captures)}
        self.origin = min((int(c.df["ts_ns"].min()) for c in captures if len(c.df)), default=0)
        self.findings = checks.check(*captures)
        self.sides = [timeline.side_timeline(c) for c in captures]
        self.migration: Migration | None = timeline.migration(*self.sides) if len(self.sides) == 2 else None
        self.streams = [s for c in captures for s in throughput.streams(c)]
        self.sessions = {c.label: sessions.sessions(c) for c in captures}
        self.finding_rows: dict[tuple[str, int], list[int]] = {}
        for n, finding in enumerate(self.findings):
            for ref in finding.records:
                self.finding_rows.setdefault((ref.side, ref.row), []).append(n)

    def rows_shown(self, capture: Capture) -> list[dict[str, Any]]:
        """The records of a capture that the ``-Y`` filter selects (all without a filter)."""
        selected = self.selected.get(capture.label)
        if selected is None:
            return capture.records
        return [r for r in capture.records if r["row"] in selected]

    def shown(self, capture: Capture) -> Capture:
        selected = self.selected.get(capture.label)
        if selected is None:
            return capture
        return Capture(capture.df.loc[sorted(selected)], capture.label, capture.path)

    def html(self) -> str:
        names = " + ".join(escape(c.label) for c in self.captures)
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>vutrace report: {names}</title>",
            f"<style>{STYLE}</style>",
            f'<script type="text/javascript">{get_plotlyjs()}</script>',
            "</head><body>",
            f"<h1>vutrace report: {names}</h1>",
            f"<p>vutrace {__version__}, generated {dt.datetime.now().isoformat(timespec='seconds')}. "
            f"Times are milliseconds since {escape(_clock(self.origin))} (the first record).</p>",
            self.captures_section(),
            self.findings_section(),
            self.timeline_section(),
            self.migration_section(),
            self.ladder_section(),
            self.throughput_section(),
            self.sessions_section(),
            self.records_section(),
            "</body></html>",
        ]
        return "\n".join(p for p in parts if p)

    def ms(self, ts_ns: int | None) -> str:
        return "-" if ts_ns is None else f"+{(ts_ns - self.origin) / 1e6:.3f}"

    def captures_section(self) -> str:
        rows = []
        for capture, side in zip(self.captures, self.sides, strict=True):
            df = capture.df
            messages = int(df["channel"].isin(["main", "backend"]).sum()) if len(df) else 0
            rows.append(
                f"<tr><td>{escape(capture.label)}</td><td class='mono'>{escape(capture.path)}</td>"
                f"<td>{escape(side.role or '-')}</td><td class='num'>{len(df)}</td><td class='num'>{messages}</td>"
                f"<td>{self.ms(side.first_ns)} .. {self.ms(side.last_ns)}</td></tr>"
            )
        return (
            "<h2 id='captures'>Captures</h2><table><tr><th>capture</th><th>file</th><th>role</th><th>records</th>"
            "<th>messages</th><th>time span (ms)</th></tr>" + "".join(rows) + "</table>"
        )

    def record_link(self, side: str, row: int) -> str:
        index = self.index.get(side, 0)
        number = record_number(row)
        label = f"{escape(side)} record {number}" if len(self.captures) > 1 else f"record {number}"
        return f"<a href='#{record_anchor(index, row)}'>{label}</a>"

    def findings_section(self) -> str:
        counts = {s: sum(f.severity is s for f in self.findings) for s in Severity}
        head = ", ".join(f"{n} {s.value}{'s' if n != 1 else ''}" for s, n in counts.items())
        if not self.findings:
            return f"<h2 id='findings'>Conformance findings</h2><p class='ok'>No findings ({head}).</p>"
        rows = []
        for n, f in enumerate(self.findings):
            links = ", ".join(f"{self.record_link(r.side, r.row)} ({self.ms(r.ts_ns)})" for r in f.records)
            rows.append(
                f"<tr id='f{n}' class='{f.severity.value}'><td class='sev-{f.severity.value}'>{f.severity.value}</td>"
                f"<td class='mono'>{escape(f.rule)}</td><td>{escape(f.message)}</td><td>{links}</td>"
                f"<td>{escape(f.section)}</td></tr>"
            )
        return (
            f"<h2 id='findings'>Conformance findings</h2><p>{head}</p><table><tr><th>severity</th><th>rule</th>"
            "<th>finding</th><th>records</th><th>spec section</th></tr>" + "".join(rows) + "</table>"
        )

    def timeline_section(self) -> str:
        shown = [(self.shown(c), side) for c, side in zip(self.captures, self.sides, strict=True)]
        fig = figures.timeline_figure(shown, self.origin)
        return "<h2 id='timeline'>Timeline</h2>" + _figure(fig, "fig-timeline")

    def migration_section(self) -> str:
        m = self.migration
        lines = []
        for side in self.sides:
            for t in side.transfers:
                check = (
                    "-"
                    if t.check_result is None
                    else ("success" if t.check_result == 0 else f"failed ({t.check_result})")
                )
                lines.append(
                    f"<tr><td>{escape(side.label)}</td><td>{t.direction_name}</td><td>{self.ms(t.request_ns)}</td>"
                    f"<td>{self.ms(t.close_ns)}</td><td>{self.ms(t.check_reply_ns)}</td><td>{check}</td></tr>"
                )
        if not lines:
            return ""
        out = [
            "<h2 id='migration'>Migration</h2><table><tr><th>capture</th><th>transfer</th>"
            "<th>SET_DEVICE_STATE_FD (ms)</th><th>stream closed</th><th>check answered</th><th>check</th></tr>",
            *lines,
            "</table>",
        ]
        if m is not None and m.source is not None and m.destination is not None:
            items = [
                ("source suspension starts", self.ms(m.suspend_ns)),
                ("destination rings running", self.ms(m.running_ns)),
                ("downtime (suspension to running)", human_duration(m.downtime_ns) if m.downtime_ns else "-"),
                ("device-state save (42 to 43 reply)", _span(m.save_span)),
                ("device-state load (42 to 43 reply)", _span(m.load_span)),
                ("state transfer share of the downtime", f"{m.transfer_share:.1%}" if m.transfer_share else "-"),
            ]
            out.append("<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in items) + "</table>")
            out.append("<p>Both captures' clocks are taken to agree (same host).</p>")
            out.append(self.ring_bases_html(m))
        return "".join(out)

    def ring_bases_html(self, m: Migration) -> str:
        if not m.ring_bases or m.source is None or m.destination is None:
            return ""
        rows = []
        for r in m.ring_bases:
            verdict = "<span class='ok'>same</span>" if r.match else "<span class='bad'>different</span>"
            src = self.record_link(m.source.label, r.source_row) if r.source_row is not None else "-"
            dst = self.record_link(m.destination.label, r.destination_row) if r.destination_row is not None else "-"
            rows.append(
                f"<tr><td>{r.vring}</td><td>{_v(r.source)} ({src})</td><td>{_v(r.destination)} ({dst})</td>"
                f"<td>{verdict}</td></tr>"
            )
        return (
            "<table><tr><th>ring</th><th>source GET_VRING_BASE</th><th>destination SET_VRING_BASE</th><th></th></tr>"
            + "".join(rows)
            + "</table>"
        )

    def ladder_section(self) -> str:
        parts = ["<h2 id='ladder'>Migration ladder</h2>"]
        for i, capture in enumerate(self.captures):
            rows = figures.ladder_rows(capture)
            selected = self.selected.get(capture.label)
            if selected is not None:
                rows = [r for r in rows if r["row"] in selected]
            if not rows:
                continue
            parts.append(_figure(figures.ladder_figure(capture, rows, self.origin), f"fig-ladder-{i}"))
        return "".join(parts) if len(parts) > 1 else ""

    def throughput_section(self) -> str:
        if not self.streams:
            return ""
        rows = []
        for s in self.streams:
            rows.append(
                f"<tr><td>{escape(s.side)}</td><td>{s.stream}</td><td>{s.direction}</td><td>{escape(s.provider)}</td>"
                f"<td class='num'>{s.total}</td><td class='num'>{len(s.chunks)}</td>"
                f"<td>{human_duration(s.first_byte_ns) if s.first_byte_ns is not None else '-'}</td>"
                f"<td>{human_duration(s.duration_ns) if s.duration_ns is not None else '-'}</td>"
                f"<td>{_rate(s.average_rate)}</td><td>{_rate(s.peak_rate)}</td>"
                f"<td class='mono'>{escape(s.sha256 or '-')}</td></tr>"
            )
        table = (
            "<table><tr><th>capture</th><th>stream</th><th>direction</th><th>channel from</th><th>bytes</th>"
            "<th>chunks</th><th>first byte</th><th>duration</th><th>average</th><th>peak</th><th>SHA-256</th></tr>"
            + "".join(rows)
            + "</table>"
        )
        return (
            "<h2 id='throughput'>Device-state throughput</h2>"
            + table
            + _figure(figures.throughput_figure(self.streams), "fig-throughput")
        )

    def sessions_section(self) -> str:
        parts = ["<h2 id='sessions'>Sessions</h2>"]
        for found in self.sessions.values():
            parts.extend(self.session_html(s) for s in found)
        return "".join(parts)

    def session_html(self, s: Session) -> str:
        n = s.negotiated
        head = (
            f"<h3>{escape(s.capture)}: connection {s.conn}</h3><p>{self.ms(s.start_ns)} .. {self.ms(s.end_ns)} ms "
            f"({human_duration(s.duration_ns)}), {s.messages} main-socket and {s.backend_messages} back-end channel "
            f"messages, {human_bytes(s.state_bytes)} of device state, "
            f"{'ended by ' + escape(s.ended_by) if s.ended_by else 'open at the end of the capture'}"
            f"{', socket ' + escape(s.socket) if s.socket else ''}.</p>"
        )
        acked = n.acked_features
        features = (
            f"<p>Virtio features: <code>{acked:#x}</code> {escape(' '.join(virtio_names(acked)))}</p>"
            if acked is not None
            else "<p>Virtio features: none acked.</p>"
        )
        protocol = (
            f"<p>Protocol features: <code>{n.protocol_features:#x}</code> "
            f"{escape(' '.join(protocol_names(n.protocol_features)))}</p>"
            if n.acked_protocol is not None
            else "<p>Protocol features: none negotiated.</p>"
        )
        rounds = "".join(
            f"<tr><td>{self.ms(r.ts_ns)}</td><td>{self.record_link(s.capture, r.row)}</td><td>{r.message}</td>"
            f"<td>{r.kind}</td><td class='mono'>{r.value:#x}</td><td>{escape(_delta(r))}</td></tr>"
            for r in s.rounds
        )
        rings = "".join(
            f"<tr><td>{r.index}</td><td>{_v(r.size)}</td><td>{_v(r.base)}</td><td>{_v(r.stopped_base)}</td>"
            f"<td class='mono'>{_hex(r.desc_addr)}</td><td class='mono'>{_hex(r.avail_addr)}</td>"
            f"<td class='mono'>{_hex(r.used_addr)}</td><td>{r.state()}{' log' if r.logging else ''}</td>"
            f"<td>{_v(r.kick)}</td><td>{_v(r.call)}</td><td>{_v(r.err)}</td></tr>"
            for r in sorted(s.rings.values(), key=lambda r: r.index)
        )
        regions = "".join(f"<li class='mono'>{escape(r.describe())}</li>" for r in s.regions)
        return (
            head
            + features
            + protocol
            + "<table><tr><th>time (ms)</th><th>record</th><th>message</th><th></th><th>value</th><th>bits</th></tr>"
            + rounds
            + "</table>"
            + f"<p>Memory table: {len(s.regions)} region(s)</p><ul>{regions}</ul>"
            + "<table><tr><th>ring</th><th>size</th><th>base</th><th>stopped at</th><th>desc</th><th>avail</th>"
            "<th>used</th><th>state</th><th>kick</th><th>call</th><th>err</th></tr>"
            + rings
            + "</table>"
            + f"<p>Back-end channel: {escape(s.backend_channel)}.</p>"
        )

    def records_section(self) -> str:
        parts = ["<h2 id='records'>Records</h2>"]
        for i, capture in enumerate(self.captures):
            rows = self.rows_shown(capture)
            note = ""
            if len(rows) > RECORD_TABLE_MAX:
                note = f"<p>First {RECORD_TABLE_MAX} of {len(rows)} records.</p>"
                rows = rows[:RECORD_TABLE_MAX]
            body = []
            for row in rows:
                findings = self.finding_rows.get((capture.label, row["row"]), [])
                severity = min((self.findings[n].severity for n in findings), key=_rank, default=None)
                css = f" class='{severity.value}'" if severity else ""
                marks = " ".join(f"<a href='#f{n}'>{escape(self.findings[n].rule)}</a>" for n in findings)
                reply = (
                    self.record_link(capture.label, int(row["reply_to"])).replace(f"{escape(capture.label)} ", "")
                    if row.get("reply_to") is not None
                    else ""
                )
                latency = f"{int(row['latency_ns']) / 1e3:.1f} µs" if row.get("latency_ns") is not None else ""
                body.append(
                    f"<tr id='{record_anchor(i, row['row'])}'{css}><td class='num'>{record_number(row['row'])}</td>"
                    f"<td class='num'>{self.ms(int(row['ts_ns']))}</td><td>{row.get('conn', '')}</td>"
                    f"<td>{escape(str(row.get('channel', '')))}</td><td>{escape(str(row.get('sender', '')))}</td>"
                    f"<td class='mono'>{escape(figures.summary(row))}</td><td>{reply}</td><td>{latency}</td>"
                    f"<td>{marks}</td></tr>"
                )
            parts.append(
                f"<h3>{escape(capture.label)}</h3>{note}<div class='records'><table><tr><th>record</th><th>ms</th>"
                "<th>conn</th><th>channel</th><th>from</th><th>record</th><th>reply to</th><th>latency</th>"
                "<th>findings</th></tr>" + "".join(body) + "</table></div>"
            )
        return "".join(parts)


def _rank(severity: Severity) -> int:
    return SEVERITY_ORDER[severity]


def _rate(rate: float | None) -> str:
    return "-" if rate is None else human_bytes(rate) + "/s"


def _delta(r: Any) -> str:
    added, removed = r.delta()
    if r.previous is None:
        return " ".join(r.names())
    return " ".join([*(f"+{x}" for x in added), *(f"-{x}" for x in removed)]) or "unchanged"


def _span(span: tuple[int, int] | None) -> str:
    return "-" if span is None else human_duration(span[1] - span[0])


def _v(value: object) -> str:
    return "-" if value is None else escape(str(value))


def _hex(value: int | None) -> str:
    return "-" if value is None else f"{value:#x}"


def _clock(ts_ns: int) -> str:
    return dt.datetime.fromtimestamp(ts_ns / 1e9).isoformat(sep=" ", timespec="microseconds")


def render(captures: list[Capture], selected: dict[str, set[int] | None] | None = None) -> str:
    """The report page for one capture, or a migration's source and destination."""
    return Report(captures, selected).html()
