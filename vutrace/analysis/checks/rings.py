"""Rules on ring messages: reserved fields that must be zero (R5)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dissectors.spec import F_RING_PACKED
from vutrace.analysis.checks.context import CheckContext
from vutrace.analysis.checks.model import Hit, Severity, rule

RESERVED_NUM = {
    ("main", "GET_VRING_BASE"),
    ("main", "GET_VRING_BASE_SKIP_DRAIN"),
    ("main", "VRING_KICK"),
    ("backend", "VRING_CALL"),
    ("backend", "VRING_ERR"),
}
"""Requests whose vring-state ``num`` is reserved and must be 0."""
SPLIT_BASE_RESERVED = 0xFFFF0000
"""Bits 16-31 of a split ring's base index are reserved (set to zero)."""


@rule("ring.reserved-num", Severity.WARNING, "Reserved num of ring requests is 0", "Front-end message types", "R5")
def reserved_num(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.requests(where=lambda r: (r["channel"], r.get("request")) in RESERVED_NUM and r.get("num")):
        yield Hit(
            f"{row['request']} ring {row.get('vring')}: num is reserved and must be 0, got {row.get('num')}",
            (row["row"],),
        )


@rule(
    "ring.split-base-reserved-bits",
    Severity.WARNING,
    "Bits 16-31 of a split ring's base index are 0",
    "Payload (vring descriptor index for split virtqueues)",
    "R5",
)
def split_base_reserved_bits(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.messages("main", where=lambda r: _reserved_base_bits(ctx, r)):
        yield Hit(
            f"{row['request']}{' reply' if row.get('is_reply') else ''} ring {row.get('vring')}: split-ring base "
            f"{int(row['num']):#x} has reserved bits 16-31 set",
            (row["row"],),
        )


def _reserved_base_bits(ctx: CheckContext, row: dict[str, Any]) -> bool:
    """A split ring's base (SET_VRING_BASE, or a GET_VRING_BASE reply) with bits 16-31 set."""
    is_base = (row.get("request") == "SET_VRING_BASE" and not row.get("is_reply")) or (
        row.get("request") in ("GET_VRING_BASE", "GET_VRING_BASE_SKIP_DRAIN") and row.get("is_reply")
    )
    num = row.get("num")
    return bool(is_base and num and int(num) & SPLIT_BASE_RESERVED and not ctx.negotiated(row).virtio(F_RING_PACKED))
