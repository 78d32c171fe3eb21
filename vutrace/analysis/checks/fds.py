"""Rules on the FDs that travel with messages (SCM_RIGHTS): how many, on which messages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dissectors.spec import MAX_FDS, FdRule, Message, Payload, ProtocolFeature, fixed_size
from vutrace.analysis.checks.context import CheckContext
from vutrace.analysis.checks.model import Hit, Severity, rule

ACK_SIZE = fixed_size(Payload.RESULT)
"""ADD_MEM_REG / REM_MEM_REG also come as a u64 0 (QEMU's postcopy acknowledgement) without FDs."""


def expected_fds(ctx: CheckContext, row: dict[str, Any], message: Message) -> tuple[tuple[int, ...], str] | None:
    """The FD counts the spec allows for this message, with the reason; None when it cannot tell."""
    is_reply = bool(row.get("is_reply"))
    fd_rule = message.reply_fds if is_reply else message.request_fds
    if not is_reply and message.request_alt and row.get("size") == ACK_SIZE:
        return (0,), "the u64 acknowledgement form carries none"
    if fd_rule is FdRule.NONE:
        return (0,), "the message carries none"
    if fd_rule is FdRule.ONE:
        return (1,), "the message carries exactly one"
    if fd_rule is FdRule.PER_REGION:
        if row.get("num_regions") is None:
            return None
        return (int(row["num_regions"]),), f"one per region ({row['num_regions']} regions)"
    if fd_rule is FdRule.UNLESS_NOFD:
        if row.get("nofd") is None:
            return None
        if row["nofd"]:
            return (0,), "bit 8 (no FD) is set"
        return (1,), "bit 8 (no FD) is clear"
    if message.name == "SET_LOG_BASE":
        if ctx.negotiated(row).protocol(ProtocolFeature.LOG_SHMFD):
            return (1,), "LOG_SHMFD is negotiated"
        return (0,), "LOG_SHMFD is not negotiated"
    if message.name == "REM_MEM_REG":
        return None
    return (0, 1), "the FD is optional"


@rule("fd.count", Severity.ERROR, "Each message carries the FDs its type calls for", "Communication", "F4-F6")
def fd_count(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.messages(where=lambda r: _unexpected_fds(ctx, r) is not None):
        expected = _unexpected_fds(ctx, row)
        assert expected is not None
        nfds = int(row.get("nfds") or 0)
        kind = "reply" if row.get("is_reply") else "request"
        wanted = " or ".join(str(n) for n in expected[0])
        yield Hit(f"{row['request']} {kind} with {nfds} FDs, expected {wanted}: {expected[1]}", (row["row"],))


def _unexpected_fds(ctx: CheckContext, row: dict[str, Any]) -> tuple[tuple[int, ...], str] | None:
    """What the spec allows, for a message whose FD count it does not allow (None otherwise)."""
    message = ctx.spec_of(row)
    if message is None or row.get("request") == "TRUNCATED":
        return None
    expected = expected_fds(ctx, row, message)
    if expected is None or int(row.get("nfds") or 0) in expected[0]:
        return None
    return expected


@rule("fd.too-many", Severity.ERROR, "At most 8 FDs per message", "Communication", "F5")
def too_many(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.messages(where=lambda r: int(r.get("nfds") or 0) > MAX_FDS):
        nfds = int(row.get("nfds") or 0)
        yield Hit(f"{row['request']} carries {nfds} FDs, at most {MAX_FDS} are allowed", (row["row"],))


@rule(
    "fd.rem-mem-reg",
    Severity.WARNING,
    "REM_MEM_REG should carry no FD (the back-end must close one that arrives)",
    "Front-end message types",
    "F5",
)
def rem_mem_reg(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.requests("main", where=lambda r: r.get("request") == "REM_MEM_REG" and int(r.get("nfds") or 0) > 0):
        yield Hit(f"REM_MEM_REG with {row['nfds']} FD(s); the spec says none should be sent", (row["row"],))


@rule(
    "fd.backend-send-fd",
    Severity.ERROR,
    "FDs on the back-end channel only with BACKEND_SEND_FD",
    "Back-end communication",
    "F7",
)
def backend_send_fd(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.requests(
        "backend",
        where=lambda r: int(r.get("nfds") or 0) and not ctx.negotiated(r).protocol(ProtocolFeature.BACKEND_SEND_FD),
    ):
        yield Hit(
            f"back-end channel {row['request']} carries {row['nfds']} FD(s) but BACKEND_SEND_FD is not negotiated",
            (row["row"],),
        )


@rule(
    "fd.not-on-first-byte",
    Severity.ERROR,
    "FDs travel with the first byte of the message header",
    "Communication",
    "F4",
)
def not_on_first_byte(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.messages(where=lambda r: int(r.get("late_fds") or 0)):
        late = int(row.get("late_fds") or 0)
        kind = "reply" if row.get("is_reply") else "request"
        yield Hit(
            f"{row['request']} {kind} from the {row['sender']}: {late} of its {row['nfds']} FD(s) arrived after "
            "the first byte of the header; a receiver that reads FDs with the header loses them",
            (row["row"],),
        )
