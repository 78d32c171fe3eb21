"""The detail tree of one record, as plain items: labels, the byte span each one covers, children.

Built from the loaded row (decoded fields) and the facts of ``dissectors.spec``: feature bits by
name, memory regions as a table, FDs as the capture described them, the spec's rules for the
message. The widget turns the items into a Textual ``Tree``; nothing here reads bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dissectors import spec
from vutrace.tui.rows import SENDER_NAMES
from vutrace.views.lines import FRAME_COLUMNS, format_duration, format_value, missing

VALUE_NAMES: dict[str, dict[int, str]] = {
    "direction": spec.TRANSFER_DIRECTION,
    "phase": spec.MIGRATION_PHASE,
    "iotlb_type": spec.IOTLB_TYPE,
    "perm": spec.IOTLB_PERM,
    "config_flags": spec.CONFIG_FLAGS,
    "mmap_flags": spec.MMAP_FLAGS,
}
"""Payload fields whose values have names in the spec table."""
FEATURE_WORDS: dict[str, dict[int, str]] = {
    "features": spec.VIRTIO_FEATURES,
    "protocol_features": spec.PROTOCOL_FEATURE_NAMES,
}
DEVICE_BITS = 24
"""Virtio feature bits below this are device specific."""
REGION_HEADER = f"{'#':>2}  {'guest_addr':>14}  {'size':>12}  {'user_addr':>16}  {'mmap_offset':>12}  fd"


@dataclass
class Item:
    label: str
    span: str | None = None
    """The ``dissectors.fieldmap`` span this item's bytes are."""
    children: list[Item] = field(default_factory=list)
    expand: bool = False


def describe(
    row: dict[str, object], number: int, t0_ns: int, reply_row: int | None = None, tag: str = ""
) -> list[Item]:
    """The top-level items of the record ``row``: record ``number`` (1-based) of its capture (``tag`` "1:" or
    "2:" in a merged list); ``reply_row`` is the row of its reply, if it has one."""
    channel = str(row.get("channel"))
    items = [_record(row, f"{tag}{number}", t0_ns)]
    if channel in ("main", "backend"):
        items.extend(_message(row, channel))
    elif channel == "state":
        items.append(_state(row))
    else:
        items.append(_event(row))
    fds = row.get("fds")
    if not missing(fds) and fds:
        parts = str(fds).split("; ")
        items.append(Item(f"FDs ({len(parts)})", children=[Item(p) for p in parts], expand=True))
    items.extend(_pairing(row, reply_row))
    for label in ("error", "warning"):
        text = row.get(label)
        if not missing(text) and text:
            items.append(Item(f"{label.capitalize()}: {text}"))
    return items


def _record(row: dict[str, object], number: str, t0_ns: int) -> Item:
    sender = str(row.get("sender"))
    receiver = {"frontend": "back-end", "backend": "front-end"}.get(sender)
    who = SENDER_NAMES.get(sender, sender) + (f" → {receiver}" if receiver else "")
    ts = int(row["ts_ns"])  # type: ignore[call-overload]
    when = datetime.fromtimestamp(ts / 1e9, tz=UTC).isoformat(timespec="microseconds")
    raw = row.get("raw") or b""
    label = (
        f"Record {number}: conn #{row.get('conn')}, {row.get('channel')}, {who}, "
        f"+{(ts - t0_ns) / 1e9:.6f} s, {len(raw)} bytes"  # type: ignore[arg-type]
    )
    return Item(label, children=[Item(f"captured at {when}"), Item(f"timestamp {ts} ns")])


def _message(row: dict[str, object], channel: str) -> list[Item]:
    if missing(row.get("flags")):
        return [Item("no complete header", span="undecoded")]
    flags = int(row["flags"])  # type: ignore[call-overload]
    request_id = row.get("request_id")
    meanings = [f"version {flags & spec.FLAG_VERSION_MASK}"]
    meanings += [
        name for mask, name in ((spec.FLAG_REPLY, "REPLY"), (spec.FLAG_NEED_REPLY, "NEED_REPLY")) if flags & mask
    ]
    if flags & ~spec.FLAG_KNOWN_MASK:
        meanings.append(f"reserved bits {flags & ~spec.FLAG_KNOWN_MASK:#x}")
    described = f"flags {flags:#x} ({', '.join(meanings)})"
    header = Item(
        f"Header: {row.get('request')} ({request_id}), {described}, size {row.get('size')}",
        children=[
            Item(f"request: {row.get('request')} ({request_id})", span="request"),
            Item(f"flags: {flags:#x} ({', '.join(meanings)})", span="flags"),
            Item(f"size: {row.get('size')} (payload bytes present: {row.get('payload_len')})", span="size"),
        ],
    )
    items = [header]
    fields = [_field(name, value, row) for name, value in row.items() if _is_payload(name, value)]
    if fields:
        items.append(Item("Payload", children=fields, expand=True))
    elif row.get("payload_len"):
        items.append(Item(f"Payload: {row.get('payload_len')} undecoded bytes", span="payload"))
    message = spec.lookup(channel, int(request_id)) if isinstance(request_id, int) else None
    if message is not None:
        items.append(_spec_item(message, bool(row.get("is_reply"))))
    return items


