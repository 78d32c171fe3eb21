"""Session diff: two captures aligned message by message, the first divergence, changed fields.

Connections are paired in order of appearance (the first of A with the first of B...), and within
a pair each channel's messages are aligned on their (request, is_reply) sequence with difflib.
Aligned messages are compared field by field (header flags, size, FD count and kinds, every
decoded payload field); what cannot be aligned is missing (only in A) or extra (only in B).
Timestamps, row links, FD numbers and inodes never count as differences.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from vutrace.analysis.frame import Capture, fd_list, is_message

NEVER_COMPARED = frozenset(
    {"row", "ts_ns", "conn", "reply_to", "latency_ns", "raw", "fds", "stream", "offset", "sha256", "attrs", "nbytes"}
)
DIFFLIB_MAX = 4000
"""Longest differing middle (after the common prefix and suffix) aligned with difflib, which is quadratic on
long repetitive sequences; longer middles get Myers' algorithm (``_myers``)."""
MYERS_MAX_EDITS = 300
"""Most insertions plus deletions Myers' algorithm looks for (its time grows with length x edits); captures
that differ more are aligned greedily (``_resync``)."""
LOOKAHEAD = 256
"""How far the greedy alignment looks in both sequences for the next common message."""
RESYNC_RUN = 16
"""Equal messages in a row that make a point ahead a good place for the greedy alignment to resume."""
ADDRESS_FIELDS = frozenset(
    {"user_addr", "desc_addr", "used_addr", "avail_addr", "log_addr", "uaddr", "mmap_offset", "log_offset"}
)
"""Fields that hold process addresses or FD offsets, which differ from run to run (``ignore_addresses``)."""


@dataclass
class Step:
    """One aligned position: equal, changed (same message, other fields), missing (only in A), extra (only in B)."""

    kind: str
    conn: tuple[int | None, int | None]
    channel: str
    message: str
    a_row: int | None = None
    b_row: int | None = None
    a_ts: int | None = None
    b_ts: int | None = None
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "conn": list(self.conn),
            "channel": self.channel,
            "message": self.message,
            "a_row": self.a_row,
            "b_row": self.b_row,
            "changes": [{"field": f, "a": _json(a), "b": _json(b)} for f, a, b in self.changes],
        }


@dataclass
class Diff:
    a: str
    b: str
    steps: list[Step]

    def count(self, kind: str) -> int:
        return sum(1 for s in self.steps if s.kind == kind)

    @property
    def first_divergence(self) -> Step | None:
        """The earliest step (by time in A, else in B) that is not equal."""
        differing = [s for s in self.steps if s.kind != "equal"]
        if not differing:
            return None
        return min(differing, key=lambda s: s.a_ts if s.a_ts is not None else s.b_ts or 0)

    @property
    def identical(self) -> bool:
        return self.first_divergence is None

    def to_dict(self) -> dict[str, Any]:
        first = self.first_divergence
        return {
            "a": self.a,
            "b": self.b,
            "equal": self.count("equal"),
            "changed": self.count("changed"),
            "missing": self.count("missing"),
            "extra": self.count("extra"),
            "first_divergence": first.to_dict() if first else None,
            "steps": [s.to_dict() for s in self.steps if s.kind != "equal"],
        }


def _json(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple):
        return [_json(v) for v in value]
    return value


def _label(row: dict[str, Any]) -> str:
    return str(row.get("request")) + (" reply" if row.get("is_reply") else "")


def _comparable(row: dict[str, Any], ignore: frozenset[str], ignore_addresses: bool) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in NEVER_COMPARED and k not in ignore}
    fds = fd_list(row)
    if fds and "fds" not in ignore:
        out["fd_kinds"] = tuple(part.split(" ", 1)[0] for part in fds)
    if ignore_addresses:
        for name in ADDRESS_FIELDS:
            out.pop(name, None)
        if isinstance(out.get("regions"), tuple):
            out["regions"] = tuple(r[:2] for r in out["regions"])
    return out


def _channels(capture: Capture) -> dict[int, dict[str, list[dict[str, Any]]]]:
    """Message rows by connection (in order of appearance) and channel."""
    out: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for row in capture.records:
        if is_message(row):
            out.setdefault(int(row.get("conn", 0)), {}).setdefault(str(row["channel"]), []).append(row)
    return out


Opcode = tuple[str, int, int, int, int]


