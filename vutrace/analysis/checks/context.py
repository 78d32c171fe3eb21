"""What every rule needs to know about a capture, computed once: rows, replies, negotiation per row.

The negotiation state attached to a message row is the one in force *before* that message, so a
rule can ask whether a feature was negotiated when a message was sent. Back-end channel rows get
the state of their connection's main channel at that moment.

Rules pick their rows with ``where`` (or ``messages``/``requests``/``replies_sent`` with a ``where``
condition): the condition is asked once per group of *alike* rows, rows of one shape (equal in every
column but the per-record ones, ``frame.PER_RECORD``) sent under the same negotiation state. A big
capture repeats a few messages many times, so this is a few thousand questions instead of a million.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Hashable
from functools import cached_property
from operator import itemgetter
from typing import Any, TypeVar

import numpy as np

from dissectors import spec
from dissectors.spec import Message, ProtocolFeature, ReplyRule
from vutrace.analysis import negotiation
from vutrace.analysis.frame import PROXY_CONN, Capture, Groups, is_event, is_message
from vutrace.analysis.negotiation import Negotiated, Tracker

END_EVENTS = ("disconnect", "error", "shutdown")
SEARCH_BACK = 64
"""How many earlier requests a reply's request is looked for among (a request waits for its reply)."""
REQUESTER = {"main": "frontend", "backend": "backend"}
"""Who sends requests on each channel; the other side replies."""

T = TypeVar("T")
Condition = Callable[[dict[str, Any]], Any]
"""A question about a row that reads only what alike rows share: the row's columns other than ``"row"``
and ``frame.PER_RECORD`` (whether those are present is shared too), ``spec_of`` and ``negotiated``."""


def every(row: dict[str, Any]) -> bool:
    """The condition every row passes."""
    return True


