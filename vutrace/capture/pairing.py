"""Pair each reply with the request it answers, per connection and channel.

vhost-user is request/response per channel: the requester (front-end on the main socket,
back-end on the back-end channel) sends a request and, when the spec says a reply comes, waits
for it. A reply answers the oldest still unanswered request with the same request id on the same
connection and channel. Which requests wait: those whose rule is "always", any with NEED_REPLY
set (REPLY_ACK), unknown ids, and "conditional" ones (a reply comes only in a stated condition,
e.g. SET_LOG_BASE with LOG_SHMFD) until a newer request of the same id shows they got none.
"""

from __future__ import annotations

from collections import deque
from functools import cache

import numpy as np

from dissectors.spec import ReplyRule, lookup

WAITS = 2
MAY_WAIT = 1
NO_REPLY = 0


@cache
def reply_expectation(channel: str, request_id: int, need_reply: bool) -> int:
    """WAITS, MAY_WAIT or NO_REPLY for a request."""
    message = lookup(channel, request_id)
    if message is None or need_reply or message.reply_rule is ReplyRule.ALWAYS:
        return WAITS
    if message.reply_rule is ReplyRule.CONDITIONAL:
        return MAY_WAIT
    return NO_REPLY


def pair_replies(
    rows: np.ndarray,
    conn: list[int],
    channel: list[int],
    request_id: list[int],
    is_reply: list[bool],
    expect: list[int],
    ts_ns: np.ndarray,
    n: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Pair the message rows ``rows`` (in time order, with their fields in the lists; ``expect`` is
    ``reply_expectation`` for requests). Returns ``reply_to`` (row of the answered request, -1 if
    none) and ``latency_ns`` (-1 if none), both of length ``n``."""
    reply_to = np.full(n, -1, dtype=np.int64)
    pending: dict[tuple[int, int, int], deque[tuple[int, int]]] = {}
    for row, c, ch, rid, reply, wait in zip(rows.tolist(), conn, channel, request_id, is_reply, expect, strict=True):
        key = (c, ch, rid)
        queue = pending.get(key)
        if reply:
            if queue:
                reply_to[row] = queue.popleft()[0]
            continue
        if wait == NO_REPLY:
            continue
        if queue is None:
            queue = pending[key] = deque()
        while queue and queue[-1][1] == MAY_WAIT:
            queue.pop()
        queue.append((row, wait))
    answered = reply_to >= 0
    latency = np.full(n, -1, dtype=np.int64)
    latency[answered] = ts_ns[answered] - ts_ns[reply_to[answered]]
    return reply_to, latency