def align(a: list[Any], b: list[Any]) -> list[Opcode]:
    """difflib-style opcodes (equal, delete, insert, replace) that turn ``a`` into ``b``.

    The common prefix and suffix are matched directly; the middle goes to difflib when it is short, else to
    Myers' shortest edit script, else (too many edits) to a greedy walk.
    """
    start = 0
    while start < len(a) and start < len(b) and a[start] == b[start]:
        start += 1
    end_a, end_b = len(a), len(b)
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a, end_b = end_a - 1, end_b - 1
    ops: list[Opcode] = [("equal", 0, start, 0, start)] if start else []
    middle_a, middle_b = a[start:end_a], b[start:end_b]
    if middle_a or middle_b:
        if max(len(middle_a), len(middle_b)) <= DIFFLIB_MAX:
            middle = difflib.SequenceMatcher(a=middle_a, b=middle_b, autojunk=False).get_opcodes()
        else:
            middle = _myers(middle_a, middle_b, MYERS_MAX_EDITS) or _resync(middle_a, middle_b)
        ops.extend((tag, i1 + start, i2 + start, j1 + start, j2 + start) for tag, i1, i2, j1, j2 in middle)
    if end_a < len(a):
        ops.append(("equal", end_a, len(a), end_b, len(b)))
    return [op for op in ops if op[1] != op[2] or op[3] != op[4]]


def _from_above(furthest: dict[int, int], k: int, d: int) -> bool:
    """Whether diagonal ``k`` at edit ``d`` is best reached by an insertion (from k+1) rather than a deletion."""
    return k == -d or (k != d and furthest[k - 1] < furthest[k + 1])


def _myers(a: list[Any], b: list[Any], max_edits: int) -> list[Opcode] | None:
    """The shortest edit script (Myers 1986, O((N+M)·D)) as opcodes; None if it needs more than ``max_edits``."""
    n, m = len(a), len(b)
    furthest = {1: 0}
    trace: list[dict[int, int]] = []
    for d in range(max_edits + 1):
        trace.append(dict(furthest))
        for k in range(-d, d + 1, 2):
            x = furthest[k + 1] if _from_above(furthest, k, d) else furthest[k - 1] + 1
            y = x - k
            while x < n and y < m and a[x] == b[y]:
                x, y = x + 1, y + 1
            furthest[k] = x
            if x >= n and y >= m:
                return _opcodes(_backtrack(trace, n, m))
    return None


def _backtrack(trace: list[dict[int, int]], n: int, m: int) -> list[tuple[str, int, int]]:
    """The moves of the shortest edit script, first to last: (equal|delete|insert, index in a, index in b)."""
    moves: list[tuple[str, int, int]] = []
    x, y = n, m
    for d in range(len(trace) - 1, -1, -1):
        furthest = trace[d]
        k = x - y
        previous = k + 1 if _from_above(furthest, k, d) else k - 1
        px = furthest[previous]
        py = px - previous
        while x > px and y > py:
            x, y = x - 1, y - 1
            moves.append(("equal", x, y))
        if d:
            moves.append(("insert", px, py) if x == px else ("delete", px, py))
        x, y = px, py
    return moves[::-1]


def _opcodes(moves: list[tuple[str, int, int]]) -> list[Opcode]:
    """Group single moves into difflib-style opcodes (runs of deletions and insertions become one block)."""
    blocks: list[list[int]] = []
    kinds: list[bool] = []
    for kind, x, y in moves:
        equal = kind == "equal"
        if not blocks or kinds[-1] != equal:
            blocks.append([x, x, y, y])
            kinds.append(equal)
        block = blocks[-1]
        block[1] += kind != "insert"
        block[3] += kind != "delete"
    ops: list[Opcode] = []
    for equal, (i1, i2, j1, j2) in zip(kinds, blocks, strict=True):
        tag = "equal" if equal else "replace" if i1 < i2 and j1 < j2 else "delete" if i1 < i2 else "insert"
        ops.append((tag, i1, i2, j1, j2))
    return ops


def _run(a: list[Any], b: list[Any], i: int, j: int, limit: int) -> int:
    """How many equal elements follow from a[i] and b[j] (at most ``limit``)."""
    k = 0
    while k < limit and i + k < len(a) and j + k < len(b) and a[i + k] == b[j + k]:
        k += 1
    return k