class CheckContext:
    """One capture prepared for the rules."""

    def __init__(self, capture: Capture) -> None:
        self.capture = capture
        self.label = capture.label
        self.records = capture.records
        self._alike = capture.shapes
        self._derived: dict[Callable[[CheckContext], Any], Any] = {}
        self._kinds: dict[tuple[str | None, str | None], np.ndarray] = {}
        self._ends: dict[int, list[dict[str, Any]]] = {}
        for row in self.where(lambda r: is_event(r, *END_EVENTS)):
            self._ends.setdefault(int(row.get("conn", 0)), []).append(row)
        self._negotiation: dict[int, tuple[list[int], list[Negotiated]]] = {}
        """Per connection: the rows that changed its negotiation state, and the state before each of them
        and after the last."""
        trackers: dict[int, Tracker] = {}
        for row in self.messages("main", where=lambda r: r.get("request") in negotiation.MESSAGES):
            conn = int(row.get("conn", 0))
            tracker = trackers.setdefault(conn, Tracker())
            before = tracker.state
            tracker.update(row)
            if tracker.state is not before:
                rows, states = self._negotiation.setdefault(conn, ([], [before]))
                rows.append(row["row"])
                states.append(tracker.state)
        self._alike = self._with_negotiation()
        self._kinds.clear()

    @cached_property
    def by_row(self) -> dict[int, dict[str, Any]]:
        return dict(zip(map(itemgetter("row"), self.records), self.records, strict=True))

    @cached_property
    def replies(self) -> dict[int, dict[str, Any]]:
        """The reply row of each answered request, keyed by the request's row."""
        return self.capture.replies()

    @cached_property
    def end_ns(self) -> int:
        """The time of the last record."""
        return int(max(map(itemgetter("ts_ns"), self.records), default=0))

    def _with_negotiation(self) -> Groups:
        """Each record's alike group: its shape, and for messages the negotiation state it was sent under."""
        shapes = self.capture.shapes
        if not self._negotiation:
            return shapes
        examples = shapes.examples
        conn = np.array([int(e.get("conn", 0)) for e in examples], dtype=np.int64)[shapes.number]
        message = np.array([is_message(e) for e in examples], dtype=bool)[shapes.number]
        labels = shapes.row_numbers
        state = np.zeros(len(self.records), dtype=np.int64)
        for number, (rows, _) in self._negotiation.items():
            mine = np.flatnonzero((conn == number) & message)
            state[mine] = np.searchsorted(np.array(rows, dtype=np.int64), labels[mine], side="left")
        return shapes.split(state)

    def groups(self, kind: str | None = None, channel: str | None = None) -> np.ndarray | None:
        """The alike groups of one kind of row, optionally on one channel (None: every group): "message",
        "request" (sent by the requesting side of its channel) or "reply" (sent by the replying side)."""
        if kind is None and channel is None:
            return None
        if (kind, channel) not in self._kinds:
            base = KINDS[kind or "message"]
            self._kinds[kind, channel] = self._alike.groups(
                lambda r: base(r) and (channel is None or r.get("channel") == channel)
            )
        return self._kinds[kind, channel]

    def where(
        self, condition: Condition = every, *, kind: str | None = None, channel: str | None = None
    ) -> list[dict[str, Any]]:
        """The rows (in capture order) of ``kind`` and ``channel`` whose alike group passes ``condition``."""
        return self._alike.where(condition, self.groups(kind, channel))

    def answers(
        self, question: Condition, *, kind: str | None = None, channel: str | None = None
    ) -> list[tuple[dict[str, Any], Any]]:
        """(row, answer) for the rows of ``kind`` and ``channel`` whose alike group gets a true answer."""
        return self._alike.answers(question, self.groups(kind, channel))

    def row_numbers(self, condition: Condition, *, kind: str | None = None, channel: str | None = None) -> np.ndarray:
        """The ``"row"`` of the rows that ``where`` selects."""
        return self._alike.row_numbers_where(condition, self.groups(kind, channel))

    def row_numbers_by(
        self,
        condition: Condition,
        key: Callable[[dict[str, Any]], Hashable],
        *,
        kind: str | None = None,
        channel: str | None = None,
    ) -> dict[Hashable, np.ndarray]:
        """The ``"row"`` of the rows that ``where`` selects, split by ``key`` (which reads what ``condition``
        may read); each array in capture order."""
        return self._alike.row_numbers_by(condition, key, self.groups(kind, channel))

    def derived(self, make: Callable[[CheckContext], T]) -> T:
        """``make(self)``, computed once per capture: for facts that several rules use."""
        if make not in self._derived:
            self._derived[make] = make(self)
        return self._derived[make]

    def messages(self, channel: str | None = None, *, where: Condition = every) -> list[dict[str, Any]]:
        """Messages (of ``channel``) passing ``where``."""
        return self.where(where, kind="message", channel=channel)

    def requests(self, channel: str | None = None, *, where: Condition = every) -> list[dict[str, Any]]:
        """Messages sent by the requesting side of their channel without the REPLY bit, passing ``where``."""
        return self.where(where, kind="request", channel=channel)

    def replies_sent(self, *, where: Condition = every) -> list[dict[str, Any]]:
        """Replies from the replying side of their channel, passing ``where``."""
        return self.where(where, kind="reply")

    def spec_of(self, row: dict[str, Any]) -> Message | None:
        request_id = row.get("request_id")
        if request_id is None or row.get("channel") not in REQUESTER:
            return None
        return spec.lookup(row["channel"], int(request_id))

    def negotiated(self, row: dict[str, Any]) -> Negotiated:
        if not is_message(row):
            return Negotiated()
        changes = self._negotiation.get(int(row.get("conn", 0)))
        if changes is None:
            return Negotiated()
        rows, states = changes
        return states[bisect.bisect_left(rows, row["row"])]

    def expects_reply(self, row: dict[str, Any]) -> bool:
        """Whether the spec obliges the receiver to answer this request, given what was negotiated."""
        message = self.spec_of(row)
        if message is None:
            return False
        state = self.negotiated(row)
        acked = bool(row.get("need_reply")) and state.reply_ack
        if message.reply_rule is ReplyRule.ALWAYS:
            return True
        if message.reply_rule is ReplyRule.ACK:
            return acked
        if message.name == "SET_LOG_BASE":
            return acked or state.protocol(ProtocolFeature.LOG_SHMFD)
        if message.name in ("SET_MEM_TABLE", "ADD_MEM_REG") and "result" not in row:
            return acked or state.postcopy_listening
        return acked

    def end_of_wait(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """The first event after ``row`` that ended its connection or the proxy (disconnect, error, shutdown)."""
        found = []
        for conn in {int(row.get("conn", 0)), PROXY_CONN}:
            ends = self._ends.get(conn, [])
            index = bisect.bisect_right(ends, row["row"], key=lambda e: e["row"])
            if index < len(ends):
                found.append(ends[index])
        return min(found, key=lambda e: e["row"], default=None)

    @cached_property
    def _requests(self) -> dict[tuple[int, str], list[dict[str, Any]]]:
        """The requests of each connection and channel."""
        found: dict[tuple[int, str], list[dict[str, Any]]] = {}
        for row in self.requests():
            found.setdefault((int(row.get("conn", 0)), row["channel"]), []).append(row)
        return found

    def last_request_before(self, row: dict[str, Any], request_id: int | None = None) -> dict[str, Any] | None:
        """The last request before ``row`` on its connection and channel (with ``request_id``, if given)."""
        requests = self._requests.get((int(row.get("conn", 0)), row["channel"]), [])
        index = bisect.bisect_left(requests, row["row"], key=lambda r: r["row"])
        for request in reversed(requests[max(index - SEARCH_BACK, 0) : index]):
            if request_id is None or request.get("request_id") == request_id:
                return request
        return None


def is_request_sent(row: dict[str, Any]) -> bool:
    """A message from the requesting side of its channel without the REPLY bit."""
    return is_message(row) and not row.get("is_reply") and row.get("sender") == REQUESTER[row["channel"]]


def is_reply_sent(row: dict[str, Any]) -> bool:
    """A reply from the replying side of its channel."""
    return is_message(row) and bool(row.get("is_reply")) and row.get("sender") != REQUESTER[row["channel"]]


KINDS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "message": is_message,
    "request": is_request_sent,
    "reply": is_reply_sent,
}
