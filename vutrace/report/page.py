"""The self-contained HTML report: one page with plotly embedded (no CDN), for one capture or a migration's two.

Sections: the checker's findings (each linked to its records), the phase timeline with every
record as a tick, the migration summary (downtime spans, ring bases), the ladder of the migration
messages per side, the device-state throughput, the sessions, and the record list (every row has
an anchor the findings point to).

The page stays small for big captures: plotly.js is included once, findings that say the same
thing share one row (every one of their records still named), the record list and the ticks are
limited to the records that tell the story (``selection``), with the rest counted in gap rows and
drawn as rates, and connections beyond ``SESSION_DETAILS`` get one table row each instead of a
full section. The page says what it left out and how to see it.
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
from vutrace.report.selection import Gap, Limits, Listing, finding_groups, select

FINDING_LINKS = 10
"""Records of a group of like findings linked by name and time; the rest are listed as record numbers."""
SESSION_DETAILS = 20
"""Connections per capture shown in full (negotiation rounds, memory, rings); more get one table row each."""
THROUGHPUT_STREAMS = 40
"""Device-state streams drawn in the throughput figure (the table lists them all)."""
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
tr.gap td { background: #f7f7f7; color: #525252; font-style: italic; }
.note { background: #fff7dc; border-left: 4px solid #fdae6b; padding: .4em .8em; }
details span.mono { display: block; max-height: 12em; overflow: auto; }
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

    def __init__(
        self,
        captures: list[Capture],
        selected: dict[str, set[int] | None] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.captures = captures
        self.selected = selected or {}
        self.limits = limits or Limits()
        self.index = {c.label: i for i, c in enumerate(captures)}
        self.origin = min((int(c.df["ts_ns"].min()) for c in captures if len(c.df)), default=0)
        self.findings = checks.check(*captures)
        self.groups = finding_groups(self.findings)
        self.sides = [timeline.side_timeline(c) for c in captures]
        self.migration: Migration | None = timeline.migration(*self.sides) if len(self.sides) == 2 else None
        self.streams = [s for c in captures for s in throughput.streams(c)]
        self.sessions = {c.label: sessions.sessions(c) for c in captures}
        self.finding_rows: dict[tuple[str, int], list[int]] = {}
        for g, group in enumerate(self.groups):
            for n in group:
                for ref in self.findings[n].records:
                    rows = self.finding_rows.setdefault((ref.side, ref.row), [])
                    if g not in rows:
                        rows.append(g)
        self.ladders = {c.label: self.ladder_rows(c) for c in captures}
        self.listings: dict[str, Listing] = {
            c.label: select(
                c,
                side,
                self.findings,
                shown=self.selected.get(c.label),
                ladder=[r["row"] for r in self.ladders[c.label]],
                limits=self.limits,
            )
            for c, side in zip(captures, self.sides, strict=True)
        }

    def ladder_rows(self, capture: Capture) -> list[dict[str, Any]]:
        rows = figures.ladder_rows(capture)
        selected = self.selected.get(capture.label)
        return rows if selected is None else [r for r in rows if r["row"] in selected]

    def listed_records(self, capture: Capture) -> list[dict[str, Any]]:
        """The records of a capture the page lists (all that the ``-Y`` filter selects, up to the limit)."""
        listing = self.listings[capture.label]
        if listing.complete and self.selected.get(capture.label) is None:
            return capture.records
        return [r for r in capture.records if r["row"] in listing.rows]

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
            self.left_out_note(),
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
        """A link to a record's row in the record list, or its name with a hint when the list leaves it out."""
        index = self.index.get(side, 0)
        number = record_number(row)
        label = f"{escape(side)} record {number}" if len(self.captures) > 1 else f"record {number}"
        listing = self.listings.get(side)
        if listing is not None and row not in listing.rows:
            return f"<span title='not in the record list: vutrace tui, Ctrl+G {number}'>{label}</span>"
        return f"<a href='#{record_anchor(index, row)}'>{label}</a>"

    def see_all(self, capture: Capture) -> str:
        path = escape(capture.path or capture.label)
        return (
            f"<code>vutrace tui {path}</code> (Ctrl+G goes to a record number) or <code>vutrace show {path}</code> "
            "list every record; <code>vutrace report --max-records N</code> lists more here"
        )

    def left_out_note(self) -> str:
        """What the page leaves out of a big capture, said once near the top."""
        lines = []
        for capture in self.captures:
            listing = self.listings[capture.label]
            if not listing.complete:
                lines.append(
                    f"<p class='note'>{escape(capture.label)}: the record list and the timeline's ticks show "
                    f"{len(listing.rows):,} of {listing.total:,} records (<a href='#records'>which ones</a>); "
                    f"the rates, the phases, the migration, the sessions and the findings cover them all. "
                    f"{self.see_all(capture)}.</p>"
                )
        return "".join(lines)

    def findings_section(self) -> str:
        counts = {s: sum(f.severity is s for f in self.findings) for s in Severity}
        head = ", ".join(f"{n} {s.value}{'s' if n != 1 else ''}" for s, n in counts.items())
        if not self.findings:
            return f"<h2 id='findings'>Conformance findings</h2><p class='ok'>No findings ({head}).</p>"
        rows = []
        for g, group in enumerate(self.groups):
            f = self.findings[group[0]]
            message = escape(f.message) + (f" <b>({len(group):,} times)</b>" if len(group) > 1 else "")
            rows.append(
                f"<tr id='f{g}' class='{f.severity.value}'><td class='sev-{f.severity.value}'>{f.severity.value}</td>"
                f"<td class='mono'>{escape(f.rule)}</td><td>{message}</td><td>{self.group_records(group)}</td>"
                f"<td>{escape(f.section)}</td></tr>"
            )
        alike = (
            f"<p>Findings that say the same thing share a row ({len(self.findings):,} findings in "
            f"{len(self.groups):,} rows); every one of their records is named.</p>"
            if len(self.groups) < len(self.findings)
            else ""
        )
        return (
            f"<h2 id='findings'>Conformance findings</h2><p>{head}</p>{alike}<table><tr><th>severity</th><th>rule</th>"
            "<th>finding</th><th>records</th><th>spec section</th></tr>" + "".join(rows) + "</table>"
        )

    def group_records(self, group: list[int]) -> str:
        """The records of like findings: the first ones linked with their times, then every one by number."""
        links = "; ".join(
            ", ".join(f"{self.record_link(r.side, r.row)} ({self.ms(r.ts_ns)})" for r in self.findings[n].records)
            for n in group[:FINDING_LINKS]
        )
        if len(group) <= FINDING_LINKS:
            return links
        sides = len({r.side for n in group for r in self.findings[n].records}) > 1
        numbers = ", ".join(
            "+".join(f"{escape(r.side) + ':' if sides else ''}{record_number(r.row)}" for r in self.findings[n].records)
            for n in group
        )
        return (
            f"{links}; …<details><summary>all {len(group):,} (record numbers)</summary>"
            f"<span class='mono'>{numbers}</span></details>"
        )

    def timeline_section(self) -> str:
        shown = [(self.shown(c), side) for c, side in zip(self.captures, self.sides, strict=True)]
        ticks = {c.label: self.listed_records(c) for c in self.captures}
        fig = figures.timeline_figure(shown, self.origin, ticks)
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
            rows = self.ladders[capture.label]
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
        drawn = self.streams[:THROUGHPUT_STREAMS]
        note = (
            f"<p class='note'>The figure draws the first {len(drawn)} of the {len(self.streams)} streams.</p>"
            if len(drawn) < len(self.streams)
            else ""
        )
        return (
            "<h2 id='throughput'>Device-state throughput</h2>"
            + table
            + note
            + _figure(figures.throughput_figure(drawn), "fig-throughput")
        )

    def sessions_section(self) -> str:
        parts = ["<h2 id='sessions'>Sessions</h2>"]
        for capture in self.captures:
            found = self.sessions[capture.label]
            if len(found) <= SESSION_DETAILS:
                parts.extend(self.session_html(s) for s in found)
                continue
            detailed = _detailed_sessions(found)
            parts.append(
                f"<p class='note'>{escape(capture.label)}: {len(found):,} connections, one row each; the "
                f"{len(detailed)} marked ● are shown in full below (those that transferred device state first, "
                f"then the first ones). <code>vutrace session {escape(capture.path or capture.label)} "
                "-Y 'conn == N'</code> shows any one in full.</p>"
            )
            parts.append(self.sessions_table(found, detailed))
            parts.extend(self.session_html(s) for s in found if id(s) in detailed)
        return "".join(parts)

    def sessions_table(self, found: list[Session], detailed: set[int]) -> str:
        rows = "".join(
            f"<tr><td>{'●' if id(s) in detailed else ''}</td><td class='num'>{s.conn}</td>"
            f"<td>{self.ms(s.start_ns)} .. {self.ms(s.end_ns)}</td><td>{human_duration(s.duration_ns)}</td>"
            f"<td class='num'>{s.messages}</td><td class='num'>{s.backend_messages}</td>"
            f"<td>{human_bytes(s.state_bytes)}</td><td>{escape(s.ended_by or 'open')}</td>"
            f"<td class='mono'>{_hex(s.negotiated.acked_features)}</td></tr>"
            for s in found
        )
        return (
            "<div class='records'><table><tr><th></th><th>conn</th><th>time (ms)</th><th>duration</th>"
            "<th>messages</th><th>back-end channel</th><th>device state</th><th>ended by</th><th>features</th></tr>"
            + rows
            + "</table></div>"
        )

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
            listing = self.listings[capture.label]
            by_row = {r["row"]: r for r in self.listed_records(capture)}
            note = "" if listing.complete else self.records_note(capture, listing)
            body = []
            for entry in listing.entries:
                if isinstance(entry, Gap):
                    body.append(_gap_row(entry))
                    continue
                row = by_row[entry]
                groups = self.finding_rows.get((capture.label, row["row"]), [])
                severity = min((self.findings[self.groups[g][0]].severity for g in groups), key=_rank, default=None)
                css = f" class='{severity.value}'" if severity else ""
                marks = " ".join(f"<a href='#f{g}'>{escape(self.findings[self.groups[g][0]].rule)}</a>" for g in groups)
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

    def records_note(self, capture: Capture, listing: Listing) -> str:
        limits = self.limits
        return (
            f"<p class='note'>Showing {len(listing.rows):,} of {listing.total:,} records: the first and the last "
            f"ones, and {limits.context} either side of every device-state transfer step, ring base, phase start "
            "and end, ladder step, proxy event, decoding error and finding record (findings that fire often are "
            f"sampled across the capture), as far as {limits.records:,} records go. Each grey row says how many "
            f"records it leaves out and which messages they are. {self.see_all(capture)}.</p>"
        )


def _gap_row(gap: Gap) -> str:
    kinds = ", ".join(f"{escape(name)} {count:,}" for name, count in gap.kinds)
    others = gap.count - sum(count for _, count in gap.kinds)
    if others:
        kinds += f", others {others:,}"
    span = (
        f"record {record_number(gap.first_row)}"
        if gap.count == 1
        else f"records {record_number(gap.first_row)}-{record_number(gap.last_row)}"
    )
    return f"<tr class='gap'><td colspan='9'>… {gap.count:,} not listed ({span}): {kinds}</td></tr>"


def _detailed_sessions(found: list[Session]) -> set[int]:
    """The sessions (by ``id``) shown in full: those that carried device state first, then in capture order."""
    ranked = sorted(found, key=lambda s: s.state_bytes == 0)
    return {id(s) for s in ranked[:SESSION_DETAILS]}


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


def render(
    captures: list[Capture], selected: dict[str, set[int] | None] | None = None, limits: Limits | None = None
) -> str:
    """The report page for one capture, or a migration's source and destination."""
    return Report(captures, selected, limits).html()
