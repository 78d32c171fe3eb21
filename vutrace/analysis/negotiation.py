"""What a connection has negotiated at each point of the conversation.

Feature words come from four messages: the GET_FEATURES reply (virtio features the back-end
offers), SET_FEATURES (what the front-end acks, including the LOG_ALL toggles during migration),
the GET_PROTOCOL_FEATURES reply and SET_PROTOCOL_FEATURES. ``Tracker`` follows them message by
message, so the checker can ask "was REPLY_ACK negotiated when this request was sent?" and the
session view can list every negotiation round, not only the last.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from dissectors import spec
from dissectors.spec import F_LOG_ALL, F_PROTOCOL_FEATURES, ProtocolFeature


def virtio_names(value: int) -> list[str]:
    """Names of the virtio/vhost feature bits in a feature word (device bits as ``bit<N>``)."""
    return spec.feature_names(value, spec.VIRTIO_FEATURES)


def protocol_names(value: int) -> list[str]:
    """Names of the vhost-user protocol feature bits in a protocol feature word."""
    return spec.feature_names(value, spec.PROTOCOL_FEATURE_NAMES)


def has_bit(value: int | None, bit: int) -> bool:
    return value is not None and bool(value >> bit & 1)


@dataclass(frozen=True)
class Negotiated:
    """The feature words of one connection as of one message (None: not exchanged yet)."""

    offered_features: int | None = None
    """The last GET_FEATURES reply."""
    acked_features: int | None = None
    """The last SET_FEATURES request."""
    offered_protocol: int | None = None
    """The last GET_PROTOCOL_FEATURES reply."""
    acked_protocol: int | None = None
    """The last SET_PROTOCOL_FEATURES request."""
    postcopy_listening: bool = False
    """POSTCOPY_LISTEN was sent and POSTCOPY_END not yet: memory-table messages get replies."""

    @property
    def protocol_features(self) -> int:
        """Protocol features both offered and acked: the ones in force."""
        if self.acked_protocol is None:
            return 0
        if self.offered_protocol is None:
            return self.acked_protocol
        return self.acked_protocol & self.offered_protocol

    def protocol(self, feature: ProtocolFeature) -> bool:
        return has_bit(self.protocol_features, feature)

    def virtio(self, bit: int) -> bool:
        """A virtio feature bit acked by the front-end (SET_FEATURES)."""
        return has_bit(self.acked_features, bit)

    @property
    def protocol_features_offered(self) -> bool:
        """VHOST_USER_F_PROTOCOL_FEATURES (bit 30) was in a GET_FEATURES reply."""
        return has_bit(self.offered_features, F_PROTOCOL_FEATURES)

    @property
    def reply_ack(self) -> bool:
        return self.protocol(ProtocolFeature.REPLY_ACK)

    @property
    def log_all(self) -> bool:
        """Dirty logging is on (LOG_ALL in the last SET_FEATURES)."""
        return self.virtio(F_LOG_ALL)


@dataclass(frozen=True)
class Round:
    """One feature word exchanged: an offer (GET_* reply) or an ack (SET_* request)."""

    ts_ns: int
    row: int
    conn: int
    message: str
    """GET_FEATURES, SET_FEATURES, GET_PROTOCOL_FEATURES or SET_PROTOCOL_FEATURES."""
    value: int
    previous: int | None
    """The previous word of the same message in this connection."""

    @property
    def kind(self) -> str:
        return "offer" if self.message.startswith("GET_") else "ack"

    @property
    def protocol(self) -> bool:
        return "PROTOCOL" in self.message

    def names(self) -> list[str]:
        return protocol_names(self.value) if self.protocol else virtio_names(self.value)

    def delta(self) -> tuple[list[str], list[str]]:
        """Names of the bits added and removed since the previous word (empty for the first)."""
        if self.previous is None:
            return [], []
        names = protocol_names if self.protocol else virtio_names
        return names(self.value & ~self.previous), names(self.previous & ~self.value)


_FIELDS = {
    ("GET_FEATURES", True): ("features", "offered_features"),
    ("SET_FEATURES", False): ("features", "acked_features"),
    ("GET_PROTOCOL_FEATURES", True): ("protocol_features", "offered_protocol"),
    ("SET_PROTOCOL_FEATURES", False): ("protocol_features", "acked_protocol"),
}
MESSAGES = frozenset({"POSTCOPY_LISTEN", "POSTCOPY_END"} | {name for name, _ in _FIELDS})
"""The main-channel messages ``Tracker.update`` looks at: any other row leaves the state as it is."""


class Tracker:
    """Follows one connection's negotiation; feed it the connection's message rows in order."""

    def __init__(self) -> None:
        self.state = Negotiated()
        self.rounds: list[Round] = []

    def update(self, row: dict[str, Any]) -> Round | None:
        """Take one row into account; returns the negotiation round it was, if any."""
        if row.get("channel") != "main":
            return None
        name = row.get("request")
        is_reply = bool(row.get("is_reply"))
        if name == "POSTCOPY_LISTEN" and not is_reply:
            self.state = replace(self.state, postcopy_listening=True)
        elif name == "POSTCOPY_END" and not is_reply:
            self.state = replace(self.state, postcopy_listening=False)
        key = _FIELDS.get((name, is_reply))
        if key is None or key[0] not in row:
            return None
        field, attribute = key
        value = int(row[field])
        previous = getattr(self.state, attribute)
        self.state = replace(self.state, **{attribute: value})
        found = Round(int(row["ts_ns"]), int(row["row"]), int(row.get("conn", 0)), name, value, previous)
        self.rounds.append(found)
        return found
