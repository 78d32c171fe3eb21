"""Connections: one summary per connection of a capture (the TUI's Connections table, Wireshark's Conversations).

What other analyses already know is taken from them, not recomputed: times, message counts and the
event that ended a connection from its ``Session`` (``sessions``), device-state transfers from
``throughput.streams``, conformance findings from ``checks``. The rest comes from the DataFrame
here: main-channel messages in each direction, records with a decode error or warning, and the
attributes of the event that ended the connection (who closed it, and why).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from vutrace.analysis.checks.model import Finding, Severity
from vutrace.analysis.frame import Capture, attrs_of
from vutrace.analysis.sessions import Session, human_bytes
from vutrace.analysis.throughput import Stream

SIDES = {"frontend": "front-end", "backend": "back-end"}


@dataclass
class ConnectionSummary:
    """One connection of one capture, in numbers."""

    capture: str
    conn: int
    start_ns: int
    end_ns: int
    to_backend: int = 0
    """Main-channel messages from the front-end to the back-end."""
    to_frontend: int = 0
    """Main-channel messages from the back-end to the front-end."""
    backend_channel: int = 0
    """Messages on the back-end request channel, both ways."""
    transfers: list[Stream] = field(default_factory=list)
    errors: int = 0
    """Error findings of the checker, plus records with a decode error that no error finding points at."""
    warnings: int = 0
    """Likewise for warnings."""
    ended_by: str = ""
    """The event that ended the connection (disconnect, error, shutdown), "" when the capture ends first."""
    end_reason: str = ""
    """What that event recorded: who closed the connection, and why."""

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    @property
    def state_bytes(self) -> int:
        return sum(s.total for s in self.transfers)

    def transfers_text(self) -> str:
        """ "-", "SAVE 12 KiB", or "2: SAVE 12 KiB, LOAD 4 KiB"."""
        texts = [_transfer_text(s) for s in self.transfers]
        if len(texts) <= 1:
            return texts[0] if texts else "-"
        return f"{len(texts)}: " + ", ".join(texts)

    def end_text(self) -> str:
        """ "disconnect: closed by back-end", "error: ...", or "-"."""
        if not self.ended_by:
            return "-"
        return f"{self.ended_by}: {self.end_reason}" if self.end_reason else self.ended_by

    def to_dict(self) -> dict[str, Any]:
        return {
            "capture": self.capture,
            "conn": self.conn,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "duration_ns": self.duration_ns,
            "to_backend": self.to_backend,
            "to_frontend": self.to_frontend,
            "backend_channel": self.backend_channel,
            "transfers": [
                {"stream": s.stream, "direction": s.direction, "bytes": s.total, "chunks": len(s.chunks)}
                for s in self.transfers
            ],
            "errors": self.errors,
            "warnings": self.warnings,
            "ended_by": self.ended_by,
            "end_reason": self.end_reason,
        }


def _transfer_text(stream: Stream) -> str:
    if stream.state_error:
        return f"{stream.direction} refused"
    return f"{stream.direction} {human_bytes(stream.total)}"


def end_reason(attrs: dict[str, Any]) -> str:
    """The details of a disconnect, error or shutdown event as one line."""
    parts = []
    closed_by = attrs.get("closed_by")
    if closed_by:
        parts.append(f"closed by {SIDES.get(str(closed_by), str(closed_by))}")
    if attrs.get("mid_message"):
        parts.append(f"mid-message ({attrs.get('received', '?')} bytes of it received)")
    parts.extend(str(attrs[key]) for key in ("reason", "error", "message") if attrs.get(key))
    return ", ".join(parts)


def _counts(mask: pd.Series, conns: pd.Series) -> dict[int, int]:
    """Per connection, how many rows ``mask`` selects."""
    selected = conns[mask.to_numpy(dtype=bool)]
    return {int(c): int(n) for c, n in selected.value_counts().items()}


def _problem_rows(df: pd.DataFrame, column: str) -> dict[int, set[int]]:
    """Per connection, the rows whose ``column`` (error or warning) is set."""
    if column not in df:
        return {}
    found: dict[int, set[int]] = {}
    hit = df[df[column].notna()]
    for row, conn in zip(hit.index.tolist(), hit["conn"].tolist(), strict=True):
        found.setdefault(int(conn), set()).add(int(row))
    return found


def _ends(df: pd.DataFrame, names: Iterable[str]) -> dict[int, dict[str, Any]]:
    """Per connection, the attributes of the last event named in ``names``."""
    wanted = set(names)
    events = df[(df["channel"] == "event").to_numpy(dtype=bool)]
    events = events[events["request"].astype(str).isin(wanted).to_numpy(dtype=bool)]
    ends: dict[int, dict[str, Any]] = {}
    attrs = events["attrs"] if "attrs" in events else pd.Series([None] * len(events), index=events.index)
    for conn, value in zip(events["conn"].tolist(), attrs.tolist(), strict=True):
        ends[int(conn)] = attrs_of({"attrs": None if pd.isna(value) else value})
    return ends


def summaries(
    capture: Capture, sessions: list[Session], streams: list[Stream], findings: Iterable[Finding] = ()
) -> list[ConnectionSummary]:
    """One summary per session of ``capture`` (in the sessions' order), with its streams and findings."""
    df = capture.df
    conns = df["conn"]
    main = (df["channel"] == "main").to_numpy(dtype=bool)
    frontend = (df["sender"] == "frontend").to_numpy(dtype=bool)
    to_backend = _counts(pd.Series(main & frontend), conns)
    to_frontend = _counts(pd.Series(main & ~frontend), conns)
    decoded = {Severity.ERROR: _problem_rows(df, "error"), Severity.WARNING: _problem_rows(df, "warning")}
    flagged: dict[tuple[int, Severity], set[int]] = {}
    counted: dict[tuple[int, Severity], int] = {}
    for finding in findings:
        if finding.severity not in decoded or not finding.records or finding.side != capture.label:
            continue
        row = finding.records[0].row
        if row not in df.index:
            continue
        key = (int(df.at[row, "conn"]), finding.severity)
        counted[key] = counted.get(key, 0) + 1
        flagged.setdefault(key, set()).update(r.row for r in finding.records if r.side == capture.label)
    ends = _ends(df, {s.ended_by for s in sessions if s.ended_by})
    out = []
    for session in sessions:
        conn = session.conn
        problems = {
            severity: counted.get((conn, severity), 0)
            + len(rows.get(conn, set()) - flagged.get((conn, severity), set()))
            for severity, rows in decoded.items()
        }
        out.append(
            ConnectionSummary(
                capture=session.capture,
                conn=conn,
                start_ns=session.start_ns,
                end_ns=session.end_ns,
                to_backend=to_backend.get(conn, 0),
                to_frontend=to_frontend.get(conn, 0),
                backend_channel=session.backend_messages,
                transfers=[s for s in streams if s.conn == conn],
                errors=problems[Severity.ERROR],
                warnings=problems[Severity.WARNING],
                ended_by=session.ended_by,
                end_reason=end_reason(ends.get(conn, {})) if session.ended_by else "",
            )
        )
    return out
