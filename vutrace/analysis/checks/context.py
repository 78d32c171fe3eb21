"""What every rule needs to know about a capture, computed once: rows, replies, negotiation per row.

The negotiation state attached to a message row is the one in force *before* that message, so a
rule can ask whether a feature was negotiated when a message was sent. Back-end channel rows get
the state of their connection's main channel at that moment.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any

from dissectors import spec
from dissectors.spec import Message, ProtocolFeature, ReplyRule
from vutrace.analysis.frame import PROXY_CONN, Capture, is_event, is_message
from vutrace.analysis.negotiation import Negotiated, Tracker

END_EVENTS = ("disconnect", "error", "shutdown")
SEARCH_BACK = 64
"""How many earlier requests a reply's request is looked for among (a request waits for its reply)."""
REQUESTER = {"main": "frontend", "backend": "backend"}
"""Who sends requests on each channel; the other side replies."""


class CheckContext:
    """One capture prepared for the rules."""

    def __init__(self, capture: Capture) -> None:
        self.capture = capture
        self.label = capture.label
        self.records = capture.records
        self.by_row = {r["row"]: r for r in self.records}
        self.replies = capture.replies()
        self.before: dict[int, Negotiated] = {}
        self.end_ns = max((int(r["ts_ns"]) for r in self.records), default=0)
        self._requests: dict[tuple[int, str], list[dict[str, Any]]] = {}
        self._ends: dict[int, list[dict[str, Any]]] = {}
        trackers: dict[int, Tracker] = {}
        for row in self.records:
            conn = int(row.get("conn", 0))
            if is_event(row, *END_EVENTS):
                self._ends.setdefault(conn, []).append(row)
            if not is_message(row):
                continue
            tracker = trackers.setdefault(conn, Tracker())
            self.before[row["row"]] = tracker.state
            tracker.update(row)
            if not row.get("is_reply") and row.get("sender") == REQUESTER[row["channel"]]:
                self._requests.setdefault((conn, row["channel"]), []).append(row)

    def messages(self, channel: str | None = None) -> Iterator[dict[str, Any]]:
        for row in self.records:
            if is_message(row) and (channel is None or row.get("channel") == channel):
                yield row

    def requests(self, channel: str | None = None) -> Iterator[dict[str, Any]]:
        """Messages sent by the requesting side of their channel without the REPLY bit."""
        for row in self.messages(channel):
            if not row.get("is_reply") and row.get("sender") == REQUESTER[row["channel"]]:
                yield row

    def replies_sent(self) -> Iterator[dict[str, Any]]:
        """Replies from the replying side of their channel."""
        for row in self.messages():
            if row.get("is_reply") and row.get("sender") != REQUESTER[row["channel"]]:
                yield row

    def spec_of(self, row: dict[str, Any]) -> Message | None:
        request_id = row.get("request_id")
        if request_id is None or row.get("channel") not in REQUESTER:
            return None
        return spec.lookup(row["channel"], int(request_id))

    def negotiated(self, row: dict[str, Any]) -> Negotiated:
        return self.before.get(row["row"], Negotiated())

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

    def last_request_before(self, row: dict[str, Any], request_id: int | None = None) -> dict[str, Any] | None:
        """The last request before ``row`` on its connection and channel (with ``request_id``, if given)."""
        requests = self._requests.get((int(row.get("conn", 0)), row["channel"]), [])
        index = bisect.bisect_left(requests, row["row"], key=lambda r: r["row"])
        for request in reversed(requests[max(index - SEARCH_BACK, 0) : index]):
            if request_id is None or request.get("request_id") == request_id:
                return request
        return None
