"""The HTML report of a big capture stays small and still tells the whole story: what it lists, what it
counts, what it says it left out. Captures are built from real message bytes with the real writer; the
limits are lowered so a few hundred records stand in for a million."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from analysis_captures import (
    STATE,
    VIRTIOFSD_FEATURES,
    Conversation,
    capture_of,
    qemu_device_start,
    qemu_dirty_logging,
    qemu_handshake,
    qemu_suspend,
    qemu_transfer,
    source,
)

from dissectors.encode import encode
from vutrace.analysis.frame import Capture, record_number
from vutrace.analysis.throughput import Chunk, Stream
from vutrace.cli import main
from vutrace.report import figures
from vutrace.report.page import SESSION_DETAILS, Report
from vutrace.report.selection import Gap, Limits

SMALL = Limits(records=80, context=1, head=20, tail=5)


def busy_source(pairs: int, iotlb_every: int = 0, odd_flags_at: int | None = None) -> Conversation:
    """A migration source that runs ``pairs`` GET_FEATURES round trips between device start and dirty logging;
    every ``iotlb_every``-th one with a back-end IOTLB_MSG (ACCESS_PLATFORM is not acked: one
    gate.not-negotiated finding each), and at ``odd_flags_at`` a SET_OWNER with an undefined flag bit
    (one header.reserved-flags warning)."""
    c = Conversation()
    qemu_handshake(c)
    qemu_device_start(c)
    for n in range(pairs):
        c.request("GET_FEATURES")
        c.reply("GET_FEATURES", features=VIRTIOFSD_FEATURES)
        if iotlb_every and n % iotlb_every == 0:
            c.backend_request("IOTLB_MSG", need_reply=True, iova=n << 12, iotlb_size=4096, perm=3, iotlb_type=1)
            c.backend_reply("IOTLB_MSG", result=0)
        if n == odd_flags_at:
            c.raw(encode("SET_OWNER", flags=0x1 | 0x40))
    qemu_dirty_logging(c)
    qemu_suspend(c)
    qemu_transfer(c, STATE, 0)
    c.event("disconnect", closed_by="frontend")
    return c


def report(capture: Capture, limits: Limits = SMALL, **kwargs: object) -> tuple[Report, str]:
    r = Report([capture], limits=limits, **kwargs)  # type: ignore[arg-type]
    return r, r.html()


def anchors(html: str) -> set[str]:
    return set(re.findall(r"id='(r\d+-\d+)'", html))


def test_small_capture_is_listed_whole(tmp_path: Path) -> None:
    capture = capture_of(tmp_path, source())
    _, html = report(capture, Limits())
    assert anchors(html) == {f"r0-{row}" for row in capture.df.index}
    assert "class='gap'" not in html and "class='note'" not in html
    assert "records per second" not in html, "no rate panel when every record is a tick"


def test_big_capture_gets_the_note_and_the_limit(tmp_path: Path) -> None:
    capture = capture_of(tmp_path, busy_source(200))
    _, html = report(capture)
    total = len(capture.df)
    assert len(anchors(html)) == SMALL.records < total
    assert f"Showing {SMALL.records:,} of {total:,} records" in html
    assert f"show {SMALL.records:,} of {total:,} records" in html, "said once near the top too"
    assert "vutrace tui" in html and "vutrace show" in html and "--max-records" in html


def test_gaps_count_every_left_out_record(tmp_path: Path) -> None:
    capture = capture_of(tmp_path, busy_source(200))
    listing = Report([capture], limits=SMALL).listings[capture.label]
    gaps = [e for e in listing.entries if isinstance(e, Gap)]
    assert gaps and sum(g.count for g in gaps) + len(listing.rows) == len(capture.df)
    for gap in gaps:
        inside = capture.df.loc[gap.first_row : gap.last_row, "request"].astype(str).value_counts()
        assert inside.sum() == gap.count
        assert dict(gap.kinds) == {name: int(inside[name]) for name, _ in gap.kinds}
        assert gap.kinds[0][1] == inside.max(), "the most frequent message first"


def test_every_transfer_step_and_connection_end_is_listed(tmp_path: Path) -> None:
    capture = capture_of(tmp_path, busy_source(200))
    r, html = report(capture)
    (transfer,) = r.sides[0].transfers
    for row in (transfer.request_row, transfer.reply_row, transfer.close_row, transfer.check_row):
        assert f"id='r0-{row}'" in html, row
    for phase in r.sides[0].phases:
        assert f"id='r0-{phase.first_row}'" in html and f"id='r0-{phase.last_row}'" in html, phase.name
    ring_rows = [row for _, row in r.sides[0].stopped_bases.values()]
    assert ring_rows and all(f"id='r0-{row}'" in html for row in ring_rows)


def test_big_capture_keeps_every_finding_record(tmp_path: Path) -> None:
    capture = capture_of(tmp_path, busy_source(200, iotlb_every=50))
    r, html = report(capture)
    assert len(r.findings) == 4
    for finding in r.findings:
        for ref in finding.records:
            assert f"id='r0-{ref.row}'" in html, "the finding's record is in the list"
            row_html = html.split(f"id='r0-{ref.row}'")[1].split("</tr>")[0]
            assert "href='#f0'" in row_html, "and links back to its finding"


def test_frequent_findings_do_not_crowd_out_a_rare_one(tmp_path: Path) -> None:
    capture = capture_of(tmp_path, busy_source(300, iotlb_every=1, odd_flags_at=150))
    r, html = report(capture)
    rare = [f for f in r.findings if f.rule == "header.reserved-flags"]
    assert len(rare) == 1 and len(r.findings) > SMALL.records
    assert f"id='r0-{rare[0].records[0].row}'" in html


def test_like_findings_share_a_row_that_names_every_record(tmp_path: Path) -> None:
    capture = capture_of(tmp_path, busy_source(60, iotlb_every=2))
    r, html = report(capture)
    gated = [f for f in r.findings if f.rule == "gate.not-negotiated"]
    assert len(gated) == 30
    rows = re.findall(r"<tr id='f\d+'.*?</tr>", html, re.S)
    (row,) = [x for x in rows if "gate.not-negotiated" in x]
    assert "(30 times)" in row
    numbers = row.split("<summary>")[1]
    for finding in gated:
        assert re.search(rf"\b{record_number(finding.records[0].row)}\b", numbers)


def test_links_never_dangle(tmp_path: Path) -> None:
    """A record the list leaves out is named, not linked."""
    capture = capture_of(tmp_path, busy_source(200, iotlb_every=3))
    _, html = report(capture)
    targets = set(re.findall(r"href='#([^']+)'", html))
    ids = set(re.findall(r"id='([^']+)'", html))
    assert targets and targets <= ids
    assert "not in the record list" in html


def test_timeline_ticks_the_listed_records_and_draws_every_record_as_a_rate(tmp_path: Path) -> None:
    capture = capture_of(tmp_path, busy_source(200))
    r = Report([capture], limits=SMALL)
    listed = r.listed_records(capture)
    fig = figures.timeline_figure([(capture, r.sides[0])], r.origin, {capture.label: listed})
    ticks = [t for t in fig.data if t.type == "scatter" and t.mode == "markers"]
    assert sum(len(t.x) for t in ticks) == len(listed) == SMALL.records
    width, rates = figures.record_rates(capture.df, r.origin)
    counted = 0.0
    for edges, per_second in rates.values():
        seconds = [max(b - a, width / 1e6 / 10) / 1e3 for a, b in itertools.pairwise(edges)]
        counted += sum(rate * s for rate, s in zip(per_second[:-1], seconds, strict=True))
    assert round(counted) == len(capture.df)
    rate_traces = [t for t in fig.data if t.type == "scatter" and t.mode == "lines"]
    assert {t.name for t in rate_traces} == set(rates)


def test_report_size_stops_growing_past_the_limit(tmp_path: Path) -> None:
    """Four times the records, about the same page (no findings, so nothing is listed per record)."""
    sizes = []
    for pairs in (150, 600):
        capture = capture_of(tmp_path, busy_source(pairs), name=f"busy-{pairs}.pcapng")
        _, html = report(capture)
        sizes.append(len(html))
    assert sizes[1] < sizes[0] * 1.02


def test_many_connections_get_a_row_each(tmp_path: Path) -> None:
    conversations = []
    for conn in range(1, SESSION_DETAILS + 6):
        c = Conversation(conn=conn, start_ns=1_790_000_000_000_000_000 + conn * 10_000_000)
        qemu_handshake(c)
        if conn == SESSION_DETAILS + 3:
            qemu_device_start(c)
            qemu_suspend(c)
            qemu_transfer(c, STATE, 0)
        c.event("disconnect", closed_by="frontend")
        conversations.append(c)
    merged = Conversation()
    merged.records = sorted((r for c in conversations for r in c.records), key=lambda r: r.ts_ns)
    capture = capture_of(tmp_path, merged)
    _, html = report(capture, Limits())
    table = html.split("one row each")[1].split("</table>")[0]
    assert len(re.findall(r"<tr><td>", table)) == SESSION_DETAILS + 5
    assert len(re.findall(r"<h3>[^<]*: connection \d+</h3>", html)) == SESSION_DETAILS
    assert f"connection {SESSION_DETAILS + 3}</h3>" in html, "the connection that moved device state is detailed"
    assert f"connection {SESSION_DETAILS + 1}</h3>" not in html


def test_a_long_stream_is_drawn_from_bins() -> None:
    stream = Stream("s", 1, 1, "SAVE", request_ns=0)
    stream.chunks = [Chunk(ts_ns=1_000 * (i + 1), row=i, offset=i * 10, length=10) for i in range(5_000)]
    stream.close_ns = 5_001_000
    xs, ys = figures.cumulative_bytes(stream, points=100)
    assert len(xs) <= 101 and ys[-1] == stream.total == 50_000
    assert ys == sorted(ys) and xs == sorted(xs)
    xs, ys = figures.cumulative_bytes(stream, points=10_000)
    assert len(xs) == 5_001, "one point per chunk when they fit"


def test_filter_and_limit_together(tmp_path: Path) -> None:
    capture = capture_of(tmp_path, busy_source(200))
    selected = set(capture.df.index[capture.df["sender"] == "backend"].tolist())
    r = Report([capture], {capture.label: selected}, SMALL)
    listing = r.listings[capture.label]
    assert listing.total == len(selected) and listing.rows <= selected and len(listing.rows) == SMALL.records


def test_max_records_option(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "busy.pcapng"
    busy_source(100).write(path)
    page = tmp_path / "report.html"
    assert main(["report", str(path), "-o", str(page), "--max-records", "50"]) == 0
    assert len(anchors(page.read_text())) == 50
    assert main(["report", str(path), "-o", str(page), "--max-records", "0"]) == 2
    assert "--max-records" in capsys.readouterr().err
