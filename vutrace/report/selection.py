"""Which records the report lists (and ticks on the timeline) when a capture is too big to list whole.

A capture with at most ``Limits.records`` records (after the ``-Y`` filter) is listed whole. A bigger
one gets the records that tell its story, each with a few neighbours: the start and the end of the
capture, the migration landmarks (every device-state transfer's requests, replies, stream close and
check; the ring bases; the first and last record of every phase of every connection; the ladder's
records; proxy events; records with a decoding error) and the records of the checker's findings.
Landmarks and findings take turns until the limit is reached; findings that say the same thing are
sampled across the capture (first, last, then ever finer midpoints) so a rule that fires 30,000
times does not crowd out one that fires once. Room left after that goes to the records after the
first ones. What is left out becomes ``Gap`` entries that say how many records each gap holds and
which messages they are.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vutrace.analysis.checks.model import Finding
from vutrace.analysis.frame import EVENT_CHANNEL, Capture
from vutrace.analysis.timeline import SideTimeline

GAP_KINDS = 3
"""How many of the most frequent messages a gap names."""


@dataclass(frozen=True)
class Limits:
    """How much of a big capture the report lists."""

    records: int = 4000
    """Records listed per capture (and ticked on its timeline); a capture with no more is listed whole."""
    context: int = 2
    """Records listed either side of each landmark and finding record."""
    head: int = 200
    """The first records of the capture, always listed (the first connection's negotiation)."""
    tail: int = 20
    """The last records of the capture, always listed."""


@dataclass(frozen=True)
class Gap:
    """Consecutive records (of those the filter selects) that the list leaves out."""

    first_row: int
    last_row: int
    count: int
    kinds: tuple[tuple[str, int], ...]
    """The most frequent requests (event names, STATE_CHUNK) in the gap, with their counts, most first."""


@dataclass
class Listing:
    """The records of one capture the report lists, in capture order, with the gaps between them."""

    total: int
    """Records the filter selects (all records without a filter)."""
    entries: list[int | Gap] = field(default_factory=list)
    """Listed rows and the gaps between them, in capture order."""
    rows: set[int] = field(default_factory=set)

    @property
    def complete(self) -> bool:
        return len(self.rows) == self.total


def finding_groups(findings: Iterable[Finding]) -> list[list[int]]:
    """Indices of findings that say the same thing (rule, severity, message, section), in order of first
    occurrence; each group in capture order."""
    groups: dict[tuple[str, str, str, str], list[int]] = {}
    for n, f in enumerate(findings):
        groups.setdefault((f.rule, f.severity.value, f.message, f.section), []).append(n)
    return list(groups.values())


def spread(n: int) -> Iterator[int]:
    """0 .. n-1 each once, in an order that covers the whole range early: first, last, then the midpoints of
    the spans left, breadth first."""
    if n <= 0:
        return
    yield 0
    if n == 1:
        return
    yield n - 1
    spans = deque([(0, n - 1)])
    while spans:
        low, high = spans.popleft()
        if high - low < 2:
            continue
        middle = (low + high) // 2
        yield middle
        spans.extend(((low, middle), (middle, high)))


def landmark_rows(capture: Capture, side: SideTimeline, ladder: Iterable[int] = ()) -> Iterator[int]:
    """The rows that place the migration and the connections in time, most telling first."""
    for t in side.transfers:
        yield from (
            r for r in (t.request_row, t.reply_row, t.close_row, t.check_row, t.check_reply_row) if r is not None
        )
    for bases in (side.stopped_bases, side.set_bases):
        yield from (row for _, row in bases.values())
    for phase in side.phases:
        yield phase.first_row
        yield phase.last_row
    yield from ladder
    df = capture.df
    if len(df):
        yield from df.index[(df["channel"] == EVENT_CHANNEL).to_numpy()].tolist()
        if "error" in df:
            yield from df.index[df["error"].notna().to_numpy()].tolist()


def finding_rows(findings: list[Finding], groups: list[list[int]], label: str) -> Iterator[int]:
    """The rows of ``label``'s capture that findings point to: the groups take turns, each sampled across
    the capture (``spread``)."""
    orders = [(group, spread(len(group))) for group in groups]
    while orders:
        still = []
        for group, order in orders:
            index = next(order, None)
            if index is None:
                continue
            still.append((group, order))
            yield from (r.row for r in findings[group[index]].records if r.side == label)
        orders = still


def select(
    capture: Capture,
    side: SideTimeline,
    findings: list[Finding] | None = None,
    *,
    shown: Iterable[int] | None = None,
    ladder: Iterable[int] = (),
    limits: Limits | None = None,
) -> Listing:
    """The records to list for ``capture`` (``shown``: the rows the filter selects, default all)."""
    limits = limits or Limits()
    rows = np.asarray(sorted(shown) if shown is not None else capture.df.index.to_numpy(), dtype=np.int64)
    total = len(rows)
    if total <= limits.records:
        listed = rows.tolist()
        return Listing(total, list(listed), set(listed))
    findings = findings or []
    chosen: set[int] = set(range(min(limits.head, limits.records // 10)))
    chosen.update(range(max(total - min(limits.tail, limits.records // 50), 0), total))
    anchors = _alternate(
        landmark_rows(capture, side, ladder), finding_rows(findings, finding_groups(findings), capture.label)
    )
    for row in anchors:
        if len(chosen) >= limits.records:
            break
        position = int(np.searchsorted(rows, row))
        if position >= total or rows[position] != row:
            continue
        for p in (position, *range(position - limits.context, position + limits.context + 1)):
            if 0 <= p < total and len(chosen) < limits.records:
                chosen.add(p)
    for p in range(total):
        if len(chosen) >= limits.records:
            break
        chosen.add(p)
    return _listing(capture, rows, sorted(chosen))


def _alternate(first: Iterator[int], second: Iterator[int]) -> Iterator[int]:
    """One from each in turn; the rest of the longer one at the end."""
    for pair in itertools.zip_longest(first, second):
        yield from (row for row in pair if row is not None)


def _listing(capture: Capture, rows: np.ndarray, positions: list[int]) -> Listing:
    names, codes = _request_codes(capture.df, rows)
    listing = Listing(len(rows))
    previous = -1
    for p in [*positions, len(rows)]:
        if p - previous > 1:
            listing.entries.append(_gap(rows, names, codes, previous + 1, p))
        if p < len(rows):
            row = int(rows[p])
            listing.entries.append(row)
            listing.rows.add(row)
        previous = p
    return listing


def _request_codes(df: pd.DataFrame, rows: np.ndarray) -> tuple[list[str], np.ndarray]:
    codes, names = pd.factorize(df["request"].loc[rows].astype(object).fillna("?"), sort=False)
    return [str(n) for n in names], np.asarray(codes)


def _gap(rows: np.ndarray, names: list[str], codes: np.ndarray, start: int, stop: int) -> Gap:
    counts = np.bincount(codes[start:stop], minlength=len(names))
    top = np.argsort(-counts, kind="stable")[:GAP_KINDS]
    kinds = tuple((names[i], int(counts[i])) for i in top if counts[i])
    return Gap(int(rows[start]), int(rows[stop - 1]), stop - start, kinds)
