"""Rules on the 12-byte header and the payload size: version, REPLY bit, reply flags, ids, sizes."""

from __future__ import annotations

from collections.abc import Iterator

from dissectors.spec import FLAG_KNOWN_MASK, FLAG_REPLY, VERSION
from vutrace.analysis.checks.context import REQUESTER, CheckContext
from vutrace.analysis.checks.model import Hit, Severity, rule

REPLY_FLAGS = VERSION | FLAG_REPLY
"""The only reply flags QEMU accepts (vhost_user_read_header)."""
_SIDE = {"frontend": "front-end", "backend": "back-end"}


@rule("header.version", Severity.ERROR, "Version bits of the flags are 1", "Header", "F1")
def version(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.messages():
        if row.get("request") != "TRUNCATED" and row.get("version") != VERSION:
            yield Hit(
                f"{row['request']}: version {row.get('version')} in flags {row.get('flags', 0):#x}, expected {VERSION}",
                (row["row"],),
            )


@rule("header.reserved-flags", Severity.WARNING, "No undefined flag bits set", "Header", "F1")
def reserved_flags(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.messages():
        extra = int(row.get("flags", 0)) & ~FLAG_KNOWN_MASK
        if extra and row.get("request") != "TRUNCATED":
            yield Hit(f"{row['request']}: undefined flag bits {extra:#x} set (flags {row['flags']:#x})", (row["row"],))


@rule(
    "header.reply-bit",
    Severity.ERROR,
    "Requests come from the requesting side without REPLY, replies from the other side with it",
    "Header",
    "F1",
)
def reply_bit(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.messages():
        if row.get("request") == "TRUNCATED":
            continue
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


@rule("reply.flags", Severity.ERROR, "Replies carry flags 0x5 exactly (QEMU rejects anything else)", "Header", "F1")
def reply_flags(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.replies_sent():
        flags = int(row.get("flags", 0))
        if flags != REPLY_FLAGS and row.get("version") == VERSION and not flags & ~FLAG_KNOWN_MASK:
            yield Hit(f"{row['request']} reply with flags {flags:#x}, expected {REPLY_FLAGS:#x}", (row["row"],))


@rule("message.unknown", Severity.ERROR, "Request ids are defined for their channel", "Front-end message types", "F3")
def unknown(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.messages():
        if str(row.get("request", "")).startswith("UNKNOWN_"):
            yield Hit(
                f"request id {row.get('request_id')} is not defined on the {row['channel']} channel", (row["row"],)
            )


@rule("message.truncated", Severity.ERROR, "Every message has a complete header and payload", "Header", "F3")
def truncated(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.messages():
        error = str(row.get("error") or "")
        if row.get("request") == "TRUNCATED" or "truncated payload" in error:
            yield Hit(f"{row.get('request')}: {error or 'truncated'}", (row["row"],))


_COVERED = ("version ", "unknown request id", "truncated")
"""Decoder error parts other rules report (header.version, message.unknown, message.truncated)."""


@rule("payload.size", Severity.ERROR, "Payload size matches the message's payload type", "Message Specification", "F3")
def payload_size(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.messages():
        error = row.get("error")
        if not error or row.get("request") == "TRUNCATED":
            continue
        parts = [p for p in str(error).split("; ") if not p.startswith(_COVERED)]
        if parts:
            kind = "reply" if row.get("is_reply") else "request"
            yield Hit(f"{row['request']} {kind}: " + "; ".join(parts), (row["row"],))
