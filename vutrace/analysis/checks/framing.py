"""Rules on the 12-byte header and the payload size: version, REPLY bit, reply flags, ids, sizes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dissectors.spec import FLAG_KNOWN_MASK, FLAG_REPLY, VERSION
from vutrace.analysis.checks.context import REQUESTER, CheckContext
from vutrace.analysis.checks.model import Hit, Severity, rule

REPLY_FLAGS = VERSION | FLAG_REPLY
"""The only reply flags QEMU accepts (vhost_user_read_header)."""
_SIDE = {"frontend": "front-end", "backend": "back-end"}


@rule("header.version", Severity.ERROR, "Version bits of the flags are 1", "Header", "F1")
def version(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.messages(where=lambda r: r.get("request") != "TRUNCATED" and r.get("version") != VERSION):
        yield Hit(
            f"{row['request']}: version {row.get('version')} in flags {row.get('flags', 0):#x}, expected {VERSION}",
            (row["row"],),
        )


@rule("header.reserved-flags", Severity.WARNING, "No undefined flag bits set", "Header", "F1")
def reserved_flags(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.messages(where=lambda r: _undefined_flags(r) and r.get("request") != "TRUNCATED"):
        extra = _undefined_flags(row)
        yield Hit(f"{row['request']}: undefined flag bits {extra:#x} set (flags {row['flags']:#x})", (row["row"],))


def _undefined_flags(row: dict[str, Any]) -> int:
    return int(row.get("flags", 0)) & ~FLAG_KNOWN_MASK


@rule(
    "header.reply-bit",
    Severity.ERROR,
    "Requests come from the requesting side without REPLY, replies from the other side with it",
    "Header",
    "F1",
)
def reply_bit(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.messages(where=_wrong_reply_bit):
        requester = REQUESTER[row["channel"]]
        sender = row.get("sender")
        channel = "main socket" if row["channel"] == "main" else "back-end channel"
        if row.get("is_reply") and sender == requester:
            yield Hit(
                f"{_SIDE.get(sender, sender)} sent {row['request']} with the REPLY bit (flags {row['flags']:#x}) "
                f"on the {channel}, where it sends requests",
                (row["row"],),
            )
        elif not row.get("is_reply") and sender != requester:
            yield Hit(
                f"{_SIDE.get(sender, sender)} sent {row['request']} without the REPLY bit (flags {row['flags']:#x}) on "
                f"the {channel}, where it only replies",
                (row["row"],),
            )


def _wrong_reply_bit(row: dict[str, Any]) -> bool:
    """A reply from the side that sends requests, or a request from the side that replies."""
    if row.get("request") == "TRUNCATED":
        return False
    return bool(row.get("is_reply")) == (row.get("sender") == REQUESTER[row["channel"]])


@rule("reply.flags", Severity.ERROR, "Replies carry flags 0x5 exactly (QEMU rejects anything else)", "Header", "F1")
def reply_flags(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.replies_sent(where=_unusual_reply_flags):
        yield Hit(
            f"{row['request']} reply with flags {int(row.get('flags', 0)):#x}, expected {REPLY_FLAGS:#x}", (row["row"],)
        )


def _unusual_reply_flags(row: dict[str, Any]) -> bool:
    flags = int(row.get("flags", 0))
    return flags != REPLY_FLAGS and row.get("version") == VERSION and not flags & ~FLAG_KNOWN_MASK


@rule("message.unknown", Severity.ERROR, "Request ids are defined for their channel", "Front-end message types", "F3")
def unknown(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.messages(where=lambda r: str(r.get("request", "")).startswith("UNKNOWN_")):
        yield Hit(f"request id {row.get('request_id')} is not defined on the {row['channel']} channel", (row["row"],))


@rule("message.truncated", Severity.ERROR, "Every message has a complete header and payload", "Header", "F3")
def truncated(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.messages(
        where=lambda r: r.get("request") == "TRUNCATED" or "truncated payload" in str(r.get("error") or "")
    ):
        error = str(row.get("error") or "")
        yield Hit(f"{row.get('request')}: {error or 'truncated'}", (row["row"],))


_COVERED = ("version ", "unknown request id", "truncated")
"""Decoder error parts other rules report (header.version, message.unknown, message.truncated)."""


@rule("payload.size", Severity.ERROR, "Payload size matches the message's payload type", "Message Specification", "F3")
def payload_size(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.messages(where=_size_problems):
        kind = "reply" if row.get("is_reply") else "request"
        yield Hit(f"{row['request']} {kind}: " + "; ".join(_size_problems(row)), (row["row"],))


def _size_problems(row: dict[str, Any]) -> list[str]:
    """The parts of the decoder's error that no other rule reports."""
    error = row.get("error")
    if not error or row.get("request") == "TRUNCATED":
        return []
    return [p for p in str(error).split("; ") if not p.startswith(_COVERED)]
