"""Connection summaries (``vutrace.analysis.connections``) on crafted captures whose every record is known."""

from __future__ import annotations

from pathlib import Path

from analysis_captures import STATE, Conversation, capture_of, qemu_handshake, source

from vutrace.analysis.checks import Severity, check
from vutrace.analysis.connections import end_reason, summaries
from vutrace.analysis.frame import Capture
from vutrace.analysis.sessions import sessions
from vutrace.analysis.throughput import streams
from vutrace.capture.model import RecordChannel, RecordKind


def summarize(capture: Capture, with_findings: bool = True):
    return summaries(capture, sessions(capture), streams(capture), check(capture) if with_findings else ())


def test_a_migration_source_is_counted_in_each_direction_with_its_transfer_and_end(tmp_path: Path) -> None:
    conversation = source()
    capture = capture_of(tmp_path, conversation)
    (summary,) = summarize(capture)
    messages = [r for r in conversation.records if r.kind is RecordKind.MESSAGE]
    main = [r for r in messages if r.channel is RecordChannel.MAIN]
    assert summary.conn == 1
    assert summary.to_backend == sum(r.sender == "frontend" for r in main)
    assert summary.to_frontend == sum(r.sender == "backend" for r in main)
    assert summary.backend_channel == len(messages) - len(main)
    assert (summary.start_ns, summary.end_ns) == (conversation.records[0].ts_ns, conversation.records[-1].ts_ns)
    assert [(s.direction, s.total, len(s.chunks)) for s in summary.transfers] == [("SAVE", len(STATE), 3)]
    assert summary.transfers_text() == "SAVE 10 KiB"
    assert summary.end_text() == "disconnect: closed by front-end"
    assert (summary.errors, summary.warnings) == (0, 0)


def test_a_connection_the_proxy_could_not_make_shows_why(tmp_path: Path) -> None:
    conversation = Conversation()
    qemu_handshake(conversation)
    conversation.event("disconnect", closed_by="frontend")
    refused = Conversation(conn=2, start_ns=conversation.ts + 1000)
    refused.event("accept", side="frontend", path="/tmp/front.sock")
    refused.event("disconnect", closed_by="proxy", reason="connect failed")
    conversation.records += refused.records
    first, second = summarize(capture_of(tmp_path, conversation))
    assert (first.conn, second.conn) == (1, 2)
    assert (second.to_backend, second.to_frontend, second.transfers) == (0, 0, [])
    assert second.end_text() == "disconnect: closed by proxy, connect failed"
    assert second.duration_ns == refused.records[-1].ts_ns - refused.records[0].ts_ns


def test_a_connection_still_open_when_the_capture_ends_has_no_end(tmp_path: Path) -> None:
    conversation = Conversation()
    qemu_handshake(conversation)
    (summary,) = summarize(capture_of(tmp_path, conversation))
    assert (summary.ended_by, summary.end_text()) == ("", "-")


def test_a_decode_error_and_the_finding_about_it_count_once(tmp_path: Path) -> None:
    conversation = Conversation()
    qemu_handshake(conversation)
    conversation.raw(bytes(6))
    capture = capture_of(tmp_path, conversation)
    decode_errors = set(capture.df.index[capture.df["error"].notna()])
    assert len(decode_errors) == 1
    findings = check(capture)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    assert decode_errors <= {r.row for f in errors for r in f.records}
    (summary,) = summarize(capture)
    assert summary.errors == len(errors)
    (without_findings,) = summarize(capture, with_findings=False)
    assert without_findings.errors == 1


def test_findings_are_counted_on_their_own_connection(tmp_path: Path) -> None:
    conversation = Conversation()
    qemu_handshake(conversation)
    second = Conversation(conn=2, start_ns=conversation.ts + 1000)
    qemu_handshake(second)
    second.request("GET_STATUS")
    second.reply("GET_STATUS", status=0xF)
    conversation.records += second.records
    capture = capture_of(tmp_path, conversation)
    findings = [f for f in check(capture) if f.severity is Severity.ERROR]
    conn_of = {int(capture.df.at[f.records[0].row, "conn"]) for f in findings}
    assert conn_of == {2}
    first, other = summarize(capture)
    assert (first.errors, other.errors) == (0, len(findings))


def test_end_reason_says_who_closed_and_what_was_cut() -> None:
    assert end_reason({"closed_by": "backend", "mid_message": True, "received": 7}) == (
        "closed by back-end, mid-message (7 bytes of it received)"
    )
    assert end_reason({"error": "ECONNRESET"}) == "ECONNRESET"
    assert end_reason({}) == ""
