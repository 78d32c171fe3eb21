"""Rules on request/reply pairing: missing replies, replies nobody asked for, NEED_REPLY without REPLY_ACK.

The loader pairs a reply with the oldest unanswered request of the same id on the same connection
and channel (``reply_to``); these rules explain what is left unpaired.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from dissectors.spec import ProtocolFeature, ReplyRule
from vutrace.analysis.checks.context import REQUESTER, CheckContext
from vutrace.analysis.checks.model import Hit, Severity, rule
from vutrace.analysis.frame import attrs_of
from vutrace.analysis.sessions import human_duration

NEED_REPLY_ALWAYS_SET = frozenset({"POSTCOPY_LISTEN"})
"""Requests QEMU always sends with NEED_REPLY, whatever was negotiated (besides those that always get a reply)."""


def _waiting_other(ctx: CheckContext, reply: dict[str, Any]) -> dict[str, Any] | None:
    """The last request before an unpaired reply, if it has another id and still waits for its reply."""
    request = ctx.last_request_before(reply)
    if request is None:
        return None
    if request.get("request_id") == reply.get("request_id") or request["row"] in ctx.replies:
        return None
    return request if ctx.expects_reply(request) else None


@rule(
    "reply.wrong-id",
    Severity.ERROR,
    "A reply carries the id of the request it answers",
    "Communication",
    "F2",
)
def wrong_id(ctx: CheckContext) -> Iterator[Hit]:
    for reply in ctx.replies_sent(where=_unpaired):
        request = _waiting_other(ctx, reply)
        if request is not None:
            yield Hit(
                f"reply with id {reply.get('request_id')} ({reply['request']}) while {request['request']} "
                f"(id {request.get('request_id')}) waits for its reply",
                (request["row"], reply["row"]),
            )


def _unpaired(reply: dict[str, Any]) -> bool:
    """A reply the loader paired with no request (whether ``reply_to`` is present is the same for alike rows)."""
    return reply.get("reply_to") is None


@rule(
    "reply.unexpected",
    Severity.ERROR,
    "Every reply answers a request that asked for one",
    "Communication",
    "F2",
)
def unexpected(ctx: CheckContext) -> Iterator[Hit]:
    for reply in ctx.replies_sent(where=_unpaired):
        if _waiting_other(ctx, reply) is not None:
            continue
        same = ctx.last_request_before(reply, reply.get("request_id"))
        if same is not None and same["row"] not in ctx.replies:
            yield Hit(
                f"{reply['request']} reply, but the request (flags {same.get('flags', 0):#x}) did not ask for one",
                (same["row"], reply["row"]),
            )
        else:
            yield Hit(f"{reply['request']} reply without a request", (reply["row"],))


@rule(
    "reply.missing",
    Severity.ERROR,
    "Requests that need a reply get one (GET_*, NEED_REPLY with REPLY_ACK, 42, 43...)",
    "Communication",
    "F2",
)
def missing(ctx: CheckContext) -> Iterator[Hit]:
    awaited = ctx.row_numbers(
        lambda r: ctx.expects_reply(r) and r.get("request") != "SET_PROTOCOL_FEATURES", kind="request"
    )
    answered = np.fromiter(ctx.replies, dtype=np.int64, count=len(ctx.replies))
    for number in awaited[~np.isin(awaited, answered)].tolist():
        request = ctx.by_row[number]
        why = _why_needed(ctx, request)
        end = ctx.end_of_wait(request)
        if end is not None:
            waited = int(end["ts_ns"]) - int(request["ts_ns"])
            closer = attrs_of(end).get("closed_by")
            by = f" (closed by the {closer})" if closer else ""
            yield Hit(
                f"{request['request']} ({why}) got no reply: {end['request']}{by} {human_duration(waited)} later",
                (request["row"], end["row"]),
            )
        else:
            waited = ctx.end_ns - int(request["ts_ns"])
            yield Hit(
                f"{request['request']} ({why}) got no reply before the capture ended ({human_duration(waited)} later)",
                (request["row"],),
            )


def _why_needed(ctx: CheckContext, request: dict[str, Any]) -> str:
    message = ctx.spec_of(request)
    if message is not None and message.reply_rule is ReplyRule.ALWAYS:
        return "always answered"
    if request.get("need_reply") and ctx.negotiated(request).reply_ack:
        return "NEED_REPLY with REPLY_ACK"
    if request.get("request") == "SET_LOG_BASE":
        return "LOG_SHMFD negotiated"
    return "postcopy"


@rule(
    "reply.need-reply-without-reply-ack",
    Severity.WARNING,
    "NEED_REPLY is set only when REPLY_ACK was negotiated",
    "VHOST_USER_PROTOCOL_F_REPLY_ACK",
    "G2",
)
def need_reply_without_ack(ctx: CheckContext) -> Iterator[Hit]:
    for request in ctx.requests(where=lambda r: _needless_need_reply(ctx, r)):
        side = "front-end" if REQUESTER[request["channel"]] == "frontend" else "back-end"
        yield Hit(
            f"{side} set NEED_REPLY on {request['request']} but REPLY_ACK is not negotiated: "
            "the receiver need not reply",
            (request["row"],),
        )


def _needless_need_reply(ctx: CheckContext, request: dict[str, Any]) -> bool:
    """NEED_REPLY on a request that is not always answered, while REPLY_ACK is not negotiated."""
    if not request.get("need_reply"):
        return False
    message = ctx.spec_of(request)
    if message is None or message.reply_rule is ReplyRule.ALWAYS or message.name in NEED_REPLY_ALWAYS_SET:
        return False
    if ctx.negotiated(request).reply_ack:
        return False
    return not (
        message.name == "SET_PROTOCOL_FEATURES"
        and int(request.get("protocol_features") or 0) >> int(ProtocolFeature.REPLY_ACK) & 1
    )
