"""The analysis behind the Timeline, Throughput, Session, Checks and Connections views, computed once per capture state.

Everything comes from ``vutrace.analysis``; this module only decides what to compute for the parts
on screen and keeps the results until a capture changes (a live capture grows).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vutrace.analysis.checks import Finding, check
from vutrace.analysis.connections import ConnectionSummary, summaries
from vutrace.analysis.frame import Capture
from vutrace.analysis.sessions import Session, sessions
from vutrace.analysis.throughput import Stream, streams
from vutrace.analysis.timeline import Migration, SideTimeline, migration, side_timeline
from vutrace.tui.data import Part

ANALYSIS_LIMIT = 300_000
"""Records above which the analysis views wait to be asked (they hold every record as a dict)."""


@dataclass
class Results:
    """Analysis of the captures at one moment (``version``: their row counts then)."""

    version: tuple[int, ...]
    captures: list[Capture]
    _timelines: list[SideTimeline] | None = field(default=None, repr=False)
    _migration: Migration | None = field(default=None, repr=False)
    _streams: list[list[Stream]] | None = field(default=None, repr=False)
    _sessions: list[list[Session]] | None = field(default=None, repr=False)
    _findings: list[Finding] | None = field(default=None, repr=False)
    _connections: list[list[ConnectionSummary]] | None = field(default=None, repr=False)

    def timelines(self) -> list[SideTimeline]:
        if self._timelines is None:
            self._timelines = [side_timeline(c) for c in self.captures]
        return self._timelines

    def migration(self) -> Migration | None:
        """Source and destination paired, when two captures are open."""
        if self._migration is None and len(self.captures) == 2:
            self._migration = migration(*self.timelines())
        return self._migration

    def streams(self) -> list[list[Stream]]:
        if self._streams is None:
            self._streams = [streams(c) for c in self.captures]
        return self._streams

    def sessions(self) -> list[list[Session]]:
        if self._sessions is None:
            self._sessions = [sessions(c) for c in self.captures]
        return self._sessions

    def findings(self) -> list[Finding]:
        if self._findings is None:
            self._findings = check(*self.captures[:2])
        return self._findings

    def connections(self) -> list[list[ConnectionSummary]]:
        """Per capture, one summary per connection (from the sessions, streams and findings above)."""
        if self._connections is None:
            findings = self.findings()
            self._connections = [
                summaries(capture, found, transfers, findings)
                for capture, found, transfers in zip(self.captures, self.sessions(), self.streams(), strict=True)
            ]
        return self._connections

    def part_of(self, label: str) -> int:
        """The part number of a capture label (findings and phases name their capture by label)."""
        for index, capture in enumerate(self.captures):
            if capture.label == label:
                return index
        return 0


def version(parts: list[Part]) -> tuple[int, ...]:
    return tuple(len(p) for p in parts)


def results_for(parts: list[Part], previous: Results | None) -> Results:
    """The results for the parts as they are now (``previous`` if nothing changed)."""
    now = version(parts)
    if previous is not None and previous.version == now:
        return previous
    captures = [Capture(p.frame(), p.label, str(p.path or "")) for p in parts]
    return Results(now, captures)


def too_big(parts: list[Part]) -> bool:
    return sum(len(p) for p in parts) > ANALYSIS_LIMIT
