"""Rules on feature negotiation: gated messages, acking what was not offered, feature dependencies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dissectors import spec
from dissectors.spec import PROTOCOL_FEATURE_REQUIRES, ProtocolFeature
from vutrace.analysis.checks.context import CheckContext
from vutrace.analysis.checks.model import Hit, Severity, rule
from vutrace.analysis.negotiation import Negotiated, protocol_names, virtio_names


def _gate_problem(message: spec.Message, state: Negotiated) -> str | None:
    gate = message.gate
    if gate.protocol is not None and not state.protocol(gate.protocol):
        if state.acked_protocol is None:
            return f"needs protocol feature {gate.protocol.name}, but no SET_PROTOCOL_FEATURES was sent"
        if state.offered_protocol is not None and not state.offered_protocol >> gate.protocol & 1:
            return (
                f"needs protocol feature {gate.protocol.name}, not offered by the back-end "
                f"(GET_PROTOCOL_FEATURES {state.offered_protocol:#x})"
            )
        return (
            f"needs protocol feature {gate.protocol.name}, not acked (SET_PROTOCOL_FEATURES {state.acked_protocol:#x})"
        )
    if gate.virtio is not None and not state.virtio(gate.virtio):
        name = spec.VIRTIO_FEATURES.get(gate.virtio, f"bit {gate.virtio}")
        return f"needs virtio feature {name} acked in SET_FEATURES"
    if gate.needs_protocol_features and not state.protocol_features_offered:
        if state.offered_features is None:
            return "needs PROTOCOL_FEATURES (bit 30) offered in a GET_FEATURES reply, but none came before"
        return f"needs PROTOCOL_FEATURES (bit 30), not in the GET_FEATURES reply {state.offered_features:#x}"
    return None


@rule(
    "gate.not-negotiated",
    Severity.ERROR,
    "Messages are sent only after the feature they depend on was negotiated",
    "Protocol features",
    "G1-G3, G6-G8",
)
def gate(ctx: CheckContext) -> Iterator[Hit]:
    for row, problem in ctx.answers(lambda r: _ungated(ctx, r), kind="request"):
        where = "" if row["channel"] == "main" else "back-end channel "
        yield Hit(f"{where}{row['request']} {problem}", (row["row"],))


def _ungated(ctx: CheckContext, row: dict[str, Any]) -> str | None:
    """What the message needs that was not negotiated before it (None: nothing)."""
    message = ctx.spec_of(row)
    return None if message is None else _gate_problem(message, ctx.negotiated(row))


@rule(
    "features.not-offered",
    Severity.ERROR,
    "SET_FEATURES acks only features the GET_FEATURES reply offered",
    "Front-end message types",
    "",
)
def features_not_offered(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.requests(
        "main", where=lambda r: r.get("request") == "SET_FEATURES" and r.get("features") is not None
    ):
        offered = ctx.negotiated(row).offered_features
        value = int(row["features"])
        if offered is None:
            yield Hit(f"SET_FEATURES {value:#x} before any GET_FEATURES reply", (row["row"],))
        elif value & ~offered:
            extra = virtio_names(value & ~offered)
            yield Hit(
                f"SET_FEATURES {value:#x} acks {', '.join(extra)}, not offered (GET_FEATURES {offered:#x})",
                (row["row"],),
            )


def _acks_protocol_features(row: dict[str, Any]) -> bool:
    return row.get("request") == "SET_PROTOCOL_FEATURES" and row.get("protocol_features") is not None


@rule(
    "protocol-features.not-offered",
    Severity.ERROR,
    "SET_PROTOCOL_FEATURES acks only protocol features the GET_PROTOCOL_FEATURES reply offered",
    "Protocol features",
    "G5",
)
def protocol_not_offered(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.requests("main", where=_acks_protocol_features):
        offered = ctx.negotiated(row).offered_protocol
        value = int(row["protocol_features"])
        if offered is None:
            yield Hit(f"SET_PROTOCOL_FEATURES {value:#x} before any GET_PROTOCOL_FEATURES reply", (row["row"],))
        elif value & ~offered:
            extra = protocol_names(value & ~offered)
            yield Hit(
                f"SET_PROTOCOL_FEATURES {value:#x} acks {', '.join(extra)}, not offered "
                f"(GET_PROTOCOL_FEATURES {offered:#x})",
                (row["row"],),
            )


@rule(
    "protocol-features.dependency",
    Severity.ERROR,
    "Protocol features that need others are negotiated with them",
    "Protocol features",
    "G4",
)
def dependency(ctx: CheckContext) -> Iterator[Hit]:
    for row in ctx.requests("main", where=_acks_protocol_features):
        value = int(row["protocol_features"])
        for feature, needs in PROTOCOL_FEATURE_REQUIRES.items():
            missing = [n.name for n in needs if value >> feature & 1 and not value >> n & 1]
            if missing:
                name = ProtocolFeature(feature).name
                yield Hit(
                    f"SET_PROTOCOL_FEATURES {value:#x} acks {name} without {', '.join(missing)}",
                    (row["row"],),
                )