def _is_payload(name: str, value: object) -> bool:
    return name not in FRAME_COLUMNS and not missing(value)


def _field(name: str, value: object, row: dict[str, object]) -> Item:
    if name in FEATURE_WORDS and isinstance(value, int):
        return _feature_word(name, value)
    if name == "status" and isinstance(value, int):
        names = spec.flag_names(value, spec.DEVICE_STATUS)
        return Item(f"status: {value:#x} ({', '.join(names) or 'none'})", span=name)
    if name == "regions" and isinstance(value, tuple):
        return _regions(value, row)
    if name == "shmem_sizes" and isinstance(value, tuple):
        used = [Item(f"shm{i}: {size:#x}", span=f"shmem_sizes[{i}]") for i, size in enumerate(value) if size]
        return Item(f"shmem_sizes: {len(used)} regions in use", span=name, children=used, expand=True)
    if name in VALUE_NAMES and isinstance(value, int):
        return Item(f"{name}: {value} ({VALUE_NAMES[name].get(value, 'unknown')})", span=name)
    if name == "nofd":
        meaning = "no FD sent (invalid-FD flag)" if value else "an FD comes with the message"
        return Item(f"nofd: {value} ({meaning})", span=name)
    if isinstance(value, bytes):
        return Item(f"{name}: {value.hex() or '(empty)'}", span=name)
    return Item(f"{name}: {format_value(name, value)}", span=name)


def _feature_word(name: str, value: int) -> Item:
    names = FEATURE_WORDS[name]
    bits = [bit for bit in range(64) if value >> bit & 1]
    children = []
    for bit in bits:
        if bit in names:
            children.append(Item(f"bit {bit:2}: {names[bit]}"))
        elif name == "features" and bit < DEVICE_BITS:
            children.append(Item(f"bit {bit:2}: device-specific"))
        else:
            children.append(Item(f"bit {bit:2}: unknown"))
    return Item(f"{name}: {value:#x} ({len(bits)} bits)", span=name, children=children, expand=True)


def _regions(regions: tuple, row: dict[str, object]) -> Item:
    fds = str(row.get("fds") or "").split("; ") if not missing(row.get("fds")) else []
    children = [Item(REGION_HEADER)]
    for i, region in enumerate(regions):
        gpa, size, uaddr, offset = region[:4]
        fd = fds[i] if i < len(fds) else ""
        line = f"{i:>2}  {gpa:#14x}  {size:#12x}  {uaddr:#16x}  {offset:#12x}  {fd}"
        children.append(Item(line.rstrip(), span=f"regions[{i}]"))
    return Item(f"regions: {len(regions)}", span="regions", children=children, expand=True)


def _spec_item(message: spec.Message, is_reply: bool) -> Item:
    gate = message.gate
    needs = []
    if gate.needs_protocol_features:
        needs.append("PROTOCOL_FEATURES")
    if gate.protocol is not None:
        needs.append(f"protocol feature {gate.protocol.name}")
    if gate.virtio is not None:
        needs.append(f"virtio feature {spec.VIRTIO_FEATURES.get(gate.virtio, gate.virtio)}")
    fds = message.reply_fds if is_reply else message.request_fds
    children = [
        Item(f"{message.full_name} ({message.id}), section “{message.section}”"),
        Item(f"reply: {message.reply_rule.value}; FDs with the {'reply' if is_reply else 'request'}: {fds.value}"),
        Item(f"needs: {', '.join(needs) or 'nothing negotiated'}"),
    ]
    if message.note:
        children.append(Item(f"note: {message.note}"))
    return Item("Spec", children=children)


def _state(row: dict[str, object]) -> Item:
    children = [
        Item(f"{name}: {row.get(name)}") for name in ("stream", "offset", "nbytes") if not missing(row.get(name))
    ]
    if not missing(row.get("sha256")):
        children.append(Item(f"sha256: {row.get('sha256')}"))
    return Item("Device-state chunk", children=children, expand=True)


def _event(row: dict[str, object]) -> Item:
    attrs = row.get("attrs")
    parsed = json.loads(str(attrs)) if not missing(attrs) and attrs else {}
    children = [Item(f"{key}: {value}") for key, value in parsed.items()]
    return Item(f"Proxy event: {row.get('request')}", children=children, expand=True)


def _pairing(row: dict[str, object], reply_row: int | None) -> list[Item]:
    reply_to = row.get("reply_to")
    if not missing(reply_to):
        latency = format_duration(int(row["latency_ns"]))  # type: ignore[call-overload]
        return [Item(f"Reply to record {int(reply_to) + 1}, after {latency}")]  # type: ignore[call-overload]
    if reply_row is not None:
        return [Item(f"Answered by record {reply_row + 1}")]
    return []
