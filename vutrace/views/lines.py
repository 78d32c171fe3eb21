"""One line per record, tshark style: time, connection, channel, sender → receiver, request, key fields.

``format_line(row)`` takes a row of the loaded DataFrame as a mapping (``df.iloc[i]``,
``df.to_dict("records")[i]``); ``format_record(record)`` does the same for a capture record as
the proxy sees it (``vutrace proxy --live``), so the command line, the live view and the TUI
print the same text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime

from dissectors.payloads import U64_SPLITS
from dissectors.records import BASE_KEYS
from dissectors.spec import FIXED_LAYOUTS
from vutrace.capture.model import CaptureRecord
from vutrace.rows import COLUMNS, TRAILING, record_row

FRAME_COLUMNS = frozenset((*COLUMNS, *TRAILING, *BASE_KEYS))
"""Columns that are not payload fields (so not repeated as key=value on the line)."""


def _field_rank() -> dict[str, int]:
    """Payload field names in spec-table order (the split u64 values right after ``u64``), so a line
    lists fields in the same order whatever the column order of the frame it came from."""
    names: list[str] = []
    for kind, fields in FIXED_LAYOUTS.items():
        for field in fields:
            names.append(field.name)
            if field.name == "u64" and kind in U64_SPLITS:
                names += [U64_SPLITS[kind][0], "nofd"]
    return {name: rank for rank, name in enumerate(dict.fromkeys(names))}


FIELD_RANK = _field_rank()
RECEIVER = {"frontend": "backend", "backend": "frontend"}
HEX_HINTS = ("addr", "features", "offset", "iova", "mac", "u64", "status", "flags", "uuid")
"""Payload fields whose names contain one of these are shown in hex."""
SPLIT_U64 = ("vring", "state_error")
"""When one of these derived fields is present, the raw u64 it came from is not repeated."""


def missing(value: object) -> bool:
    """True for the DataFrame's empty cells (None, NaN, pd.NA)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ == "NAType"


def format_duration(ns: int | float) -> str:
    """A short human duration: 850ns, 12.3µs, 4.56ms, 1.23s."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if abs(ns) >= scale:
            return f"{ns / scale:.3g}{unit}"
    return f"{int(ns)}ns"


def format_value(name: str, value: object) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) and any(hint in name for hint in HEX_HINTS):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return value.hex() if len(value) <= 16 else f"{value[:16].hex()}…({len(value)} bytes)"
    if isinstance(value, tuple):
        return f"[{len(value)}]"
    return str(value)


def key_fields(row: Mapping[str, object]) -> list[str]:
    """``name=value`` for the payload fields of a message row (or the attributes of an event row); true
    flags (e.g. ``nofd``) come last by name."""
    if row.get("channel") == "event":
        attrs = row.get("attrs")
        if missing(attrs) or not attrs:
            return []
        return [f"{k}={v}" for k, v in json.loads(str(attrs)).items()]
    if row.get("channel") == "state":
        parts = [f"stream={row.get('stream')}", f"offset={row.get('offset')}", f"nbytes={row.get('nbytes')}"]
        if not missing(row.get("sha256")):
            parts.append(f"sha256={str(row['sha256'])[:16]}…")
        return parts
    fields = [(name, value) for name, value in row.items() if name not in FRAME_COLUMNS and not missing(value)]
    fields.sort(key=lambda item: FIELD_RANK.get(item[0], len(FIELD_RANK)))
    names = {name for name, _ in fields}
    out = [
        f"{name}={format_value(name, value)}"
        for name, value in fields
        if not isinstance(value, bool) and not (name == "u64" and names.intersection(SPLIT_U64))
    ]
    return out + [name for name, value in fields if value is True]


def format_line(row: Mapping[str, object], *, t0_ns: int | None = 0, number: int | None = None) -> str:
    """The one-line summary of a record; ``number`` (frame number) and the time lead it: seconds since
    ``t0_ns``, or the local time of day when ``t0_ns`` is None."""
    sender = str(row.get("sender"))
    receiver = RECEIVER.get(sender)
    direction = f"{sender} → {receiver}" if receiver else sender
    head = f"{number:>7} " if number is not None else ""
    ts = 0 if missing(row.get("ts_ns")) else int(row["ts_ns"])  # type: ignore[call-overload]
    if t0_ns is None:
        clock = datetime.fromtimestamp(ts / 1e9).strftime("%H:%M:%S.%f")
    else:
        clock = f"{(ts - t0_ns) / 1e9:12.6f}"
    parts = [f"{head}{clock} #{row.get('conn')} {row.get('channel'):<7} {direction:<19} {row.get('request')}"]
    parts.extend(describe(row))
    latency = row.get("latency_ns")
    if not missing(latency):
        parts.append(f"(+{format_duration(int(latency))})")
    parts.extend(problems(row))
    return " ".join(parts)


def describe(row: Mapping[str, object]) -> list[str]:
    """What follows the request name: reply / need_reply, the key fields, the FDs."""
    parts = [flag for flag in ("reply", "need_reply") if row.get("is_reply" if flag == "reply" else flag)]
    parts.extend(key_fields(row))
    fds = row.get("fds")
    if not missing(fds) and fds:
        parts.append(f"fds=[{fds}]")
    return parts


def problems(row: Mapping[str, object]) -> list[str]:
    """The record's decode error and warning, bracketed."""
    return [f"[{label}: {row[label]}]" for label in ("error", "warning") if not missing(row.get(label)) and row[label]]


def format_record(record: CaptureRecord, *, t0_ns: int | None = None) -> str:
    """The line of a capture record as it happens (``vutrace proxy --live``); no reply pairing, so no latency."""
    return format_line(record_row(record), t0_ns=t0_ns)


def hex_dump(data: bytes, indent: str = "") -> str:
    """tshark -x style: offset, 16 bytes in hex, the printable ASCII."""
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{indent}{offset:04x}  {hexes:<47}  {text}")
    return "\n".join(lines)
