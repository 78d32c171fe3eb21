"""What the peers negotiated, and the spec checks both peers run on every message they receive.

The facts (ids, layouts, FD rules, gates, reply rules) come from
``dissectors.spec``; sizes and FD counts are checked by ``dissectors.records``
(its ``error``/``warning``). This module adds what needs the conversation:
feature gates, NEED_REPLY without REPLY_ACK, exact reply flags and ids, FDs
that depend on a negotiated feature, FDs that came after the first byte.
Every problem is one line naming the message, the field, expected and got.
"""

from __future__ import annotations

from dataclasses import dataclass

from dissectors import spec
from dissectors.spec import F_PROTOCOL_FEATURES, VERSION, Channel, Gate, Message, ProtocolFeature, ReplyRule
from vutrace.sim.wire import Received

REPLY_FLAGS = VERSION | spec.FLAG_REPLY
"""QEMU accepts a reply only with exactly these flags (0x5); its requests carry 0x1, or 0x9 with NEED_REPLY."""


@dataclass
class Negotiation:
    """The feature words of one connection, as far as they were exchanged."""

    offered_features: int = 0
    """GET_FEATURES reply (virtio feature bits the back-end offers)."""
    acked_features: int | None = None
    """Last SET_FEATURES (None before the first)."""
    offered_protocol: int = 0
    """GET_PROTOCOL_FEATURES reply."""
    acked_protocol: int = 0
    """Last SET_PROTOCOL_FEATURES."""

    @property
    def protocol_features_offered(self) -> bool:
        return bool(self.offered_features >> F_PROTOCOL_FEATURES & 1)

    def has(self, feature: ProtocolFeature) -> bool:
        """A protocol feature is negotiated when the back-end offered it and the front-end acked it."""
        bit = 1 << feature
        return self.protocol_features_offered and bool(self.offered_protocol & self.acked_protocol & bit)

    @property
    def reply_ack(self) -> bool:
        return self.has(ProtocolFeature.REPLY_ACK)

    def virtio_acked(self, bit: int) -> bool:
        return self.acked_features is not None and bool(self.acked_features >> bit & 1)

    def gate_problem(self, gate: Gate) -> str | None:
        """Why a gated message may not be sent now, or None when its gate is open."""
        if gate.needs_protocol_features and not self.protocol_features_offered:
            return "needs VHOST_USER_F_PROTOCOL_FEATURES (bit 30), which GET_FEATURES did not offer"
        if gate.protocol is not None and not self.has(gate.protocol):
            where = "offered" if self.offered_protocol >> gate.protocol & 1 else "not offered"
            return (
                f"needs protocol feature {gate.protocol.name} (bit {int(gate.protocol)}), "
                f"not negotiated ({where} by the back-end, "
                f"{'acked' if self.acked_protocol >> gate.protocol & 1 else 'not acked'} by the front-end)"
            )
        if gate.virtio is not None and not self.virtio_acked(gate.virtio):
            name = spec.VIRTIO_FEATURES.get(gate.virtio, f"bit {gate.virtio}")
            return f"needs virtio feature {name} (bit {gate.virtio}) acked in SET_FEATURES"
        return None

    def replies_to(self, message: Message, need_reply: bool) -> bool:
        """Whether the receiver of this request answers it (spec reply rules, REPLY_ACK)."""
        if message.reply_rule is ReplyRule.ALWAYS:
            return True
        if message.name == "SET_LOG_BASE" and self.has(ProtocolFeature.LOG_SHMFD):
            return True
        if message.channel is Channel.BACKEND and message.reply_rule is ReplyRule.CONDITIONAL:
            return need_reply
        return need_reply and self.reply_ack


def _flags_problems(name: str, flags: int, *, reply: bool) -> list[str]:
    problems = []
    if flags & spec.FLAG_VERSION_MASK != VERSION:
        problems.append(f"{name}: flags version bits expected {VERSION}, got {flags & spec.FLAG_VERSION_MASK}")
    if reply and flags != REPLY_FLAGS:
        problems.append(f"{name} reply: flags expected 0x{REPLY_FLAGS:x}, got 0x{flags:x}")
    if not reply and flags & spec.FLAG_REPLY:
        problems.append(f"{name}: flags 0x{flags:x} have the REPLY bit (0x4) set on a request")
    if not reply and flags & ~spec.FLAG_KNOWN_MASK:
        problems.append(f"{name}: flags 0x{flags:x} have undefined bits 0x{flags & ~spec.FLAG_KNOWN_MASK:x}")
    return problems


def _decoder_problems(name: str, message: Received) -> list[str]:
    record = message.record
    problems = [f"{name}: {text}" for text in (record["error"], record["warning"]) if text]
    if message.late_fds:
        problems.append(f"{name}: {message.late_fds} FD(s) arrived after the first byte of the header")
    return problems


def check_request(message: Received, channel: Channel, negotiation: Negotiation) -> tuple[Message | None, list[str]]:
    """The spec facts of a received request and everything wrong with it."""
    record = message.record
    facts = spec.lookup(channel, record["request_id"])
    if facts is None:
        return None, [f"request id {record['request_id']} is not defined on the {channel.value} channel"]
    name = facts.name
    if record["is_reply"]:
        return facts, [f"{name}: a reply (flags 0x{record['flags']:x}) arrived where a request was expected"]
    problems = _flags_problems(name, record["flags"], reply=False) + _decoder_problems(name, message)
    gate = negotiation.gate_problem(facts.gate)
    if gate:
        problems.append(f"{name}: {gate}")
    if record["need_reply"] and not negotiation.reply_ack and facts.reply_rule is not ReplyRule.ALWAYS:
        problems.append(f"{name}: NEED_REPLY (0x8) set but REPLY_ACK was not negotiated")
    if name == "SET_LOG_BASE":
        wanted = 1 if negotiation.has(ProtocolFeature.LOG_SHMFD) else 0
        if len(message.fds) != wanted:
            problems.append(f"SET_LOG_BASE: {len(message.fds)} FDs, expected {wanted} (LOG_SHMFD decides)")
    if channel is Channel.BACKEND and message.fds and not negotiation.has(ProtocolFeature.BACKEND_SEND_FD):
        problems.append(f"{name}: {len(message.fds)} FD(s) on the back-end channel without BACKEND_SEND_FD")
    return facts, problems


def check_reply(message: Received, request: Message) -> list[str]:
    """Everything wrong with the reply to ``request`` (QEMU's rules: flags exactly 0x5, same id)."""
    record = message.record
    if record["request_id"] != request.id:
        got = spec.lookup(request.channel, record["request_id"] or 0)
        got_name = got.name if got else f"UNKNOWN_{record['request_id']}"
        return [f"reply to {request.name}: request id expected {request.id}, got {record['request_id']} ({got_name})"]
    flags = _flags_problems(request.name, record["flags"], reply=True)
    return flags or _decoder_problems(f"{request.name} reply", message)