def _resync(a: list[Any], b: list[Any]) -> list[Opcode]:
    """Linear-time alignment: walk both; where they differ, skip to the closest point ahead where a run of at
    least RESYNC_RUN equal elements starts (or, failing that within LOOKAHEAD, the longest run found)."""
    ops: list[Opcode] = []
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            k = _run(a, b, i, j, len(a))
            ops.append(("equal", i, i + k, j, j + k))
            i, j = i + k, j + k
            continue
        best, longest = None, 0
        for distance in range(1, LOOKAHEAD):
            for di in range(distance + 1):
                dj = distance - di
                run = _run(a, b, i + di, j + dj, RESYNC_RUN)
                if run > longest:
                    best, longest = (di, dj), run
                if run == RESYNC_RUN or (run and (i + di + run == len(a) or j + dj + run == len(b))):
                    best, longest = (di, dj), RESYNC_RUN
                    break
            if longest == RESYNC_RUN:
                break
        di, dj = best or (len(a) - i, len(b) - j)
        ops.append(("replace" if di and dj else "delete" if di else "insert", i, i + di, j, j + dj))
        i, j = i + di, j + dj
    if i < len(a):
        ops.append(("delete", i, len(a), j, j))
    if j < len(b):
        ops.append(("insert", i, i, j, len(b)))
    return ops


def _key(fields: dict[str, Any]) -> tuple:
    """A message's comparable content as one hashable value (equal keys: nothing to report)."""
    return tuple(sorted(fields.items()))


def diff(a: Capture, b: Capture, *, ignore: frozenset[str] = frozenset(), ignore_addresses: bool = False) -> Diff:
    """Align ``a`` and ``b`` and list every step.

    Messages are aligned on their whole comparable content, so identical messages always pair up;
    each stretch that differs is then aligned on (request, is_reply): pairs are "changed", the rest
    "missing" or "extra".
    """
    left, right = _channels(a), _channels(b)
    left_conns, right_conns = list(left), list(right)
    steps: list[Step] = []
    for i in range(max(len(left_conns), len(right_conns))):
        ca = left_conns[i] if i < len(left_conns) else None
        cb = right_conns[i] if i < len(right_conns) else None
        channels_a = left.get(ca, {}) if ca is not None else {}
        channels_b = right.get(cb, {}) if cb is not None else {}
        for channel in dict.fromkeys([*channels_a, *channels_b]):
            rows_a, rows_b = channels_a.get(channel, []), channels_b.get(channel, [])
            fields_a = [_comparable(r, ignore, ignore_addresses) for r in rows_a]
            fields_b = [_comparable(r, ignore, ignore_addresses) for r in rows_b]
            pairing = _Pairing((ca, cb), channel, rows_a, rows_b, fields_a, fields_b, steps)
            for tag, i1, i2, j1, j2 in align([_key(f) for f in fields_a], [_key(f) for f in fields_b]):
                if tag == "equal":
                    pairing.equal(i1, i2, j1)
                else:
                    pairing.differing(i1, i2, j1, j2)
    return Diff(a.label, b.label, steps)


class _Pairing:
    """Turns the alignment of one connection pair's channel into steps."""

    def __init__(
        self,
        conn: tuple[int | None, int | None],
        channel: str,
        rows_a: list[dict[str, Any]],
        rows_b: list[dict[str, Any]],
        fields_a: list[dict[str, Any]],
        fields_b: list[dict[str, Any]],
        steps: list[Step],
    ) -> None:
        self.conn, self.channel = conn, channel
        self.rows_a, self.rows_b = rows_a, rows_b
        self.fields_a, self.fields_b = fields_a, fields_b
        self.steps = steps

    def step(self, kind: str, i: int | None, j: int | None, changes: list | None = None) -> None:
        ra = self.rows_a[i] if i is not None else None
        rb = self.rows_b[j] if j is not None else None
        self.steps.append(
            Step(
                kind,
                self.conn,
                self.channel,
                _label(ra if ra is not None else rb),  # type: ignore[arg-type]
                ra["row"] if ra else None,
                rb["row"] if rb else None,
                int(ra["ts_ns"]) if ra else None,
                int(rb["ts_ns"]) if rb else None,
                changes or [],
            )
        )

    def equal(self, i1: int, i2: int, j1: int) -> None:
        for k in range(i2 - i1):
            self.step("equal", i1 + k, j1 + k)

    def differing(self, i1: int, i2: int, j1: int, j2: int) -> None:
        labels_a = [_label(r) for r in self.rows_a[i1:i2]]
        labels_b = [_label(r) for r in self.rows_b[j1:j2]]
        for tag, k1, k2, l1, l2 in align(labels_a, labels_b):
            if tag == "equal":
                for k, m in zip(range(i1 + k1, i1 + k2), range(j1 + l1, j1 + l2), strict=True):
                    self.step("changed", k, m, _changes(self.fields_a[k], self.fields_b[m]))
                continue
            for k in range(i1 + k1, i1 + k2):
                self.step("missing", k, None)
            for m in range(j1 + l1, j1 + l2):
                self.step("extra", None, m)


def _changes(left: dict[str, Any], right: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    names = list(dict.fromkeys([*left, *right]))
    return [(n, left.get(n), right.get(n)) for n in names if left.get(n) != right.get(n)]
